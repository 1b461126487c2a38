"""The ControlNet make-targets' entry points on the micro preset: `sprint-bench train-controlnet` trains only the
ControlNet on top of the frozen teacher and exports it self-contained; `sprint-bench distill` with
experiments/controlnet/sprint.yaml distils it into a ControlNet student that uses its condition; mismatched
teachers are config errors before any training."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sprint_bench.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
MICRO = ["model.width=32", "model.depth=1", "model.heads=2", "model.cross_heads=2", "data.train_size=64",
         "data.batch_size=4", "train.checkpoint_every=2", "train.sample_every=1000", "train.log_every=1",
         "train.threads=1", "control.num_blocks=1"]
CN_TEACHER = REPO / "experiments" / "controlnet" / "teacher.yaml"
CN_SPRINT = REPO / "experiments" / "controlnet" / "sprint.yaml"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("controlnet")


@pytest.fixture(scope="module")
def teacher(root):
    """A micro flow-matching teacher (random weights) exported like the released one."""
    from sprint_bench.models.release import export_teacher
    from sprint_bench.models.sana import FlowBackbone, build_sana

    cfg = load_config(REPO / "experiments" / "base.yaml", MICRO[:6])
    torch.manual_seed(0)
    return export_teacher(FlowBackbone(build_sana(cfg.model, 3, cfg.world.resolution)), cfg, root / "teacher", 0)


def common(root: Path) -> list[str]:
    return MICRO + [f"output_dir={root / 'runs'}", f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}"]


@pytest.fixture(scope="module")
def cn_teacher(root, teacher):
    """`make controlnet-teacher`'s entry point: three training steps of the ControlNet teacher."""
    from sprint_bench.cli import main
    from sprint_bench.lit.train_teacher import run_dir
    from sprint_bench.models.release import RELEASED_CONTROLNET_TEACHER

    released_before = (RELEASED_CONTROLNET_TEACHER / "sprint_bench.json").exists() and \
        (RELEASED_CONTROLNET_TEACHER / "sprint_bench.json").read_text()
    overrides = common(root) + [f"control.base={teacher}", "train.max_steps=3", "train.warmup_steps=0"]
    assert main(["train-controlnet", "--config", str(CN_TEACHER), *overrides]) == 0
    after = (RELEASED_CONTROLNET_TEACHER / "sprint_bench.json").exists() and \
        (RELEASED_CONTROLNET_TEACHER / "sprint_bench.json").read_text()
    assert after == released_before, "without --release the repository's release must stay untouched"
    return run_dir(load_config(CN_TEACHER, overrides)) / "export"


def test_controlnet_teacher_trains_only_the_controlnet(cn_teacher, teacher):
    from sprint_bench.models.control_export import load_controlnet_teacher

    meta = json.loads((cn_teacher / "sprint_bench.json").read_text())
    assert meta["kind"] == "controlnet_teacher" and meta["global_step"] == 3
    assert meta["control"] == {"num_blocks": 1, "thickness": 1, "conditioning_scale": 1.0}
    base = load_file(teacher / "transformer" / "diffusion_pytorch_model.safetensors")
    exported = load_file(cn_teacher / "transformer" / "diffusion_pytorch_model.safetensors")
    for k in base:  # the frozen base (EMA of an unchanged weight is the weight) is exported bit-identical
        assert torch.equal(base[k], exported[k]), k
    cn = load_file(cn_teacher / "controlnet" / "controlnet.safetensors")
    assert cn["controlnet_blocks.0.weight"].abs().sum() > 0 and cn["input_block.weight"].abs().sum() > 0
    _, backbone, _ = load_controlnet_teacher(cn_teacher)
    x, tau = torch.randn(2, 3, 32, 32), torch.tensor([0.7, 0.7])
    text, mask = torch.randn(2, 16, 384), torch.ones(2, 16, dtype=torch.long)
    blank, edges = -torch.ones(2, 3, 32, 32), -torch.ones(2, 3, 32, 32)
    edges[:, :, 8:24, 8] = 1.0
    assert not torch.equal(backbone(x, tau, text, mask, blank), backbone(x, tau, text, mask, edges))


