"""Latency and throughput of a text-to-image pipeline (metrics protocol §6).

A pipeline is timed as three stages -- text encoding, denoising (all network evaluations) and decoding to uint8
images -- plus the whole call (``e2e``, host overhead included). Latency is measured at batch 1 after >= 10 untimed
warm-up calls, over >= 50 timed calls, and reported as median and p90 (mean/std too) in milliseconds; throughput is
images per second over >= 20 timed batches with one synchronize at the end. On a GPU the stages are timed with CUDA
events on the current stream (read after ``torch.cuda.synchronize()``); on a CPU with the monotonic
``time.perf_counter_ns`` under a fixed torch thread count (optionally pinned to the first ``threads`` cores), which
is marked as not comparable with GPU timings. Every result carries the device, software and sampling facts it was
measured under.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol as TypingProtocol, Sequence, runtime_checkable

import numpy as np
import torch

from sprint_bench.eval.metrics.base import MetricResult, Protocol

MIN_WARMUP = 10  # untimed calls before any timing, protocol §6.2 (nothing here is torch.compile'd)
MIN_RUNS = 50  # timed calls of a latency measurement, protocol §6.2
MIN_BATCHES = 20  # timed batches of a throughput measurement, protocol §6.4
STAGES = ("text", "denoise", "decode")
CUDA_TIMER = "cuda-events (stages); e2e: perf_counter between synchronizes"
CPU_TIMER = "perf_counter (not comparable with GPU timings)"


# --------------------------------------------------------------------------------------------------- the pipeline


@runtime_checkable
class Pipeline(TypingProtocol):
    """What the harness times: ``decode(denoise(encode_text(captions), noise))``.

    ``encode_text`` must run the real text encoder (not an embedding cache); ``denoise`` performs all ``nfe`` network
    evaluations over ``steps`` sampler steps; ``decode`` returns uint8 images (B, H, W, 3). ``latent_shape`` is the
    (C, H, W) shape of the noise the harness draws for each image, on ``device`` in ``dtype``.
    """

    nfe: int
    steps: int
    resolution: int
    latent_shape: tuple[int, int, int]
    device: torch.device
    dtype: torch.dtype
    description: str

    def encode_text(self, captions: list[str]) -> Any: ...

    def denoise(self, cond: Any, noise: torch.Tensor) -> torch.Tensor: ...

    def decode(self, x: torch.Tensor) -> np.ndarray: ...


@dataclass
class StagedPipeline:
    """A :class:`Pipeline` assembled from three callables (students plug in their own ``denoise``)."""

    encode_text: Callable[[list[str]], Any]
    denoise: Callable[[Any, torch.Tensor], torch.Tensor]
    decode: Callable[[torch.Tensor], np.ndarray]
    nfe: int
    steps: int
    resolution: int
    latent_shape: tuple[int, int, int]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    description: str = "n/a"

    def __post_init__(self):
        self.device = torch.device(self.device)
        if self.nfe < 1 or self.steps < 1:
            raise ValueError(f"nfe and steps must be >= 1, got nfe={self.nfe}, steps={self.steps}")


def _module_device_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(module.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def _text_encode_fn(text_encoder, device: torch.device, dtype: torch.dtype) -> Callable[[list[str]], tuple]:
    """The real encoder per call: ``TextEncoder.encode`` on a CPU encoder; the same tokenizer + model with the tokens
    moved to the encoder's device otherwise (``encode`` leaves them on the CPU)."""
    enc_device, _ = _module_device_dtype(text_encoder.model)

    @torch.no_grad()
    def encode(captions: list[str]):
        if enc_device.type == "cpu":
            hidden, mask = text_encoder.encode(list(captions))
        else:
            tok = text_encoder.tokenizer(list(captions), padding="max_length", truncation=True,
                                         max_length=text_encoder.max_length, return_tensors="pt")
            out = text_encoder.model(input_ids=tok["input_ids"].to(enc_device),
                                     attention_mask=tok["attention_mask"].to(enc_device))
            hidden, mask = out.last_hidden_state, tok["attention_mask"]
        return hidden.to(device, dtype), mask.to(device, torch.int64)

    return encode


