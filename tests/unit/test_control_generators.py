"""ControlNet generators: conditions from (prompt entry, seed) exactly as the metric defines them, per-image
determinism, the released-checkpoint alias, and latency pipelines with the ControlNet inside the timed denoise."""
import json

import pytest
import torch

from sprint_bench.data.shapes.control import condition_tensor, latency_condition
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.eval import generators
from sprint_bench.eval.generators import ControlFlowTeacher, FlowTeacher, SprintStudent, resolve_checkpoint
from sprint_bench.models.controlnet import ControlledFlowBackbone, SanaControlNet
from sprint_bench.models.sana import FlowBackbone, build_sana
from sprint_bench.models.text_encoder import HIDDEN_SIZE, CaptionCache
from sprint_bench.models.trigflow import TrigFlowModel

CONTROL = {"num_blocks": 1, "thickness": 2, "conditioning_scale": 1.0}


def _live(controlnet: SanaControlNet) -> SanaControlNet:
    """Non-zero projections (they start at zero), so the condition changes the output."""
    g = torch.Generator().manual_seed(1)
    for lin in (controlnet.input_block, *controlnet.controlnet_blocks):
        lin.weight.data = torch.randn(lin.weight.shape, generator=g) * 0.3
    return controlnet


@pytest.fixture(scope="module")
def setup():
    from sprint_bench.config import load_config
    from tests.conftest import REPO

    cfg = load_config(REPO / "experiments" / "micro.yaml")
    prompts = [e["prompt"] for e in geneval_shapes_prompts(cfg.world)[:3]]
    torch.manual_seed(0)
    n = len(prompts) + 1
    captions = CaptionCache(prompts, torch.randn(n, 8, HIDDEN_SIZE), torch.ones(n, 8, dtype=torch.long))
    return cfg, prompts, captions


def _teacher(cfg, tmp_path):
    torch.manual_seed(0)
    t = build_sana(cfg.model, 3, cfg.world.resolution)
    backbone = ControlledFlowBackbone(t, _live(SanaControlNet(t, 1))).eval()
    meta = {"kind": "controlnet_teacher", "config_hash": "abc", "global_step": 3, "control": dict(CONTROL)}
    return ControlFlowTeacher(tmp_path, cfg, backbone, meta)


def _student(cfg, tmp_path):
    torch.manual_seed(0)
    t = build_sana(cfg.model, 3, cfg.world.resolution, guidance_embeds=True)
    model = TrigFlowModel(t, controlnet=_live(SanaControlNet(t, 1))).eval()
    meta = {"kind": "scm_student", "config_hash": "abc", "global_step": 3, "method": "hybrid",
            "guidance_embeds": True, "schedules": {}, "control": dict(CONTROL)}
    return SprintStudent(tmp_path, cfg, model, meta)


def test_names_methods_and_control(setup, tmp_path):
    cfg = setup[0]
    teacher, student = _teacher(cfg, tmp_path), _student(cfg, tmp_path)
    assert teacher.method == "ControlNet teacher (Euler, CFG)" and not teacher.method.startswith("flow matching")
    assert teacher.control == CONTROL and teacher.model_id == "controlnet-teacher-abc-step3"
    assert student.method == "sCM + LADD (ControlNet)" and student.control == CONTROL
    plain = FlowTeacher(tmp_path, cfg, FlowBackbone(build_sana(cfg.model, 3, 32)), {"config_hash": "x",
                                                                                    "global_step": 0})
    assert plain.control is None and plain.method.startswith("flow matching")


