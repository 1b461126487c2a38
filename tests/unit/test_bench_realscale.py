"""Real-scale latency benchmark: the full-size configs have the paper's sizes (counted on the meta device), and the
whole interleaved measurement runs on toy parts of the same shape on the CPU."""
import json

import numpy as np
import pytest
import torch

from sprint_bench.eval import bench_realscale as br


@pytest.mark.parametrize("size, transformer_b", [("0.6B", 0.59), ("1.6B", 1.60)])
def test_full_size_parts_have_the_papers_sizes(size, transformer_b):
    n = br.parameter_counts(size)
    assert abs(n["teacher"] / 1e9 - transformer_b) < 0.01
    # the student is the teacher plus the guidance embedder (two Linear layers into C), nothing else
    depth, width, _, _ = br.SIZES[size]
    assert n["student"] - n["teacher"] == 256 * width + width + width * width + width
    assert abs(n["text_encoder"] / 1e9 - 2.61) < 0.01  # Gemma-2-2B
    assert 150e6 < n["vae_decoder"] < 170e6  # DC-AE f32c32 decoder (~159M of the autoencoder's ~312M)


@pytest.fixture(scope="module")
def tiny():
    return br.build_parts("tiny", 64, torch.device("cpu"), torch.float32)


def test_pipelines_generate_images_through_our_samplers(tiny):
    # the student starts as the teacher's copy (student_from_teacher), guidance embedder aside
    t_state, s_state = tiny.teacher.transformer.state_dict(), tiny.student.transformer.state_dict()
    shared = [k for k in t_state if k in s_state]
    assert len(shared) > 0.9 * len(t_state) and all(torch.equal(t_state[k], s_state[k]) for k in shared)
    teacher = br.teacher_pipeline(tiny, 3, 4.5, torch.device("cpu"), torch.float32)
    student = br.student_pipeline(tiny, 2, 4.5, torch.device("cpu"), torch.float32)
    assert (teacher.nfe, student.nfe) == (6, 2) and teacher.latent_shape == (32, 2, 2)
    for pipe in (teacher, student):
        with torch.no_grad():
            cond = pipe.encode_text(["a photo of a red circle"] * 2)
            assert cond[0].shape == (2, br.TEXT_TOKENS, 64) and int(cond[1][0].sum()) == br.PROMPT_TOKENS
            img = pipe.decode(pipe.denoise(cond, torch.randn(2, 32, 2, 2)))
        assert img.dtype == np.uint8 and img.shape == (2, 64, 64, 3)


def test_interleaved_run_reports_every_stage_and_the_ratios(tmp_path):
    from mlflow.tracking import MlflowClient

    out, uri = tmp_path / "rs.json", f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = br.main(["--sizes", "tiny", "--device", "cpu", "--dtype", "fp32", "--resolution", "64", "--warmup", "10",
                   "--runs", "50", "--rounds", "1", "--teacher-steps", "8", "--out", str(out), "--tracking-uri", uri,
                   "--experiment", "rs"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    r = res["results"][0]
    assert r["params"] == br.parameter_counts("tiny", 64)  # the built parts are the configs' models
    run = MlflowClient(uri).get_run(r["mlflow_run_id"])  # the same numbers in MLflow, with the device facts
    assert run.data.metrics["latency.student_1_step.denoise_ms"] == r["latency_ms"]["student 1 step"]["denoise"]
    assert run.data.metrics["speedup.student_4_steps.e2e"] == r["speedup_vs_teacher"]["student 4 steps"]["e2e"]
    assert run.data.params["device.device_type"] == "cpu" and run.data.params["nfe.teacher_8_steps"] == "16"
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "bench-realscale"
    assert [a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)] == ["realscale.json"]
    assert r["nfe"] == {"teacher 8 steps": 16, "student 1 step": 1, "student 2 steps": 2, "student 4 steps": 4}
    for name, stages in r["latency_ms"].items():
        assert set(stages) == {"text", "denoise", "decode", "e2e"} and all(v > 0 for v in stages.values()), name
        assert stages["e2e"] >= stages["denoise"]
    lat, sp = r["latency_ms"], r["speedup_vs_teacher"]  # each ratio is the teacher's time over the student's
    assert set(sp) == {"student 1 step", "student 2 steps", "student 4 steps"}
    for name, ratios in sp.items():  # (which is faster is a benchmark's question, not a test's: timings vary)
        assert ratios == pytest.approx({s: lat["teacher 8 steps"][s] / lat[name][s] for s in ("e2e", "denoise")})
    assert res["device"]["device_type"] == "cpu" and r["dtype"] == "float32"
    with pytest.raises(SystemExit):  # an existing --out is not overwritten without --force
        br.main(["--sizes", "tiny", "--device", "cpu", "--out", str(out), "--no-mlflow"])


def test_bad_input_is_refused_before_any_work():
    with pytest.raises(SystemExit):
        br.main(["--sizes", "2B", "--device", "cpu", "--no-mlflow"])
    with pytest.raises(ValueError, match="multiple of 32"):
        br.build_parts("tiny", 100, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="size must be one of"):
        br.build_parts("3B", 1024, torch.device("cpu"), torch.float32)
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            br.main(["--sizes", "tiny", "--device", "cuda", "--no-mlflow"])