def teacher_pipeline(backbone: torch.nn.Module, text_encoder, resolution: int, steps: int,
                     cfg_scale: float = 3.0, channels: int = 3) -> StagedPipeline:
    """The flow teacher: MiniLM text encoding, ``steps`` Euler steps with batched CFG over ``backbone``
    (``v(x, tau, text, mask)``), decoding in pixel space (``to_uint8``).

    NFE = 2 * steps with CFG (cfg_scale != 1; one batched call of size 2B per step), steps otherwise. The backbone's
    device and dtype are the pipeline's; the empty-caption (null) embedding for CFG is encoded once here, as a
    constant of the pipeline, and is not part of the per-call text time.
    """
    from sprint_bench.samplers.flow import euler_sample

    device, dtype = _module_device_dtype(backbone)
    encode = _text_encode_fn(text_encoder, device, dtype)
    null_t, null_m = encode([""])
    cfg = float(cfg_scale)

    def denoise(cond, noise: torch.Tensor) -> torch.Tensor:
        text, mask = cond
        return euler_sample(backbone, noise, text, mask, null_t, null_m, steps, cfg)

    nfe = steps if cfg == 1.0 else 2 * steps
    n_params = sum(p.numel() for p in backbone.parameters())
    desc = (f"flow teacher {type(backbone).__name__} ({n_params / 1e6:.2f}M params), Euler {steps} steps, "
            f"cfg {cfg:g} ({'batched CFG' if cfg != 1.0 else 'no CFG'}), text all-MiniLM-L6-v2 "
            f"(max_length {text_encoder.max_length}), decode to_uint8 (pixel space)")
    return _pixel_pipeline(encode, denoise, nfe, steps, resolution, channels, device, dtype, desc)


def _batch_condition(cond: torch.Tensor, device, dtype) -> Callable[[int], torch.Tensor]:
    """batch -> ``cond`` (1 or B rows) tiled to ``batch`` rows, on the pipeline's device/dtype; each batch size is
    tiled once and kept, so the copies are made in the untimed warm-up, not in the timed calls."""
    from sprint_bench.models.controlnet import tile_condition

    cond = cond.to(device, dtype)
    tiled: dict[int, torch.Tensor] = {}

    def get(batch: int) -> torch.Tensor:
        if batch not in tiled:
            tiled[batch] = tile_condition(cond, batch).contiguous()
        return tiled[batch]

    return get


def _controlnet_blocks(module: torch.nn.Module) -> int:
    return len(module.controlnet.transformer_blocks)


def controlnet_teacher_pipeline(backbone: torch.nn.Module, text_encoder, resolution: int, steps: int,
                                cfg_scale: float, cond: torch.Tensor, channels: int = 3) -> StagedPipeline:
    """:func:`teacher_pipeline` for a ``ControlledFlowBackbone``: the same Euler + batched CFG loop, each network
    evaluation running the ControlNet and the base transformer (NFE counted as for the plain teacher).

    ``cond`` (1 or B, 3, H, W) is an input of the pipeline like the noise: it is built by the caller before timing
    (edge extraction is not timed) and tiled here to the batch, both CFG halves, once per batch size; the ControlNet
    forward is inside the timed ``denoise``."""
    from sprint_bench.samplers.flow import euler_sample

    device, dtype = _module_device_dtype(backbone)
    encode = _text_encode_fn(text_encoder, device, dtype)
    null_t, null_m = encode([""])
    cfg = float(cfg_scale)
    factor = 1 if cfg == 1.0 else 2
    condition = _batch_condition(cond, device, dtype)

    def denoise(text_cond, noise: torch.Tensor) -> torch.Tensor:
        text, mask = text_cond
        velocity = backbone.bind(condition(factor * noise.shape[0]))
        return euler_sample(velocity, noise, text, mask, null_t, null_m, steps, cfg)

    n_params = sum(p.numel() for p in backbone.parameters())
    desc = (f"flow teacher + ControlNet ({_controlnet_blocks(backbone)} blocks) {type(backbone).__name__} "
            f"({n_params / 1e6:.2f}M params), Euler {steps} steps, cfg {cfg:g} "
            f"({'batched CFG' if cfg != 1.0 else 'no CFG'}), condition: one fixed edge map tiled to the batch, "
            f"text all-MiniLM-L6-v2 (max_length {text_encoder.max_length}), decode to_uint8 (pixel space)")
    return _pixel_pipeline(encode, denoise, factor * steps, steps, resolution, channels, device, dtype, desc)