def test_teacher_conditions_on_entry_and_seed(setup, tmp_path, monkeypatch):
    cfg, prompts, captions = setup
    teacher = _teacher(cfg, tmp_path)
    seen = []
    bind = teacher.backbone.bind
    monkeypatch.setattr(teacher.backbone, "bind", lambda c, **kw: seen.append(c) or bind(c, **kw))
    fn = teacher.sample_fn(2, 3.0, captions)
    seeds = [10, 11, 12]
    imgs = fn(prompts, seeds)
    entries = geneval_shapes_prompts(cfg.world)[:3]
    assert torch.equal(seen[0], condition_tensor(entries, seeds, cfg.world, CONTROL["thickness"]))
    assert imgs.shape == (3, 32, 32, 3) and imgs.dtype.name == "uint8"
    # per image: the same (prompt, seed) in another batch order gives the same image
    assert (fn(prompts[::-1], seeds[::-1])[::-1] == imgs).all()
    assert (fn(prompts[1:2], seeds[1:2])[0] == imgs[1]).all()
    # the condition matters: the same noise (seed 10) under another condition gives another image
    monkeypatch.setattr(generators, "condition_tensor", lambda e, s, w, t: condition_tensor(e, [99] * len(s), w, t))
    assert not (teacher.sample_fn(2, 3.0, captions)(prompts[:1], [10])[0] == imgs[0]).all()
    with pytest.raises(KeyError, match="GenEval-Shapes"):
        teacher.conditions()(["a photo of a dragon"], [0])


def test_student_conditions_on_entry_and_seed(setup, tmp_path):
    from sprint_bench.data.datamodule import to_uint8
    from sprint_bench.samplers.scm import sample_student, seeded_step_noise

    cfg, prompts, captions = setup
    student = _student(cfg, tmp_path)
    seeds = [3, 4, 5]
    imgs = student.sample_fn(2, 4.0, captions)(prompts, seeds)
    text, mask = captions.lookup(captions.ids_for(prompts))
    cond = condition_tensor(geneval_shapes_prompts(cfg.world)[:3], seeds, cfg.world, CONTROL["thickness"])
    direct = to_uint8(sample_student(student.model, text, mask, 4.0, seeded_step_noise(seeds, (3, 32, 32), 2),
                                     student.timesteps(2), cond=cond))
    assert (imgs == direct).all()
    other = to_uint8(sample_student(student.model, text, mask, 4.0, seeded_step_noise(seeds, (3, 32, 32), 2),
                                    student.timesteps(2), cond=-cond))
    assert not (imgs == other).all()


def test_resolve_released_controlnet_teacher(tmp_path, monkeypatch):
    monkeypatch.setattr(generators, "RELEASED_CONTROLNET_TEACHER", tmp_path / "controlnet-teacher")
    with pytest.raises(FileNotFoundError, match="make controlnet-teacher"):
        resolve_checkpoint("controlnet-teacher")
    (tmp_path / "controlnet-teacher").mkdir()
    (tmp_path / "controlnet-teacher" / "sprint_bench.json").write_text(json.dumps({"kind": "controlnet_teacher"}))
    assert resolve_checkpoint("controlnet-teacher") == (tmp_path / "controlnet-teacher").resolve()


class _Encoder:
    """Stand-in text encoder (the pipelines only need encode, max_length and a module for the device)."""

    max_length = 8
    model = torch.nn.Linear(1, 1)

    def encode(self, captions):
        return torch.ones(len(captions), 8, HIDDEN_SIZE), torch.ones(len(captions), 8, dtype=torch.long)


def _count_calls(module):
    calls = []
    module.register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    return calls


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_latency_pipeline_runs_controlnet_inside_denoise(setup, tmp_path, kind):
    cfg = setup[0]
    gen = _teacher(cfg, tmp_path) if kind == "teacher" else _student(cfg, tmp_path)
    pipe = gen.pipeline(2, 3.0, _Encoder())
    assert "ControlNet (1 blocks)" in pipe.description
    assert pipe.nfe == (4 if kind == "teacher" else 2)
    net = gen.backbone.controlnet if kind == "teacher" else gen.model.controlnet
    calls = _count_calls(net)
    with torch.no_grad():
        for b in (1, 3):
            out = pipe.decode(pipe.denoise(pipe.encode_text(["a"] * b), torch.randn(b, 3, 32, 32)))
            assert out.shape == (b, 32, 32, 3)
    per_call = 2 if kind == "teacher" else 1  # CFG doubles the batch the ControlNet sees
    assert calls == [per_call * 1] * 2 + [per_call * 3] * 2  # one ControlNet forward per network evaluation
    assert torch.equal(latency_condition(cfg.world, 2), condition_tensor(geneval_shapes_prompts(cfg.world)[:1], [0],
                                                                          cfg.world, 2))