@pytest.mark.parametrize("yaml", sorted((REPO / "experiments" / "controlnet").glob("sprint*.yaml")),
                         ids=lambda p: p.name)
def test_controlnet_student_distils_with_its_condition(root, cn_teacher, yaml):
    """`make controlnet-sprint`'s entry point for every ControlNet student YAML (hybrid and sCM-only)."""
    from sprint_bench.cli import main
    from sprint_bench.lit.train_distill import run_dir
    from sprint_bench.models.export import load_student

    overrides = common(root) + [f"distill.teacher={cn_teacher}", "train.max_steps=2", "distill.head_blocks=[0]",
                                "distill.tangent_warmup_steps=2"]
    assert main(["distill", "--config", str(yaml), *overrides, "--no-eval"]) == 0
    export = run_dir(load_config(yaml, overrides)) / "export"
    _, model, meta = load_student(export)
    assert meta["control"]["num_blocks"] == 1 and model.controlnet is not None and meta["k"] == 2
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([1.2])
    text, mask, w = torch.randn(1, 16, 384), torch.ones(1, 16, dtype=torch.long), torch.tensor([3.0])
    blank, edges = -torch.ones(1, 3, 32, 32), -torch.ones(1, 3, 32, 32)
    edges[:, :, 4:28, 16] = 1.0
    F_blank, _ = model(x, t, text, mask, w, cond=blank)
    F_edges, _ = model(x, t, text, mask, w, cond=edges)
    assert torch.isfinite(F_edges).all() and not torch.equal(F_blank, F_edges)
    with pytest.raises(ValueError, match="needs the condition"):
        model(x, t, text, mask, w)


def test_student_equals_controlnet_teacher_at_initialisation(root, cn_teacher):
    """The condition reaches teacher and student alike: with the zero-initialised guidance embedding the student
    is the ControlNet teacher at step 0 (same F for any condition)."""
    from sprint_bench.data.datamodule import ShapesDataModule
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.train_distill import load_matching_teacher

    cfg = load_config(CN_SPRINT, common(root) + [f"distill.teacher={cn_teacher}", "distill.head_blocks=[0]"])
    _, transformer, controlnet, _ = load_matching_teacher(cfg)
    dm = ShapesDataModule(cfg)
    dm.setup()
    module = DistillModule(cfg, dm.captions, transformer, controlnet)
    images, ids, edges = next(iter(dm.train_dataloader()))
    assert edges.dtype == torch.uint8 and edges.shape == (4, 32, 32) and edges.sum() > 0
    from sprint_bench.data.shapes.edges import edges_to_condition

    cond = edges_to_condition(edges)
    text, mask = module.text(ids)
    x, t, w = torch.randn(4, 3, 32, 32), torch.full((4,), 0.9), torch.full((4,), 3.0)
    with torch.no_grad():
        F_s, _ = module.student(x, t, text, mask, w, cond=cond)
        F_t, _ = module.teacher(x, t, text, mask, cond=cond)
    torch.testing.assert_close(F_s, F_t, rtol=0, atol=1e-6)


def test_mismatched_teachers_are_config_errors(root, teacher, cn_teacher):
    from sprint_bench.lit.train_controlnet import load_base
    from sprint_bench.lit.train_distill import load_matching_teacher

    with pytest.raises(ConfigError, match="control.enabled"):
        load_matching_teacher(load_config(CN_SPRINT, common(root) + [f"distill.teacher={teacher}",
                                                                      "distill.head_blocks=[0]"]))
    with pytest.raises(ConfigError, match="control.num_blocks"):
        load_matching_teacher(load_config(CN_SPRINT, common(root) + [f"distill.teacher={cn_teacher}",
                                                                      "distill.head_blocks=[0]",
                                                                      "control.num_blocks=2", "model.depth=2"]))
    with pytest.raises(ConfigError, match="not a flow-matching teacher"):
        load_base(load_config(CN_TEACHER, common(root) + [f"control.base={cn_teacher}"]))
    with pytest.raises(ConfigError, match="control.num_blocks"):
        load_config(CN_TEACHER, common(root) + ["control.num_blocks=2"])  # deeper than the depth-1 model