def _pixel_pipeline(encode, denoise, nfe: int, steps: int, resolution: int, channels: int, device, dtype,
                    desc: str) -> StagedPipeline:
    """A pipeline whose model works in pixel space: decoding is ``to_uint8`` of the model-range output."""
    from sprint_bench.data.datamodule import to_uint8

    def decode(x: torch.Tensor) -> np.ndarray:
        return to_uint8(x.float())

    return StagedPipeline(encode_text=encode, denoise=denoise, decode=decode, nfe=nfe, steps=steps,
                          resolution=resolution, latent_shape=(channels, resolution, resolution), device=device,
                          dtype=dtype, description=desc)


def student_pipeline(model: torch.nn.Module, text_encoder, resolution: int, timesteps, guidance: float | None,
                     channels: int = 3, cond: torch.Tensor | None = None) -> StagedPipeline:
    """A SANA-Sprint student: MiniLM text encoding, the sCM multistep sampler over ``timesteps`` (one call per step,
    no CFG doubling: guidance enters through the embedding), decoding in pixel space. NFE = steps.

    A ControlNet student (``model.controlnet``) takes ``cond`` (1 or B, 3, H, W), an input like the noise: built by
    the caller before timing and tiled to the batch once per batch size; the ControlNet forward is inside the timed
    ``denoise``."""
    from sprint_bench.samplers.scm import sample_student

    device, dtype = _module_device_dtype(model)
    encode = _text_encode_fn(text_encoder, device, dtype)
    steps = len(timesteps) - 1
    condition = None if cond is None else _batch_condition(cond, device, dtype)

    def denoise(text_cond, noise: torch.Tensor) -> torch.Tensor:
        text, mask = text_cond

        def noise_fn(i: int) -> torch.Tensor:  # fresh noise per step, drawn inside the timed call
            return noise if i == 0 else torch.randn_like(noise)

        kw = {} if condition is None else {"cond": condition(noise.shape[0])}
        return sample_student(model, text, mask, guidance, noise_fn, timesteps, device=device, dtype=dtype, **kw)

    n_params = sum(p.numel() for p in model.parameters())
    control = "" if cond is None else f" + ControlNet ({_controlnet_blocks(model)} blocks)"
    desc = (f"sCM student {type(model).__name__}{control} ({n_params / 1e6:.2f}M params), {steps}-step consistency "
            f"sampler t={[round(float(t), 4) for t in timesteps]}, guidance embedding w={guidance}, "
            f"{'' if cond is None else 'condition: one fixed edge map tiled to the batch, '}"
            f"text all-MiniLM-L6-v2 (max_length {text_encoder.max_length}), decode to_uint8 (pixel space)")
    return _pixel_pipeline(encode, denoise, steps, steps, resolution, channels, device, dtype, desc)


# ------------------------------------------------------------------------------------------------------ timers


class Timer:
    """Marks taken around stages and read in milliseconds after :meth:`sync`."""

    name: str

    def mark(self):  # pragma: no cover - interface
        raise NotImplementedError

    def elapsed_ms(self, start, end) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def sync(self) -> None:
        pass


