"""Latency/throughput harness on a tiny SANA teacher and the real MiniLM encoder (CPU timer path)."""
import math

import pytest
import torch

from sprint_bench.eval.latency import (CPU_TIMER, MIN_BATCHES, MIN_RUNS, Pipeline, TimingResult, device_info,
                                       measure_latency, measure_throughput, teacher_pipeline)
from sprint_bench.eval.metrics.base import MetricResult
from sprint_bench.models.sana import FlowBackbone, build_sana
from sprint_bench.models.text_encoder import TextEncoder

CAPTIONS = ["a photo of a red circle", "a photo of two blue squares", "a photo of a green triangle"]
DEVICE_FIELDS = ("device_name", "device_type", "gpu_count", "torch_version", "dtype", "batch", "steps", "nfe",
                 "threads", "cpu_set", "compile_mode", "sdpa_backend", "resolution", "warmup", "runs", "timer",
                 "cudnn_benchmark")


@pytest.fixture(scope="module")
def parts():
    from sprint_bench.config import load_config
    from tests.conftest import REPO

    cfg = load_config(REPO / "experiments" / "micro.yaml")
    torch.manual_seed(0)
    backbone = FlowBackbone(build_sana(cfg.model, in_channels=3, sample_size=32)).eval()
    return backbone, TextEncoder(max_length=16)


def test_latency_medians_and_protocol_fields(parts):
    pipe = teacher_pipeline(*parts, resolution=32, steps=2, cfg_scale=3.0)
    assert isinstance(pipe, Pipeline) and pipe.nfe == 4  # batched CFG: 2 evaluations per step
    res = measure_latency(pipe, CAPTIONS, runs=MIN_RUNS, threads=1)
    assert isinstance(res, MetricResult) and isinstance(res, TimingResult) and res.key == "latency"
    v = res.values
    for stage in ("text", "denoise", "decode", "e2e"):
        med, p90 = v[f"latency_{stage}_ms_median"], v[f"latency_{stage}_ms_p90"]
        assert math.isfinite(med) and med > 0 and p90 >= med
        assert len(res.samples[stage]) == MIN_RUNS
    assert v["latency_e2e_ms_median"] >= v["latency_denoise_ms_median"]
    assert res.protocol.extra["nfe"] == 4 and res.protocol.extra["steps"] == 2
    p = res.protocol
    assert p.metric == "latency (batch 1)" and p.resolution == 32 and p.dtype == "float32"
    for k in DEVICE_FIELDS:
        assert k in p.extra and str(p.extra[k]) != "", k
    assert "cuda_version" in p.extra
    assert p.extra["nfe"] == 4 and p.extra["batch"] == 1 and p.extra["threads"] == 1
    assert p.extra["device_type"] == "cpu" and p.extra["timer"] == CPU_TIMER and p.extra["gpu_count"] >= 0
    assert p.as_params("latency")["latency.device_name"]


def test_nfe_without_cfg_and_run_validation(parts):
    pipe = teacher_pipeline(*parts, resolution=32, steps=3, cfg_scale=1.0)
    assert pipe.nfe == 3 and pipe.steps == 3
    with pytest.raises(ValueError, match=">= 50"):  # protocol §6.2: >= 10 untimed, then >= 50 timed calls
        measure_latency(pipe, CAPTIONS, warmup=10, runs=49)
    with pytest.raises(ValueError, match="warmup must be >= 10"):
        measure_latency(pipe, CAPTIONS, warmup=9, runs=MIN_RUNS)
    with pytest.raises(ValueError, match="batches must be >= 20"):  # §6.4: >= 20 timed batches
        measure_throughput(pipe, CAPTIONS, batch=2, batches=19)


def test_throughput_and_thread_count_restored(parts):
    pipe = teacher_pipeline(*parts, resolution=32, steps=1, cfg_scale=1.0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a value different from the measurement's
    try:
        res = measure_throughput(pipe, CAPTIONS, batch=4, batches=MIN_BATCHES, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert res.key == "throughput" and res.values["throughput_images_per_s"] > 0
    assert res.protocol.metric == "throughput (images/s)" and res.protocol.extra["batch"] == 4
    assert res.protocol.num_images == 4 * MIN_BATCHES and res.protocol.extra["threads"] == 1
    for stage in ("text", "denoise", "decode"):
        assert res.values[f"throughput_{stage}_ms_median"] > 0


def test_device_info_cpu():
    info = device_info("cpu")
    assert info["device_type"] == "cpu" and info["device_name"] and info["torch_version"] == torch.__version__
