"""Teacher training end to end on the micro preset: kill + resume reaches the same step count and the same weights
as an uninterrupted run, with exactly one MLflow run; the export loads and samples."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def _cmd(out: Path, experiment: str, steps: int) -> list[str]:
    return [sys.executable, "-m", "sprint_bench.cli", "train-teacher", "--config", str(REPO / "experiments/micro.yaml"),
            f"output_dir={out}", f"tracking.tracking_uri=sqlite:///{out / 'mlflow.db'}",
            f"tracking.experiment={experiment}", f"train.max_steps={steps}", "train.checkpoint_every=10",
            "train.sample_every=1000", "train.log_every=5"]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}


def _weights(out: Path) -> dict:
    (export,) = out.glob("micro-*/export")
    return load_file(export / "transformer" / "diffusion_pytorch_model.safetensors")


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    import mlflow

    steps = 120
    straight = tmp_path / "straight"
    subprocess.run(_cmd(straight, "straight", steps), check=True, env=_env(), cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    out = tmp_path / "resumed"
    proc = subprocess.Popen(_cmd(out, "resumed", steps), env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list(out.glob("micro-*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (run,) = out.glob("micro-*")
    assert not (run / "DONE").exists(), "the run finished before it could be interrupted"
    from sprint_bench.lit.train_teacher import resume_checkpoint

    killed_at = torch.load(resume_checkpoint(run / "checkpoints"), weights_only=False)["global_step"]
    assert 0 < killed_at < steps

    subprocess.run(_cmd(out, "resumed", steps), check=True, env=_env(), cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (run / "DONE").read_text().strip() == str(steps)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == steps

    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"resumed weights differ at {k}"

    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["resumed"])
    assert len(runs) == 1, "resuming must continue the same MLflow run"
    assert runs.loc[0, "status"] == "FINISHED"
    assert runs.loc[0, "params.model/depth"] == "1"
    history = mlflow.tracking.MlflowClient().get_metric_history(runs.loc[0, "run_id"], "train/loss")
    assert max(m.step for m in history) >= steps - 5
    arts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(runs.loc[0, "run_id"])}
    assert {"samples", "teacher", "config.json"} <= arts

    # a finished run is not retrained
    subprocess.run(_cmd(out, "resumed", steps), check=True, env=_env(), cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert len(mlflow.search_runs(experiment_names=["resumed"])) == 1


def test_export_loads_and_samples(tmp_path, micro_cfg):
    from dataclasses import replace

    from sprint_bench.data.datamodule import ShapesDataModule
    from sprint_bench.lit.teacher import TeacherModule
    from sprint_bench.models.release import export_teacher, load_teacher, promote_teacher

    cfg = replace(micro_cfg, output_dir=str(tmp_path))
    dm = ShapesDataModule(cfg)
    dm.setup()
    module = TeacherModule(cfg, dm.captions)
    export_teacher(module.sampling_model(), cfg, tmp_path / "export", 0)
    cfg2, backbone, meta = load_teacher(tmp_path / "export")
    assert cfg2.model == cfg.model and cfg2.world == cfg.world and meta["global_step"] == 0
    x = torch.randn(2, 3, 32, 32)
    text, mask = dm.captions.lookup(torch.tensor([0, 1]))
    with torch.no_grad():
        ref = module.sampling_model()(x, torch.full((2,), 0.5), text, mask)
        assert torch.allclose(backbone(x, torch.full((2,), 0.5), text, mask), ref, atol=1e-6)
    # promotion never destroys an existing release
    target = tmp_path / "releases" / "teacher"
    promote_teacher(tmp_path / "export", target)
    promote_teacher(tmp_path / "export", target)  # same teacher again: nothing to do
    assert not list((tmp_path / "releases").glob("teacher.bak-*"))
    export_teacher(module.sampling_model(), cfg, tmp_path / "export2", 5)
    promote_teacher(tmp_path / "export2", target)
    assert json.loads((target / "sprint_bench.json").read_text())["global_step"] == 5
    assert [p.name for p in (tmp_path / "releases").glob("teacher.bak-*")] == ["teacher.bak-0"]
    with pytest.raises(FileNotFoundError, match="no exported teacher"):
        load_teacher(tmp_path / "missing")


def test_resume_skips_a_truncated_checkpoint(tmp_path):
    from sprint_bench.lit.train_teacher import resume_checkpoint

    assert resume_checkpoint(tmp_path) is None
    good = tmp_path / "step0000010.ckpt"
    torch.save({"global_step": 10}, good)
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(good.read_bytes()[:20])  # killed mid-write
    os.utime(good, (1, 1))
    assert resume_checkpoint(tmp_path) == good