class CpuTimer(Timer):
    """Monotonic host clock (``time.perf_counter_ns``)."""

    name = CPU_TIMER

    def mark(self) -> int:
        return time.perf_counter_ns()

    def elapsed_ms(self, start: int, end: int) -> float:
        return (end - start) / 1e6


class CudaTimer(Timer):
    """``torch.cuda.Event(enable_timing=True)`` recorded on the current stream; read after ``synchronize``."""

    name = CUDA_TIMER

    def __init__(self, device: torch.device):
        self.device = device

    def mark(self) -> torch.cuda.Event:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record(torch.cuda.current_stream(self.device))
        return ev

    def elapsed_ms(self, start: torch.cuda.Event, end: torch.cuda.Event) -> float:
        return float(start.elapsed_time(end))

    def sync(self) -> None:
        torch.cuda.synchronize(self.device)


def make_timer(device: torch.device | str) -> Timer:
    device = torch.device(device)
    return CudaTimer(device) if device.type == "cuda" else CpuTimer()


@contextlib.contextmanager
def pinned_threads(threads: int | None = None, affinity: bool = True):
    """Fix torch's intra-op thread count (and, where the OS allows, pin this thread to the first ``threads`` allowed
    cores) for the duration; restore both afterwards. Yields ``{"threads": n, "cpu_set": "0,1" | "unpinned"}``."""
    prev_threads = torch.get_num_threads()
    n = int(threads) if threads is not None else prev_threads
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    prev_affinity = None
    info = {"threads": n, "cpu_set": "unpinned"}
    torch.set_num_threads(n)
    try:
        if affinity and hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity"):
            try:
                prev_affinity = os.sched_getaffinity(0)
                cores = sorted(prev_affinity)[:n]
                os.sched_setaffinity(0, cores)
                info["cpu_set"] = ",".join(map(str, cores))
            except OSError:
                prev_affinity = None
        yield info
    finally:
        if prev_affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, prev_affinity)
        torch.set_num_threads(prev_threads)


# ------------------------------------------------------------------------------------------------- device facts


def _cpu_model_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown cpu"


