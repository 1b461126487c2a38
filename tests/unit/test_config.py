"""Tests for sprint_bench.config: inheritance, overrides, validation, hashing."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sprint_bench.config import ConfigError, ExperimentConfig, config_hash, load_config, run_name, to_dict

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- inheritance


def test_defaults_without_base(tmp_path):
    cfg = load_config(write(tmp_path / "empty.yaml", ""))
    assert to_dict(cfg) == to_dict(ExperimentConfig())
    assert cfg.source == str(tmp_path / "empty.yaml")


def test_two_level_inheritance_deep_merge_and_list_replace(tmp_path):
    write(tmp_path / "grand.yaml", """
        name: grand
        world:
          colors: [red, green, blue]
          max_count: 2
          family_weights: {single_object: 1, two_object: 1, counting: 1, colors: 1, position: 1, color_attr: 1}
        model: {depth: 3, width: 64}
    """)
    write(tmp_path / "sub" / "parent.yaml", """
        base: ../grand.yaml
        world:
          colors: [black, white]
          family_weights: {position: 5}
        model: {depth: 4}
    """)
    child = write(tmp_path / "sub" / "child.yaml", """
        base: parent.yaml
        name: child
        model: {heads: 8}
    """)
    cfg = load_config(child)
    assert cfg.name == "child"
    assert cfg.world.colors == ["black", "white"]  # list replaced, not concatenated
    assert cfg.world.max_count == 2  # kept from grandparent (deep merge)
    assert cfg.world.family_weights["position"] == 5.0
    assert cfg.world.family_weights["counting"] == 1.0
    assert (cfg.model.depth, cfg.model.width, cfg.model.heads) == (4, 64, 8)
    assert cfg.model.patch_size == 4  # schema default


def test_base_as_list_applied_in_order(tmp_path):
    write(tmp_path / "a.yaml", "model: {depth: 2, width: 64}\nseed: 1\n")
    write(tmp_path / "b.yaml", "model: {depth: 3}\n")
    top = write(tmp_path / "top.yaml", "base: [a.yaml, b.yaml]\nseed: 7\n")
    cfg = load_config(top)
    assert (cfg.model.depth, cfg.model.width, cfg.seed) == (3, 64, 7)


def test_base_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.yaml")
    msg = str(info.value)
    assert "cycle" in msg and "a.yaml" in msg and "b.yaml" in msg


def test_self_base_is_a_cycle(tmp_path):
    write(tmp_path / "a.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_missing_base_names_both_files(tmp_path):
    top = write(tmp_path / "top.yaml", "base: nowhere/missing.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(top)
    msg = str(info.value)
    assert str(tmp_path / "nowhere" / "missing.yaml") in msg
    assert str(top) in msg


def test_missing_top_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_syntax_error_and_duplicate_keys_name_the_file(tmp_path):
    bad = write(tmp_path / "bad.yaml", "model: {depth: [1, 2}\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    dup = write(tmp_path / "dup.yaml", "model:\n  depth: 1\n  depth: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'depth'") as info:
        load_config(dup)
    assert "dup.yaml" in str(info.value)


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"))


# --------------------------------------------------------------------------- overrides


def test_dotted_overrides_int_list_bool_null(tmp_path):
    top = write(tmp_path / "top.yaml", "model: {depth: 2}\n")
    cfg = load_config(top, [
        "model.depth=4",
        "world.shapes=[circle,square]",
        "model.qk_norm=false",
        "tracking.run_name=null",
        "tracking.experiment=exp1",
        "world.family_weights.position=3",
        "train.lr=3e-4",
    ])
    assert cfg.model.depth == 4 and isinstance(cfg.model.depth, int)
    assert cfg.world.shapes == ["circle", "square"]
    assert cfg.model.qk_norm is False
    assert cfg.tracking.run_name is None
    assert cfg.tracking.experiment == "exp1"
    assert cfg.world.family_weights["position"] == 3.0
    assert cfg.train.lr == pytest.approx(3e-4)


def test_overrides_apply_in_order(tmp_path):
    cfg = load_config(write(tmp_path / "t.yaml", ""), ["model.depth=2", "model.depth=5"])
    assert cfg.model.depth == 5


def test_override_must_be_key_value(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(write(tmp_path / "t.yaml", ""), ["model.depth"])


# --------------------------------------------------------------------------- unknown keys


def test_unknown_key_from_file(tmp_path):
    top = write(tmp_path / "foo.yaml", "model:\n  dpeth: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(top)
    msg = str(info.value)
    assert "'model.dpeth'" in msg
    assert "foo.yaml" in msg
    assert "did you mean 'model.depth'?" in msg
    assert info.value.key == "model.dpeth"


def test_unknown_key_in_base_names_the_base(tmp_path):
    write(tmp_path / "parent.yaml", "train: {lrr: 0.1}\n")
    child = write(tmp_path / "child.yaml", "base: parent.yaml\nseed: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(child)
    msg = str(info.value)
    assert "'train.lrr'" in msg and "parent.yaml" in msg and "child.yaml" not in msg


def test_unknown_key_from_command_line(tmp_path):
    top = write(tmp_path / "foo.yaml", "")
    with pytest.raises(ConfigError) as info:
        load_config(top, ["model.dpeth=4"])
    msg = str(info.value)
    assert "<command line>" in msg and "'model.dpeth'" in msg and "model.depth" in msg
    with pytest.raises(ConfigError, match="<command line>"):
        load_config(top, ["model.depth.inner=4"])
    with pytest.raises(ConfigError, match="<command line>"):
        load_config(top, ["source=elsewhere.yaml"])


def test_source_not_settable_from_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'source'"):
        load_config(write(tmp_path / "s.yaml", "source: x.yaml\n"))


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize("text, key, expected", [
    ("model: {depth: four}\n", "model.depth", "int"),
    ("model: {depth: true}\n", "model.depth", "int"),
    ("model: {qk_norm: 1}\n", "model.qk_norm", "bool"),
    ("world: {size_range: [0.3]}\n", "world.size_range", "tuple[float, float]"),
    ("world: {colors: red}\n", "world.colors", "list[str]"),
    ("model: 3\n", "model", "mapping"),
    ("tracking: {run_name: 5}\n", "tracking.run_name", "str or null"),
])
def test_wrong_type_names_key_type_and_file(tmp_path, text, key, expected):
    top = write(tmp_path / "typed.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(top)
    msg = str(info.value)
    assert f"'{key}'" in msg and "typed.yaml" in msg and f"expected {expected}" in msg
    assert info.value.origin == str(top)


def test_ints_accepted_for_floats_and_normalised(tmp_path):
    cfg = load_config(write(tmp_path / "f.yaml", "train: {lr: 1, betas: [0, 0.5]}\nmodel: {mlp_ratio: 4}\n"))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.betas == (0.0, 0.5) and all(isinstance(b, float) for b in cfg.train.betas)
    assert isinstance(cfg.model.mlp_ratio, float)


def test_tuple_and_optional_fields(tmp_path):
    cfg = load_config(write(tmp_path / "t.yaml", """
        world: {size_range: [0.2, 0.4]}
        tracking: {tracking_uri: "sqlite:////tmp/elsewhere/mlflow.db", run_name: r1}
    """))
    assert cfg.world.size_range == (0.2, 0.4)
    assert cfg.tracking.tracking_uri == "sqlite:////tmp/elsewhere/mlflow.db" and cfg.tracking.run_name == "r1"


# --------------------------------------------------------------------------- ranges and choices


@pytest.mark.parametrize("text, key, fragment", [
    ("world: {max_count: 7}\n", "world.max_count", "[1, 4]"),
    ("world: {resolution: 48}\n", "world.resolution", "[32, 64]"),
    ("world: {colors: [red, teal]}\n", "world.colors", "teal"),
    ("world: {size_range: [0.0, 0.3]}\n", "world.size_range", "(0.0, 0.6]"),
    ("world: {background: [1, 2]}\n", "world.background", "exactly 3"),
    ("world: {background: [1, 2, 300]}\n", "world.background", "[0, 255]"),
    ("world: {colors: [red]}\n", "world.colors", "at least 2"),
    ("train: {lr: 0}\n", "train.lr", "(0.0, 1.0]"),
    ("train: {precision: bf16}\n", "train.precision", "bf16-mixed"),
    ("seed: -1\n", "seed", "[0,"),
    ("tracking: {tracking_uri: mlruns}\n", "tracking.tracking_uri", "sqlite:///"),
    ("tracking: {tracking_uri: 'file:///tmp/mlruns'}\n", "tracking.tracking_uri", "file store is deprecated"),
])
def test_bad_value_names_key_range_and_file(tmp_path, text, key, fragment):
    top = write(tmp_path / "ranged.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(top)
    msg = str(info.value)
    assert f"'{key}" in msg and "ranged.yaml" in msg and fragment in msg


def test_bad_value_from_command_line_names_command_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path / "t.yaml", ""), ["world.max_count=7"])
    assert "<command line>" in str(info.value) and "world.max_count" in str(info.value)


# --------------------------------------------------------------------------- cross-field


def test_cross_field_width_heads(tmp_path):
    top = write(tmp_path / "x.yaml", "model: {width: 100, heads: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(top)
    msg = str(info.value)
    assert "model.width" in msg and "model.heads" in msg and "x.yaml" in msg
    assert set(info.value.keys) == {"model.width", "model.heads"}


def test_cross_field_width_cross_heads_from_command_line(tmp_path):
    top = write(tmp_path / "x.yaml", "model: {width: 64}\n")
    with pytest.raises(ConfigError) as info:
        load_config(top, ["model.cross_heads=5"])
    msg = str(info.value)
    assert "model.cross_heads" in msg and "<command line>" in msg and "x.yaml" in msg


def test_patch_size_and_resolution_combination_loads(tmp_path):
    cfg = load_config(write(tmp_path / "x.yaml", ""), ["model.patch_size=8", "world.resolution=64"])
    assert (cfg.model.patch_size, cfg.world.resolution) == (8, 64)


def test_cross_field_family_weights(tmp_path):
    top = write(tmp_path / "fw.yaml", "world: {family_weights: {postion: 1}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(top)
    msg = str(info.value)
    assert "world.family_weights" in msg and "postion" in msg and "position" in msg and "fw.yaml" in msg
    zero = write(tmp_path / "zero.yaml", """
        world:
          family_weights: {single_object: 0, two_object: 0, counting: 0, colors: 0, position: 0, color_attr: 0}
    """)
    with pytest.raises(ConfigError, match="sum"):
        load_config(zero)


def test_cross_field_size_range_order(tmp_path):
    with pytest.raises(ConfigError, match="world.size_range"):
        load_config(write(tmp_path / "s.yaml", "world: {size_range: [0.4, 0.3]}\n"))


def test_validate_hook_on_dataclass():
    cfg = ExperimentConfig()
    cfg.validate()
    cfg.model.heads = 5
    with pytest.raises(ConfigError, match="model.heads"):
        cfg.validate()


# --------------------------------------------------------------------------- hashing


HASH_SNIPPET = (
    "import sys; from sprint_bench.config import load_config, config_hash; "
    "print(config_hash(load_config(sys.argv[1])))"
)


def test_hash_stable_across_key_order_and_processes(tmp_path):
    a = write(tmp_path / "a.yaml", """
        seed: 3
        model: {depth: 2, width: 64}
        world: {colors: [red, blue], max_count: 2}
    """)
    b = write(tmp_path / "b.yaml", """
        world: {max_count: 2, colors: [red, blue]}
        model: {width: 64, depth: 2}
        seed: 3
    """)
    h = config_hash(load_config(a))
    assert len(h) == 12 and all(c in "0123456789abcdef" for c in h)
    assert config_hash(load_config(b)) == h
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", HASH_SNIPPET, str(b)],
            capture_output=True, text=True, check=True, cwd=REPO,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        assert out.stdout.strip() == h


def test_hash_changes_with_results_not_with_tracking(tmp_path):
    top = write(tmp_path / "t.yaml", "")
    h = config_hash(load_config(top))
    assert config_hash(load_config(top, ["model.depth=3"])) != h
    assert config_hash(load_config(top, ["train.lr=0.002"])) != h
    assert config_hash(load_config(top, ["seed=1"])) != h
    assert config_hash(load_config(top, ["tracking.run_name=other"])) == h
    assert config_hash(load_config(top, ["tracking.experiment=x"])) == h
    assert config_hash(load_config(top, ["output_dir=/elsewhere"])) == h
    # ints for floats normalise, so the hash does not depend on how a number was written
    assert config_hash(load_config(top, ["train.lr=1"])) == config_hash(load_config(top, ["train.lr=1.0"]))


def test_to_dict_round_trips(tmp_path):
    cfg = load_config(EXPERIMENTS / "micro.yaml", ["world.colors=[red, blue, black]"])
    d = to_dict(cfg)
    assert "source" not in d
    assert d["world"]["size_range"] == [0.28, 0.36]
    dumped = write(tmp_path / "resolved.yaml", yaml.safe_dump(d))
    again = load_config(dumped)
    assert to_dict(again) == d
    assert config_hash(again) == config_hash(cfg)


# --------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiments_load(path):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.source == str(path)


def test_base_yaml_spells_out_every_default():
    raw = yaml.safe_load((EXPERIMENTS / "base.yaml").read_text())
    assert raw == to_dict(ExperimentConfig())


def test_micro_preset():
    cfg = load_config(EXPERIMENTS / "micro.yaml")
    assert cfg.name == "micro"
    assert (cfg.model.depth, cfg.model.width, cfg.model.heads) == (1, 32, 2)
    assert cfg.world.resolution == 32
    assert (cfg.train.max_steps, cfg.data.batch_size) == (4, 4)
    assert (cfg.data.train_size, cfg.sample.steps) == (64, 2)
    assert (cfg.train.checkpoint_every, cfg.train.sample_every, cfg.train.log_every) == (2, 2, 1)
    assert cfg.train.compile is False


def test_teacher_preset():
    cfg = load_config(EXPERIMENTS / "teacher.yaml")
    assert cfg.name == "teacher"
    base = to_dict(load_config(EXPERIMENTS / "base.yaml"))
    changed = {k for k, v in to_dict(cfg).items() if v != base[k]}
    assert changed <= {"name", "train"}  # the teacher preset only sets its training budget


def test_dict_field_merges_with_schema_defaults(tmp_path):
    cfg = load_config(write(tmp_path / "fw.yaml", "world: {family_weights: {position: 5}}\n"))
    assert cfg.world.family_weights["position"] == 5.0
    assert cfg.world.family_weights["counting"] == 1.5


def test_late_field_at_default_keeps_the_older_hash(tmp_path):
    """Fields added after runs were recorded (distill.d_translate, the ode_* fields, d_norm_stats, d_steps) leave the
    hash of configs that keep them at their defaults unchanged, so finished runs are still found; set, each changes
    the hash."""
    import hashlib
    import json

    cfg = load_config(write(tmp_path / "d.yaml", "distill:\n  loss: hybrid\n  adv_weight: 0.1\n"))
    older = to_dict(cfg)  # the canonical JSON as it was before the field existed
    for k in ("tracking", "output_dir", "control"):  # not hashed; a default control section neither
        older.pop(k)
    for k in ("d_translate", "ode_weight", "ode_pairs", "ode_steps", "ode_metric", "student_init", "d_norm_stats",
              "d_steps", "ode_shift", "ode_shift_window", "dmd_weight", "dmd_p_mean", "dmd_p_std", "fake_lr",
              "d_text_proj", "compile"):
        del older["distill"][k]
    blob = json.dumps(older, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert config_hash(cfg) == hashlib.sha256(blob.encode()).hexdigest()[:12]
    for change in ("distill.d_translate=2", "distill.ode_weight=1.0", "distill.ode_pairs=64", "distill.ode_steps=4",
                   "distill.ode_metric=pseudo_huber", "distill.student_init=runs/x/export",
                   "distill.d_norm_stats=shared", "distill.d_steps=2", "distill.ode_shift=1",
                   "distill.ode_shift_window=8", "distill.dmd_weight=1.0", "distill.dmd_p_mean=0.0",
                   "distill.dmd_p_std=1.0", "distill.fake_lr=1e-5", "distill.d_text_proj=true",
                   "distill.compile=false"):
        assert config_hash(load_config(tmp_path / "d.yaml", [change])) != config_hash(cfg), change


def test_ode_regression_checked_against_controlnet_and_batch(tmp_path):
    top = write(tmp_path / "d.yaml", "distill:\n  loss: hybrid\n")
    with pytest.raises(ConfigError, match="ode_weight is not supported with a ControlNet"):
        load_config(top, ["distill.ode_weight=1.0", "control.enabled=true"]).validate_distill()
    with pytest.raises(ConfigError, match="ode_pairs=16 is below data.batch_size=32"):
        load_config(top, ["distill.ode_weight=1.0", "distill.ode_pairs=16"]).validate_distill()
    with pytest.raises(ConfigError, match="ode_steps"):
        load_config(top, ["distill.ode_steps=0"])
    with pytest.raises(ConfigError, match="student_init is not supported with a ControlNet"):
        load_config(top, ["distill.student_init=runs/x/export", "control.enabled=true"]).validate_distill()
    with pytest.raises(ConfigError, match="ode_metric"):
        load_config(top, ["distill.ode_metric=l1"])
    with pytest.raises(ConfigError, match="loss=ode needs ode_weight > 0"):
        load_config(top, ["distill.loss=ode"])
    for bad in (["distill.ode_shift=16"], ["distill.ode_shift=1", "distill.ode_shift_window=33"]):
        with pytest.raises(ConfigError, match="ode_shift=.* must be below half of world.resolution=32"):
            load_config(top, bad).validate_distill()
    with pytest.raises(ConfigError, match="ode_shift"):
        load_config(top, ["distill.ode_shift=-1"])
    load_config(top, ["distill.ode_shift=2", "distill.ode_shift_window=32"]).validate_distill()
    load_config(top, ["distill.ode_pairs=16"]).validate_distill()  # unused while ode_weight is 0
    load_config(top, ["distill.ode_weight=0.5", "distill.ode_pairs=32"]).validate_distill()


def test_misaligned_pairs_need_two_images_per_device(tmp_path):
    top = write(tmp_path / "d.yaml", "distill:\n  loss: hybrid\n")
    with pytest.raises(ConfigError, match="misaligned_pairs needs data.batch_size >= 2"):
        load_config(top, ["data.batch_size=1"]).validate_distill()
    load_config(top, ["data.batch_size=1", "distill.misaligned_pairs=false"]).validate_distill()
    load_config(top, ["data.batch_size=1", "distill.loss=scm"]).validate_distill()  # no heads, no pairs


def test_a_student_without_guidance_embedding_learns_one_cfg_scale(tmp_path):
    top = write(tmp_path / "d.yaml", "distill:\n  guidance_embed: false\n")
    with pytest.raises(ConfigError, match=r"cannot see the teacher's CFG scale.*must be one value"):
        load_config(top).validate_distill()  # the default cfg_scales [2.5, 3, 3.5]
    load_config(top, ["distill.cfg_scales=[3.0]"]).validate_distill()
    load_config(REPO / "experiments/sprint/ablations/no-cfg-embed.yaml").validate_distill()


def test_student_init_naming_an_experiment_yaml_becomes_its_run_export(tmp_path, monkeypatch):
    """distill.student_init: <yaml> resolves (relative to the file that set it) to that experiment's
    <output_dir>/<name>-<hash>/export, under the second stage's output_dir; same hash as the literal path."""
    write(tmp_path / "stages" / "first.yaml", "name: first\ndistill:\n  loss: scm\ntrain:\n  max_steps: 7\n")
    second = write(tmp_path / "stages" / "second.yaml", "name: second\ndistill:\n  student_init: first.yaml\n")
    first = load_config(tmp_path / "stages" / "first.yaml")
    want = f"runs/first-{config_hash(first)}/export"
    cfg = load_config(second)
    assert cfg.distill.student_init == want
    assert config_hash(cfg) == config_hash(load_config(second, [f"distill.student_init={want}"]))
    moved = load_config(second, ["output_dir=/data/out"])
    assert moved.distill.student_init == f"/data/out/first-{config_hash(first)}/export"
    write(tmp_path / "stages" / "first.yaml", "name: first\ndistill:\n  loss: scm\ntrain:\n  max_steps: 8\n")
    assert load_config(second).distill.student_init != want  # an edited first stage is followed, not its old run
    monkeypatch.chdir(tmp_path)  # from the command line: relative to the working directory
    assert load_config(second, ["distill.student_init=stages/first.yaml"]).distill.student_init == \
        load_config(second).distill.student_init
    with pytest.raises(ConfigError, match="names the experiment .*missing.yaml, which does not exist"):
        load_config(second, ["distill.student_init=missing.yaml"])
    write(tmp_path / "stages" / "first.yaml", "name: first\ndistill:\n  student_init: second.yaml\n")
    with pytest.raises(ConfigError, match="student_init cycle"):
        load_config(second)


