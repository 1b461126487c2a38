"""Student export: round trip, diffusers-pipeline-style sampling from the export, overwrite protection."""
import json
from pathlib import Path

import pytest
import torch
from diffusers import SCMScheduler
from diffusers.utils.torch_utils import randn_tensor

from sprint_bench.config import config_hash, load_config
from sprint_bench.models.export import export_student, load_student
from sprint_bench.models.sana import build_sana
from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher
from sprint_bench.samplers.scm import PAPER_SCHEDULES, scm_sample, seeded_step_noise, trigflow_model_fn

W = 4.5
SEEDS = [11, 12]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = load_config(Path(__file__).resolve().parents[2] / "experiments" / "micro.yaml")
    torch.manual_seed(0)
    student = TrigFlowModel(student_from_teacher(build_sana(cfg.model, 3, 32)), logvar=True)
    with torch.no_grad():  # a non-trivial guidance embedding and logvar head
        for p in student.transformer.time_embed.guidance_embedder.parameters():
            p.add_(0.1 * torch.randn_like(p))
        student.logvar_head.weight.normal_()
    student.eval()
    out = tmp_path_factory.mktemp("export") / "student"
    export_student(student, cfg, out, 123, {1: PAPER_SCHEDULES[1], 2: PAPER_SCHEDULES[2]}, W,
                   extra_meta={"note": "test"})
    text, mask = torch.randn(2, 16, 384), torch.ones(2, 16, dtype=torch.long)
    return cfg, student, out, text, mask


def test_round_trip_gives_identical_F(setup):
    cfg, student, out, text, mask = setup
    cfg2, loaded, meta = load_student(out)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.logvar_head is None and loaded.guidance_embeds
    assert config_hash(cfg2) == config_hash(cfg) == meta["config_hash"]
    assert meta["schedules"] == {1: PAPER_SCHEDULES[1], 2: PAPER_SCHEDULES[2]}
    assert (meta["kind"], meta["global_step"], meta["guidance_scale"], meta["note"]) == ("scm_student", 123, W, "test")
    assert meta["sigma_data"] == 0.5 and meta["guidance_embeds"] is True
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([1.5683, 0.6])
    with torch.no_grad():
        for w in (torch.full((2,), W), torch.tensor([1.0, 7.0])):
            assert torch.equal(student(x, t, text, mask, w)[0], loaded(x, t, text, mask, w)[0])
        F1, F2 = loaded(x, t, text, mask, torch.full((2,), 1.0))[0], loaded(x, t, text, mask, torch.full((2,), 7.0))[0]
    assert not torch.allclose(F1, F2)  # the guidance embedding is live


def test_diffusers_scheduler_loop_matches_scm_sample(setup):
    """diffusers SanaSprintPipeline conventions: latents = sigma_d randn(generators); the raw transformer sees
    lambda latents / sigma_d at tau and guidance w * guidance_embeds_scale; F = [(1-2 tau) x + (1-2 tau+2 tau^2) v]
    / lambda; scheduler.step(sigma_d F). Same noises as our scm_sample + TrigFlowModel -> equal within 1e-5."""
    _, _, out, text, mask = setup
    _, loaded, meta = load_student(out)
    tr, schedule = loaded.transformer, meta["schedules"][2]
    sched = SCMScheduler.from_pretrained(out / "scheduler")
    sd = sched.config.sigma_data
    sched.set_timesteps(num_inference_steps=2, timesteps=list(schedule), max_timesteps=None,
                        intermediate_timesteps=None)
    sched.set_begin_index(0)
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    latents = randn_tensor((2, 3, 32, 32), generator=gens) * sd
    guidance = torch.full((2,), W) * tr.config.guidance_embeds_scale
    with torch.no_grad():
        for t in sched.timesteps[:-1]:
            timestep = t.expand(2)
            tau = (torch.sin(timestep) / (torch.cos(timestep) + torch.sin(timestep))).view(-1, 1, 1, 1)
            lam = torch.sqrt(tau ** 2 + (1 - tau) ** 2)
            x_in = latents / sd * lam
            v = tr(x_in, encoder_hidden_states=text, encoder_attention_mask=mask, guidance=guidance,
                   timestep=tau.flatten(), return_dict=False)[0]
            F = ((1 - 2 * tau) * x_in + (1 - 2 * tau + 2 * tau ** 2) * v) / lam
            latents, denoised = sched.step(F * sd, timestep, latents, generator=gens, return_dict=False)
    ours = scm_sample(trigflow_model_fn(loaded, text, mask, W), seeded_step_noise(SEEDS, (3, 32, 32), 2), schedule)
    torch.testing.assert_close(ours, denoised, rtol=0, atol=1e-5)
    assert ours.abs().max() > 0.1  # not a degenerate all-zero sample


def test_overwrite_refusal_and_missing_files(setup, tmp_path):
    cfg, student, out, _, _ = setup
    scheds = {1: PAPER_SCHEDULES[1], 2: PAPER_SCHEDULES[2]}
    before = (out / "sprint_bench.json").read_text()
    assert export_student(student, cfg, out, 123, scheds, W, extra_meta={"note": "test"}) == out  # identical: no-op
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_student(student, cfg, out, 124, scheds, W, extra_meta={"note": "test"})
    target = tmp_path / "s"
    export_student(student, cfg, target, 1, scheds, W)
    with torch.no_grad():
        student.transformer.proj_out.weight.add_(1.0)
    try:
        with pytest.raises(FileExistsError, match="different weights"):
            export_student(student, cfg, target, 1, scheds, W)
        export_student(student, cfg, target, 2, scheds, W, overwrite=True)
    finally:
        with torch.no_grad():
            student.transformer.proj_out.weight.sub_(1.0)
    assert json.loads((target / "sprint_bench.json").read_text())["global_step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp folders left behind
    assert (out / "sprint_bench.json").read_text() == before
    with pytest.raises(ValueError, match="3 timesteps"):
        export_student(student, cfg, tmp_path / "bad", 1, {2: (1.5, 0.0)}, W)
    with pytest.raises(ValueError, match="reserved"):
        export_student(student, cfg, tmp_path / "bad", 1, scheds, W, extra_meta={"global_step": 3})
    (target / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="scheduler/scheduler_config.json"):
        load_student(target)
    with pytest.raises(FileNotFoundError, match="sprint_bench.json"):
        load_student(tmp_path / "nothing")