def _nvidia_smi() -> dict:
    """Driver, clocks and power limit when ``nvidia-smi`` is there and answers; {} otherwise."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    fields = ["driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "power.limit", "mig.mode.current"]
    try:
        out = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if not out:
        return {}
    vals = [v.strip() for v in out[0].split(",")]
    names = ["driver_version", "sm_clock", "sm_clock_max", "mem_clock", "power_limit", "mig_mode"]
    return dict(zip(names, vals))


def _sdpa_note(device: torch.device) -> str:
    if device.type == "cuda":
        b = torch.backends.cuda
        flags = {"flash": b.flash_sdp_enabled(), "mem_efficient": b.mem_efficient_sdp_enabled(),
                 "math": b.math_sdp_enabled()}
        if hasattr(b, "cudnn_sdp_enabled"):
            flags["cudnn"] = b.cudnn_sdp_enabled()
        on = [k for k, v in flags.items() if v]
        return "SDPA dispatch among enabled backends: " + (", ".join(on) or "none")
    return "SDPA on CPU: torch default dispatch (flash-attention CPU kernel or math)"


def device_info(device: torch.device | str) -> dict:
    """Facts about the device and software a timing was measured on (protocol §6.5)."""
    device = torch.device(device)
    info: dict = {
        "device_type": device.type,
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,  # None: not timed on CUDA
        "torch_cuda_build": torch.version.cuda,  # the CUDA torch was built with (None for CPU-only builds)
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "compile_mode": "none",
        "sdpa_backend": _sdpa_note(device),
        "python_version": platform.python_version(),
        "host_cpu": _cpu_model_name(),
    }
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(device_name=torch.cuda.get_device_name(idx), device_index=idx,
                    compute_capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn_version=torch.backends.cudnn.version(),
                    mig="MIG-" in os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        info.update(_nvidia_smi())
    else:
        info["device_name"] = info["host_cpu"]
    return info


# ------------------------------------------------------------------------------------------------ measurements


@dataclass(frozen=True)
class TimingResult(MetricResult):
    """A :class:`MetricResult` that also keeps the raw per-run samples (ms per stage) for an artifact."""

    samples: dict = field(default_factory=dict, repr=False, compare=False)


def _captions_for(captions: Sequence[str], i: int, batch: int) -> list[str]:
    n = len(captions)
    return [captions[(i * batch + j) % n] for j in range(batch)]


def _summary(name: str, xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, dtype=np.float64)
    return {f"{name}_ms_median": float(np.median(a)), f"{name}_ms_p90": float(np.percentile(a, 90)),
            f"{name}_ms_mean": float(a.mean()), f"{name}_ms_std": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def _resolve(pipeline: Pipeline, device, dtype) -> tuple[torch.device, torch.dtype]:
    device = torch.device(device) if device is not None else torch.device(pipeline.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device, dtype if dtype is not None else pipeline.dtype


def _check(captions, batch: int, warmup: int, n: int, what: str, minimum: int) -> None:
    if not captions:
        raise ValueError("captions must not be empty")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if warmup < MIN_WARMUP:
        raise ValueError(f"warmup must be >= {MIN_WARMUP} untimed calls (metrics protocol §6.2), got {warmup}")
    if n < minimum:
        raise ValueError(f"{what} must be >= {minimum} (metrics protocol §6), got {n}")


class _Runner:
    """One generation call split into stages, with marks taken between them."""

    def __init__(self, pipeline: Pipeline, device: torch.device, dtype: torch.dtype, timer: Timer, seed: int):
        self.p, self.device, self.dtype, self.timer = pipeline, device, dtype, timer
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, captions: list[str]) -> tuple:
        t = self.timer
        noise = torch.randn((len(captions), *self.p.latent_shape), generator=self.gen, device=self.device,
                            dtype=self.dtype)
        m0 = t.mark()
        cond = self.p.encode_text(captions)
        m1 = t.mark()
        x = self.p.denoise(cond, noise)
        m2 = t.mark()
        images = self.p.decode(x)
        m3 = t.mark()
        if len(images) != len(captions):
            raise RuntimeError(f"decode returned {len(images)} images for {len(captions)} captions")
        return m0, m1, m2, m3


def _protocol(metric: str, pipeline: Pipeline, device: torch.device, dtype: torch.dtype, timer: Timer, pin: dict,
              num_images: int, extra: dict) -> Protocol:
    facts = device_info(device)
    facts.update(dtype=str(dtype).removeprefix("torch."), steps=int(pipeline.steps), nfe=int(pipeline.nfe),
                 threads=pin["threads"], cpu_set=pin["cpu_set"], resolution=int(pipeline.resolution),
                 timer=timer.name, **extra)
    return Protocol(metric=metric, extractor=pipeline.description, num_images=num_images,
                    resolution=int(pipeline.resolution), resize="n/a (timing)", dtype=facts["dtype"], extra=facts)


def measure_latency(pipeline: Pipeline, captions: Sequence[str], warmup: int = MIN_WARMUP,
                    runs: int = MIN_RUNS, batch: int = 1, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None, threads: int | None = None, pin_affinity: bool = True,
                    seed: int = 0) -> TimingResult:
    """Per-call latency: ``warmup`` untimed calls, then ``runs`` (>= 50) timed calls, each synchronized.

    Values (ms): ``latency_{text,denoise,decode,e2e}_ms_{median,p90,mean,std}`` (NFE and steps are protocol
    fields); raw samples per stage in ``result.samples``. ``e2e`` is the whole call (noise draw, the three stages and host overhead) on the host clock
    between two synchronizes. ``device``/``dtype`` default to the pipeline's; ``threads`` to the current torch count.
    """
    _check(captions, batch, warmup, runs, "runs", MIN_RUNS)
    device, dtype = _resolve(pipeline, device, dtype)
    timer = make_timer(device)
    run = _Runner(pipeline, device, dtype, timer, seed)
    samples: dict[str, list[float]] = {k: [] for k in (*STAGES, "e2e")}
    with pinned_threads(threads, affinity=pin_affinity) as pin, torch.inference_mode():
        for i in range(warmup):
            run(_captions_for(captions, i, batch))
        timer.sync()
        for i in range(runs):
            caps = _captions_for(captions, warmup + i, batch)
            timer.sync()
            t0 = time.perf_counter_ns()
            m0, m1, m2, m3 = run(caps)
            timer.sync()
            t1 = time.perf_counter_ns()
            samples["text"].append(timer.elapsed_ms(m0, m1))
            samples["denoise"].append(timer.elapsed_ms(m1, m2))
            samples["decode"].append(timer.elapsed_ms(m2, m3))
            samples["e2e"].append((t1 - t0) / 1e6)
    values: dict[str, float] = {}
    for k, xs in samples.items():
        values.update(_summary(k, xs))
    values = {f"latency_{k}": v for k, v in values.items()}
    metric = "latency (batch 1)" if batch == 1 else f"latency (batch {batch})"
    proto = _protocol(metric, pipeline, device, dtype, timer, pin, runs * batch,
                      dict(batch=batch, warmup=warmup, runs=runs))
    return TimingResult(key="latency", values=values, protocol=proto, samples=samples)


def measure_throughput(pipeline: Pipeline, captions: Sequence[str], batch: int = 10, batches: int = MIN_BATCHES,
                       warmup: int = MIN_WARMUP, device: torch.device | str | None = None,
                       dtype: torch.dtype | None = None, threads: int | None = None, pin_affinity: bool = True,
                       seed: int = 0) -> TimingResult:
    """Images/s over ``batches`` (>= 20) timed batches of ``batch`` after ``warmup`` untimed ones: wall time on the
    host clock between a synchronize before the first batch and one after the last (no synchronize in between).

    Values: ``throughput_images_per_s``, per-batch stage times ``throughput_{text,denoise,decode}_ms_*`` and
    ``throughput_batch_ms_mean`` (wall time / batches); raw per-batch stage samples in ``result.samples``.
    """
    _check(captions, batch, warmup, batches, "batches", MIN_BATCHES)
    device, dtype = _resolve(pipeline, device, dtype)
    timer = make_timer(device)
    run = _Runner(pipeline, device, dtype, timer, seed)
    marks = []
    with pinned_threads(threads, affinity=pin_affinity) as pin, torch.inference_mode():
        for i in range(warmup):
            run(_captions_for(captions, i, batch))
        caps = [_captions_for(captions, warmup + i, batch) for i in range(batches)]
        timer.sync()
        t0 = time.perf_counter_ns()
        for c in caps:
            marks.append(run(c))
        timer.sync()
        t1 = time.perf_counter_ns()
    wall_s = (t1 - t0) / 1e9
    samples = {"text": [timer.elapsed_ms(m[0], m[1]) for m in marks],
               "denoise": [timer.elapsed_ms(m[1], m[2]) for m in marks],
               "decode": [timer.elapsed_ms(m[2], m[3]) for m in marks]}
    values: dict[str, float] = {"images_per_s": batch * batches / wall_s, "batch_ms_mean": wall_s * 1e3 / batches}
    for k, xs in samples.items():
        values.update(_summary(k, xs))
    values = {f"throughput_{k}": v for k, v in values.items()}
    proto = _protocol("throughput (images/s)", pipeline, device, dtype, timer, pin, batch * batches,
                      dict(batch=batch, warmup=warmup, runs=batches, wall_s=round(wall_s, 6)))
    return TimingResult(key="throughput", values=values, protocol=proto, samples=samples)
