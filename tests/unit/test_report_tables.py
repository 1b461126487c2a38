"""The ablation table's "Setting (vs the hybrid)" column: what a student's training changed."""
from sprint_bench.report import tables
from sprint_bench.report.collect import Row


def _student(training):
    return Row(run_id="r", model="s", model_id="s", method="sCM + LADD", steps=1, nfe=1, params={}, metrics={},
               training=training)


def test_setting_names_distill_and_train_axes_only():
    hybrid = {"distill/adv_weight": 0.5, "distill/d_translate": 0, "train/ema_decay": 0.0, "train/lr": 5e-05,
              "train/max_steps": 3000, "train/log_every": 25, "distill/teacher": "teacher"}
    tuned = dict(hybrid, **{"distill/adv_weight": 0.1, "distill/d_translate": 2, "train/ema_decay": 0.99,
                            "train/log_every": 50, "distill/teacher": "elsewhere", "distill/compile": False})
    assert tables.setting(_student(tuned), hybrid) == "adv_weight=0.1, d_translate=2, ema_decay=0.99"
    assert tables.setting(_student(hybrid), hybrid) == "default (hybrid)"
    assert tables.setting(_student({}), hybrid) == "-"
    cosine = dict(hybrid, **{"train/lr_schedule": "cosine", "train/min_lr_ratio": 0.05})
    assert tables.setting(_student(cosine), dict(hybrid, **{"train/lr_schedule": "constant",
                                                            "train/min_lr_ratio": 0.1})) == \
        "lr_schedule=cosine, min_lr_ratio=0.05"


def test_setting_compares_fields_the_reference_lacks_with_their_default():
    """A hybrid recorded before distill.ode_* existed: a student at their defaults shows only what it changed."""
    hybrid = {"distill/adv_weight": 0.5, "train/lr": 5e-05}
    ode = dict(hybrid, **{"distill/ode_weight": 1.0, "distill/ode_pairs": 32768, "distill/ode_steps": 8})
    assert tables.setting(_student(ode), hybrid) == "ode_weight=1.0"
    assert tables.setting(_student(dict(ode, **{"distill/ode_steps": 4})), hybrid) == "ode_steps=4, ode_weight=1.0"
    as_logged = {k: str(v) for k, v in ode.items()}  # MLflow gives params back as strings
    assert tables.setting(_student(as_logged), {k: str(v) for k, v in hybrid.items()}) == "ode_weight=1.0"


def test_setting_leaves_out_keys_the_students_loss_does_not_read():
    """A regression-only student (loss=ode) built on a tuned hybrid YAML inherits adv_weight and d_translate, and an
    sCM-only one the discriminator's settings: neither trained with them, so neither shows them."""
    hybrid = {"distill/loss": "hybrid", "distill/adv_weight": 0.5, "distill/d_translate": 0,
              "distill/tangent_warmup_steps": 300, "distill/ode_weight": 0.0, "distill/ode_metric": "l2"}
    ode = dict(hybrid, **{"distill/loss": "ode", "distill/adv_weight": "0.1", "distill/d_translate": "2",
                          "distill/tangent_warmup_steps": "150", "distill/ode_weight": "1.0",
                          "distill/ode_metric": "pseudo_huber"})
    assert tables.setting(_student(ode), hybrid) == "loss=ode, ode_metric=pseudo_huber, ode_weight=1.0"
    scm = dict(hybrid, **{"distill/loss": "scm", "distill/d_translate": 2, "distill/ode_metric": "pseudo_huber",
                          "distill/d_norm_stats": "shared", "distill/d_text_proj": "True"})
    assert tables.setting(_student(scm), hybrid) == "loss=scm"
    two_stage = dict(ode, **{"distill/loss": "hybrid"})
    assert tables.setting(_student(two_stage), hybrid) == ("adv_weight=0.1, d_translate=2, ode_metric=pseudo_huber, "
                                                           "ode_weight=1.0, tangent_warmup_steps=150")