def test_d_translate_checked_against_resolution_and_controlnet(tmp_path):
    top = write(tmp_path / "d.yaml", "distill:\n  loss: hybrid\n")
    with pytest.raises(ConfigError, match="d_translate=16 must be below half"):
        load_config(top, ["distill.d_translate=16"]).validate_distill()
    with pytest.raises(ConfigError, match="not supported with a ControlNet"):
        load_config(top, ["distill.d_translate=2", "control.enabled=true"]).validate_distill()
    load_config(top, ["distill.d_translate=3"]).validate_distill()


def test_distribution_matching_checked(tmp_path):
    top = write(tmp_path / "d.yaml", "distill:\n  loss: hybrid\n")
    with pytest.raises(ConfigError, match="d_steps=2 needs a D phase"):
        load_config(top, ["distill.loss=scm", "distill.d_steps=2"])
    for loss in ("scm", "ode"):  # without heads the D steps train the fake denoiser alone
        cfg = load_config(top, [f"distill.loss={loss}", "distill.ode_weight=1.0", "distill.dmd_weight=1.0",
                                "distill.d_steps=2"])
        assert not cfg.distill.uses_adv and cfg.distill.has_d_phase and cfg.distill.cycle == 3
    assert load_config(top, ["distill.loss=scm"]).distill.cycle == 1
    with pytest.raises(ConfigError, match="dmd_weight is not supported with a ControlNet"):
        load_config(top, ["distill.dmd_weight=1.0", "control.enabled=true"]).validate_distill()
    for bad in ("distill.dmd_weight=-1", "distill.dmd_p_std=0", "distill.fake_lr=0"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].split(".")[1]):
            load_config(top, [bad])
    cfg = load_config(top, ["distill.loss=ladd", "distill.dmd_weight=0.5", "distill.fake_lr=1e-5"])
    assert (cfg.distill.dmd_weight, cfg.distill.fake_lr) == (0.5, 1e-5)


def test_training_order_puts_every_first_stage_before_its_second():
    """`make ablation-axes` trains in this order: alphabetically ode-huber-20step-12k.yaml ('-' < '.') would come
    before ode-huber-20step.yaml, the stage it starts from."""
    from sprint_bench.config.order import training_order

    paths = sorted(str(p) for p in (REPO / "experiments" / "sprint" / "ablations").glob("*.yaml"))
    order = training_order(paths)
    assert sorted(order) == paths
    pos = {p: i for i, p in enumerate(order)}
    assert order.index(str(REPO / "experiments/sprint/ablations/ode-huber-20step.yaml")) < \
        order.index(str(REPO / "experiments/sprint/ablations/ode-huber-20step-12k.yaml"))
    cfgs = {p: load_config(p) for p in order}
    yaml_of_run = {run_name(c): p for p, c in cfgs.items()}
    seconds = [(p, yaml_of_run[Path(c.distill.student_init).parent.name]) for p, c in cfgs.items()
               if c.distill.student_init and Path(c.distill.student_init).parent.name in yaml_of_run]
    assert len(seconds) >= 10 and all(pos[first] < pos[p] for p, first in seconds)
