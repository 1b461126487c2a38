"""The evaluation harness on a tiny teacher: metrics with their protocols in MLflow, skip + resume, early errors."""
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest

from sprint_bench.eval import harness
from sprint_bench.eval.harness import EvalSettings, Evaluator, parse_metrics, parse_steps


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A random-weight micro teacher export and a briefly trained tiny shapes-CLIP."""
    from sprint_bench.config import load_config
    from sprint_bench.data.datamodule import ShapesDataModule
    from sprint_bench.eval.clip.train import train_clip_scorer
    from sprint_bench.lit.teacher import TeacherModule
    from sprint_bench.models.release import export_teacher
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("models")
    cfg = replace(load_config(REPO / "experiments" / "micro.yaml"), output_dir=str(root / "runs"))
    dm = ShapesDataModule(cfg)
    dm.setup()
    export_teacher(TeacherModule(cfg, dm.captions).sampling_model(), cfg, root / "teacher", 0)
    train_clip_scorer(cfg.world, root / "clip", steps=2, batch_size=16, train_size=64, warmup_steps=1,
                      eval_images_per_prompt=1, progress=False,
                      model_overrides={"vision_cfg": {"width": 32, "layers": 1, "head_width": 16},
                                       "text_cfg": {"width": 32, "layers": 1, "heads": 2}, "embed_dim": 16})
    return root


def settings(root: Path, tmp_path: Path, **kw) -> EvalSettings:
    base = dict(steps=[1, 2], metrics=["fd", "kid", "clip", "geneval", "latency"], images_per_prompt=1,
                limit_prompts=24, batch_size=32, clip_scorer=str(root / "clip"), out_root=str(tmp_path / "eval"),
                experiment="harness-test", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                throughput_batch=2, threads=1)
    base.update(kw)
    return EvalSettings(**base)


def test_every_metric_logged_with_its_protocol_then_skipped(tiny_models, tmp_path, monkeypatch):
    s = settings(tiny_models, tmp_path)
    rows = Evaluator(tiny_models / "teacher", s).run()
    assert [r["steps"] for r in rows] == [1, 2]
    for key in ("fd_effnet_lite0", "kid_effnet_lite0", "clip_score_shapes", "geneval_overall", "latency"):
        assert any(k.startswith(key) for k in rows[0]), key

    mlflow.set_tracking_uri(s.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["harness-test"])
    children = runs[runs["tags.sprint_bench.kind"] == "eval-child"]
    assert len(runs) == 3 and len(children) == 2
    child = children[children["tags.steps"] == "1"].iloc[0]
    assert child["status"] == "FINISHED"
    assert child["params.nfe"] == "2" and child["params.cfg_scale"] == "3.0"
    for key in ("fd_effnet_lite0", "kid_effnet_lite0", "clip_score_shapes", "geneval_shapes", "latency", "throughput"):
        for field in ("metric", "extractor", "num_images", "resolution", "resize", "dtype"):
            assert isinstance(child[f"params.{key}.{field}"], str) and child[f"params.{key}.{field}"], (key, field)
    assert child["params.fd_effnet_lite0.metric"] == "FD (EfficientNet-Lite0)"
    assert child["params.fd_effnet_lite0.num_images"] == "24"
    assert child["params.clip_score_shapes.metric"] == "CLIP score (shapes-CLIP)"
    for field in ("device_name", "torch_version", "dtype", "threads", "timer", "nfe", "steps", "batch"):
        assert child[f"params.latency.{field}"], field
    assert child["metrics.latency_e2e_ms_median"] > 0 and child["metrics.throughput_images_per_s"] > 0
    assert 0 <= child["metrics.geneval_overall"] <= 1
    arts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(child["run_id"], "geneval")}
    assert "geneval/results.jsonl" in arts

    # a second run with the same protocol skips every (model, steps): no generation, no new run
    monkeypatch.setattr(harness, "generate_geneval", lambda *a, **k: pytest.fail("generated again"))
    rows2 = Evaluator(tiny_models / "teacher", s).run()
    assert [r["run_id"] for r in rows2] == [r["run_id"] for r in rows]
    assert len(mlflow.search_runs(experiment_names=["harness-test"])) == 3


def test_interrupted_evaluation_resumes_the_same_run(tiny_models, tmp_path, monkeypatch):
    s = settings(tiny_models, tmp_path, steps=[1])
    import sprint_bench.eval.latency as latency

    def broken(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(latency, "measure_latency", broken)
    with pytest.raises(KeyboardInterrupt):
        Evaluator(tiny_models / "teacher", s).run()
    mlflow.set_tracking_uri(s.tracking_uri)
    (failed,) = mlflow.search_runs(experiment_names=["harness-test"], filter_string="tags.steps = '1'")["run_id"]
    monkeypatch.undo()
    import sprint_bench.eval.metrics.fd as fd

    monkeypatch.setattr(fd, "fd_metric", lambda *a, **k: pytest.fail("finished metric recomputed"))
    monkeypatch.setattr(harness, "generate_geneval", lambda *a, **k: None)  # images are already on disk
    (row,) = Evaluator(tiny_models / "teacher", s).run()
    assert row["run_id"] == failed
    runs = mlflow.search_runs(experiment_names=["harness-test"], filter_string="tags.steps = '1'")
    assert len(runs) == 1 and runs.loc[0, "status"] == "FINISHED"
    assert runs.loc[0, "metrics.fd_effnet_lite0"] >= 0 and runs.loc[0, "metrics.latency_e2e_ms_median"] > 0


def test_geneval_images_use_the_official_layout(tiny_models, tmp_path):
    s = settings(tiny_models, tmp_path, steps=[1], metrics=["geneval"], images_per_prompt=2, limit_prompts=3)
    ev = Evaluator(tiny_models / "teacher", s)
    ev.run()
    assert ev.folder(1) == Path(s.out_root) / ev.model.model_id / "euler1-cfg3-ipp2-first3"
    images = ev.folder(1) / "images"
    assert sorted(p.name for p in images.iterdir()) == ["00000", "00001", "00002"]
    for d in images.iterdir():
        assert (d / "metadata.jsonl").exists()
        assert sorted(p.name for p in (d / "samples").iterdir()) == ["0000.png", "0001.png"]


def test_a_smoke_run_never_scores_another_runs_images(tiny_models, tmp_path):
    """Fewer prompts than a finished evaluation: its own folder, and only the requested images are scored."""
    s = settings(tiny_models, tmp_path, steps=[1], metrics=["geneval"], limit_prompts=3)
    three = Evaluator(tiny_models / "teacher", s)
    three.run()
    two = Evaluator(tiny_models / "teacher", replace(s, limit_prompts=2))
    assert two.folder(1) != three.folder(1)
    (row,) = two.run()
    assert row["geneval_overall"] >= 0
    assert sorted(p.name for p in (two.folder(1) / "images").iterdir()) == ["00000", "00001"]
    # a folder holding other images than the protocol names is refused, not scored
    with pytest.raises(ValueError, match="holds 3 images"):
        two.load_images(three.folder(1) / "images")


@pytest.mark.parametrize("kw, exc, needle", [
    (dict(metrics=["fd", "fidd"]), ValueError, "fidd"),
    (dict(metrics=["fid"], inception_weights="/nonexistent/inception-2015-12-05.pt"), FileNotFoundError,
     "inception-2015-12-05.pt"),
    (dict(metrics=["clip"], clip_scorer="/nonexistent/clip"), FileNotFoundError, "/nonexistent/clip"),
    (dict(metrics=["geneval"], seed=-1), ValueError, "must lie in"),
    # 24 prompts x 1 image from 2**31 - 2: the last seeds would be the ODE-pair banks' (from 2**31)
    (dict(metrics=["geneval"], seed=2**31 - 2), ValueError, "ODE-pair banks"),
    (dict(metrics=["geneval"], limit_prompts=0), ValueError, "limit_prompts must be >= 1"),
    (dict(metrics=["geneval"], images_per_prompt=0), ValueError, "images_per_prompt must be >= 1"),
    # metrics protocol §6.2 / §6.4: >= 10 untimed calls, >= 50 timed calls, >= 20 timed batches
    (dict(metrics=["latency"], latency_runs=20), ValueError, "latency_runs must be >= 50"),
    (dict(metrics=["latency"], latency_warmup=3), ValueError, "latency_warmup must be >= 10"),
    (dict(metrics=["latency"], throughput_batches=10), ValueError, "throughput_batches must be >= 20"),
])
def test_bad_requests_fail_before_generation(tiny_models, tmp_path, monkeypatch, kw, exc, needle):
    monkeypatch.setattr(harness, "generate_geneval", lambda *a, **k: pytest.fail("generation started"))
    with pytest.raises(exc, match=needle):
        Evaluator(tiny_models / "teacher", settings(tiny_models, tmp_path, **kw))


def test_missing_checkpoint_and_argument_parsing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no exported model"):
        Evaluator(tmp_path / "nothing", EvalSettings(metrics=["geneval"]))
    assert parse_steps("1,2,4") == [1, 2, 4]
    with pytest.raises(ValueError):
        parse_steps("1,x")
    with pytest.raises(ValueError, match="valid metrics"):
        parse_metrics("fd,bogus")


def test_cli_eval_runs_the_harness_and_refuses_bad_input(tiny_models, tmp_path, monkeypatch, capsys):
    """`sprint-bench eval` (`make eval`): one MLflow child run per step count; bad input exits 2 before generating."""
    from sprint_bench.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["eval", str(tiny_models / "teacher"), "--metrics", "geneval", "--limit-prompts", "4",
            "--images-per-prompt", "1", "--out", str(tmp_path / "eval"), "--experiment", "cli", "--threads", "1"]
    assert main(args + ["--steps", "1,2"]) == 0
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["cli"], filter_string="tags.`sprint_bench.kind` = 'eval-child'")
    assert sorted(runs["params.steps"].astype(int)) == [1, 2] and runs["metrics.geneval_overall"].notna().all()
    monkeypatch.setattr(harness, "generate_geneval", lambda *a, **k: pytest.fail("generation started"))
    assert main(args + ["--steps", "1", "--seed", str(2**31 - 1)]) == 2
    assert main(args + ["--steps", "0"]) == 2
    assert "ODE-pair banks" in capsys.readouterr().err


def test_eval_teacher_writes_summary_and_table(tiny_models, tmp_path):
    from sprint_bench.eval.teacher_geneval import evaluate_teacher_geneval

    summary = evaluate_teacher_geneval(tiny_models / "teacher", tmp_path, steps=1, cfg_scale=3.0,
                                       images_per_prompt=1, limit=6)
    assert summary["images"] == 6 and summary["nfe"] == 2 and 0 <= summary["overall"] <= 1
    table = (tmp_path / "euler1-cfg3-ipp1" / "table.md").read_text()  # 1 image per prompt: named in the folder
    assert table.startswith("| steps | CFG | Overall") and "–" in table  # families without prompts are dashes


def test_cli_eval_teacher_scores_an_export(tiny_models, tmp_path, capsys):
    """`sprint-bench eval-teacher` (`make teacher`'s scoring step) on an exported teacher, output under its run."""
    import json

    from sprint_bench.cli import main
    from tests.conftest import REPO

    assert main(["eval-teacher", "--config", str(REPO / "experiments" / "micro.yaml"), f"output_dir={tmp_path}",
                 "--export", str(tiny_models / "teacher"), "--steps", "1", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert summary["nfe"] == 2 and summary["images"] == 3 * 4  # 3 prompts x sample.images_per_prompt
    assert len(list(tmp_path.glob("*/eval/euler1-cfg*/table.md"))) == 1
