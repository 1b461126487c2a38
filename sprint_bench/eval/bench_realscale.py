"""Real-scale latency: SANA-Sprint's own architecture at full size, built from configs with random weights (nothing is
downloaded), timed through the harness's latency protocol (:mod:`sprint_bench.eval.latency`) in one process on one
device -- the 20-step CFG flow teacher against the 1-, 2- and 4-step student, interleaved rounds.

Parts (method reference §4.1, §2): ``SanaTransformer2DModel`` 0.6B (28 x 1152) or 1.6B (20 x 2240), patch 1, 32 latent
channels, QK-RMSNorm across heads, the student with the guidance embedding; Gemma-2-2B (``Gemma2Model``) on 300 tokens;
the DC-AE f32c32 decoder (``AutoencoderDC``, scale 0.41407) to 1024x1024 uint8 on the host. Random weights run the same
kernels as trained ones (no stage has data-dependent control flow), so the timings stand for the released models';
tokenisation is not timed (a fixed 300-token id tensor on the device; no tokenizer offline). The teacher's Euler grid is
uniform (SANA samples with flow shift 3; the cost per step is the same). ``--sizes tiny`` builds toy parts for tests.

``make bench-realscale`` (needs a GPU; ``--device cpu`` works but is slow and not comparable): the JSON is printed,
written to ``--out`` and logged to MLflow (experiment ``realscale``, one run per size; ``--no-mlflow`` where MLflow
is not installed)."""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sprint_bench.eval.latency import StagedPipeline, device_info, measure_latency

SIZES = {  # (depth, width C, linear self-attention heads of dim 32, cross-attention heads); method reference §4.1
    "0.6B": (28, 1152, 36, 16),
    "1.6B": (20, 2240, 70, 20),
    "tiny": (2, 64, 2, 2),
}
TEXT_TOKENS = 300  # SANA's caption length (Gemma-2, padded to max_length)
PROMPT_TOKENS = 24  # non-padding tokens of the timed caption (the cross-attention mask)
VAE_SCALE = 0.41407  # DC-AE f32c32 "sana-1.0" latent scale
LATENT_CHANNELS, VAE_FACTOR = 32, 32
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def sana_config(size: str, resolution: int, guidance_embeds: bool) -> dict:
    """The SanaTransformer2DModel config of SANA(-Sprint) ``size`` at ``resolution`` (tiny: a toy of the same shape)."""
    depth, width, heads, cross_heads = SIZES[size]
    return dict(in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_attention_heads=heads,
                attention_head_dim=width // heads, num_layers=depth, num_cross_attention_heads=cross_heads,
                cross_attention_head_dim=width // cross_heads, cross_attention_dim=width,
                caption_channels=_gemma_config(size).hidden_size, mlp_ratio=2.5, sample_size=resolution // VAE_FACTOR,
                patch_size=1, norm_elementwise_affine=False, norm_eps=1e-6, interpolation_scale=None,
                qk_norm="rms_norm_across_heads", guidance_embeds=guidance_embeds,
                **({"guidance_embeds_scale": 0.1} if guidance_embeds else {}))


def _gemma_config(size: str):
    from transformers import Gemma2Config

    if size == "tiny":
        return Gemma2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    return Gemma2Config(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                        sliding_window=4096, attn_logit_softcapping=50.0, final_logit_softcapping=30.0)


def dcae_config(size: str) -> dict:
    """AutoencoderDC config of DC-AE f32c32 (SANA 1.0); tiny: the same 32x / 32-channel shape with thin blocks."""
    thin = size == "tiny"
    types = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
    channels = (8, 8, 16, 16, 32, 32) if thin else (128, 256, 512, 512, 1024, 1024)
    multiscales = ((), (), (), (5,), (5,), (5,))
    return dict(in_channels=3, latent_channels=LATENT_CHANNELS, attention_head_dim=8 if thin else 32,
                encoder_block_types=types, decoder_block_types=types, encoder_block_out_channels=channels,
                decoder_block_out_channels=channels, encoder_layers_per_block=(1,) * 6 if thin else (2, 2, 2, 3, 3, 3),
                decoder_layers_per_block=(1,) * 6 if thin else (3,) * 6, encoder_qkv_multiscales=multiscales,
                decoder_qkv_multiscales=multiscales,
                downsample_block_type="conv", upsample_block_type="interpolate", decoder_norm_types="rms_norm",
                decoder_act_fns="silu", scaling_factor=VAE_SCALE)


@dataclass
class Parts:
    teacher: torch.nn.Module  # FlowBackbone
    student: torch.nn.Module  # TrigFlowModel with the guidance embedding
    text_encoder: torch.nn.Module  # Gemma2Model
    vae: torch.nn.Module  # AutoencoderDC
    size: str
    resolution: int


def parameter_counts(size: str, resolution: int = 1024) -> dict[str, int]:
    """Parameters of each part, counted on the meta device (nothing allocated)."""
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Model

    with torch.device("meta"):
        return _numels({"teacher": SanaTransformer2DModel(**sana_config(size, resolution, False)),
                        "student": SanaTransformer2DModel(**sana_config(size, resolution, True)),
                        "text_encoder": Gemma2Model(_gemma_config(size)),
                        "vae_decoder": AutoencoderDC(**dcae_config(size)).decoder})


def _numels(modules: dict[str, torch.nn.Module]) -> dict[str, int]:
    return {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()}


@torch.no_grad()
def build_parts(size: str, resolution: int, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Parts:
    """Random-weight teacher, student (the teacher's weights + guidance embedding, ``student_from_teacher``), Gemma-2
    and DC-AE, initialised directly on ``device`` and cast to ``dtype``."""
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Model

    from sprint_bench.models.sana import FlowBackbone
    from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if resolution % VAE_FACTOR:
        raise ValueError(f"resolution must be a multiple of {VAE_FACTOR} (the DC-AE factor), got {resolution}")
    torch.manual_seed(seed)
    with torch.device(device):
        transformer = SanaTransformer2DModel(**sana_config(size, resolution, False))
        student = student_from_teacher(transformer)
        text_encoder = Gemma2Model(_gemma_config(size))
        vae = AutoencoderDC(**dcae_config(size))
    vae.encoder = None  # only the decoder is timed
    mods = [FlowBackbone(transformer), TrigFlowModel(student), text_encoder, vae]
    return Parts(*(m.to(device, dtype).eval().requires_grad_(False) for m in mods), size=size, resolution=resolution)


def _encode_fn(parts: Parts, device, dtype):
    """Gemma-2 on a fixed (1, 300) token batch per caption; the mask keeps ``PROMPT_TOKENS`` tokens (padding after)."""
    vocab = parts.text_encoder.config.vocab_size
    ids = torch.randint(1, vocab, (1, TEXT_TOKENS), generator=torch.Generator().manual_seed(1)).to(device)
    mask = (torch.arange(TEXT_TOKENS, device=device) < PROMPT_TOKENS).long()[None]

    @torch.no_grad()
    def encode(captions: list[str]):
        b = len(captions)
        out = parts.text_encoder(input_ids=ids.expand(b, -1), attention_mask=mask.expand(b, -1))
        return out.last_hidden_state.to(dtype), mask.expand(b, -1)

    return encode


def _decode_fn(parts: Parts):
    from sprint_bench.data.datamodule import to_uint8

    @torch.no_grad()
    def decode(u: torch.Tensor) -> np.ndarray:
        return to_uint8(parts.vae.decode(u / VAE_SCALE, return_dict=False)[0].float())

    return decode


def teacher_pipeline(parts: Parts, steps: int, cfg_scale: float, device, dtype) -> StagedPipeline:
    from sprint_bench.samplers.flow import euler_sample

    encode = _encode_fn(parts, device, dtype)
    null_t, null_m = encode([""])

    def denoise(cond, noise):
        return euler_sample(parts.teacher, noise, *cond, null_t, null_m, steps, cfg_scale)

    return _pipeline(parts, encode, denoise, 2 * steps, steps, device, dtype,
                     f"SANA {parts.size} flow teacher, Euler {steps} steps, batched CFG {cfg_scale:g}")


def student_pipeline(parts: Parts, steps: int, guidance: float, device, dtype) -> StagedPipeline:
    from sprint_bench.samplers.scm import sample_student, scm_timesteps

    timesteps = scm_timesteps(steps)

    def denoise(cond, noise):
        return sample_student(parts.student, *cond, guidance, lambda i: noise if i == 0 else torch.randn_like(noise),
                              timesteps, device=device, dtype=dtype)

    return _pipeline(parts, _encode_fn(parts, device, dtype), denoise, steps, steps, device, dtype,
                     f"SANA-Sprint {parts.size} student, {steps}-step sCM sampler t={list(timesteps)}, "
                     f"guidance embedding w={guidance:g}")


def _pipeline(parts: Parts, encode, denoise, nfe, steps, device, dtype, what: str) -> StagedPipeline:
    side = parts.resolution // VAE_FACTOR
    return StagedPipeline(encode_text=encode, denoise=denoise, decode=_decode_fn(parts), nfe=nfe, steps=steps,
                          resolution=parts.resolution, latent_shape=(LATENT_CHANNELS, side, side), device=device,
                          dtype=dtype, description=f"{what}; text Gemma-2-2B config ({TEXT_TOKENS} tokens, random "
                          f"weights); decode DC-AE f32c32 config (random weights); {parts.resolution}px")


def run(size: str, device: torch.device, dtype: torch.dtype, resolution: int = 1024, teacher_steps: int = 20,
        cfg_scale: float = 4.5, student_steps=(1, 2, 4), guidance: float = 4.5, warmup: int = 10, runs: int = 50,
        rounds: int = 2) -> dict:
    """Interleaved rounds (teacher, student 1, 2, 4 steps, ...); per pipeline the median over rounds of each round's
    median per stage, and the teacher-over-student ratios end to end and for the denoising stage."""
    parts = build_parts(size, resolution, device, dtype)
    pipes = {f"teacher {teacher_steps} steps": teacher_pipeline(parts, teacher_steps, cfg_scale, device, dtype)}
    for s in student_steps:
        pipes[f"student {s} step{'s' if s > 1 else ''}"] = student_pipeline(parts, s, guidance, device, dtype)
    captions = ["a photo of a red circle"]
    per_round: dict[str, dict[str, list[float]]] = {k: {} for k in pipes}
    for _ in range(rounds):
        for name, pipe in pipes.items():
            v = measure_latency(pipe, captions, warmup=warmup, runs=runs).values
            for stage in ("text", "denoise", "decode", "e2e"):
                per_round[name].setdefault(stage, []).append(v[f"latency_{stage}_ms_median"])
    lat = {k: {s: statistics.median(xs) for s, xs in d.items()} for k, d in per_round.items()}
    t_name = next(iter(pipes))
    params = _numels({"teacher": parts.teacher.transformer, "student": parts.student.transformer,
                      "text_encoder": parts.text_encoder, "vae_decoder": parts.vae.decoder})
    return {"size": size, "params": params,
            "resolution": resolution, "dtype": str(dtype).removeprefix("torch."), "batch": 1, "warmup": warmup,
            "runs_per_round": runs, "rounds": rounds, "nfe": {k: p.nfe for k, p in pipes.items()},
            "descriptions": {k: p.description for k, p in pipes.items()}, "latency_ms": lat,
            "speedup_vs_teacher": {k: {s: lat[t_name][s] / v[s] for s in ("e2e", "denoise")}
                                   for k, v in lat.items() if k != t_name}}


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def log_run(result: dict, device: dict, experiment: str, uri: str) -> str:
    """One MLflow run per size: device facts and settings as params, every stage latency (ms) and speed-up as a
    metric, the result as ``realscale.json``. Returns the run id."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from sprint_bench.tracking.eval_runs import RunLogger
    from sprint_bench.tracking.mlflow_store import ensure_experiment

    client = MlflowClient(uri)
    run_id = client.create_run(ensure_experiment(experiment, uri), run_name=f"realscale {result['size']} "
                               f"{device['device_name']}", tags={"kind": "bench-realscale"}).info.run_id
    logger = RunLogger(client, run_id)
    settings = ("size", "resolution", "dtype", "batch", "warmup", "runs_per_round", "rounds")
    logger.params({**{f"device.{k}": v for k, v in device.items()}, **{k: result[k] for k in settings},
                   **{f"params.{k}": n for k, n in result["params"].items()},
                   **{f"nfe.{_slug(k)}": n for k, n in result["nfe"].items()}})
    values = {f"latency.{_slug(k)}.{s}_ms": v for k, d in result["latency_ms"].items() for s, v in d.items()}
    values.update({f"speedup.{_slug(k)}.{s}": v for k, d in result["speedup_vs_teacher"].items() for s, v in d.items()})
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in values.items()])
    logger.artifact_bytes(json.dumps({"device": device, **result}, indent=2).encode(), "realscale.json")
    client.set_terminated(run_id)
    return run_id


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.6B,1.6B", help=f"comma list of {sorted(SIZES)}")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--teacher-steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=4.5, help="teacher CFG scale and student guidance w (SANA's 4.5)")
    ap.add_argument("--student-steps", default="1,2,4")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50, help="timed calls per round (>= 50, metrics protocol §6.2)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (defaults: ~7 min on an H200)")
    ap.add_argument("--out", help="also write the JSON here (refused if the file exists, unless --force)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    ap.add_argument("--experiment", default="realscale", help="MLflow experiment (one run per size)")
    ap.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or the project's mlflow.db")
    ap.add_argument("--no-mlflow", action="store_true", help="print and write JSON only (no MLflow at hand)")
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        ap.error(f"--sizes: unknown {bad}; choose from {sorted(SIZES)}")
    if args.out and Path(args.out).exists() and not args.force:
        ap.error(f"--out {args.out} exists: pass --force to overwrite it, or another path")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible (use --device cpu for a slow, non-comparable run)")
    uri = None
    if not args.no_mlflow:
        try:
            import mlflow  # noqa: F401  (checked before any model is built)
        except ImportError as e:
            ap.error(f"MLflow is not importable ({e}): install it or pass --no-mlflow")
        from sprint_bench.tracking.mlflow_store import tracking_uri

        uri = tracking_uri(args.tracking_uri)
    steps = tuple(int(s) for s in args.student_steps.split(","))
    res = {"device": device_info(device), "results": []}
    for s in sizes:  # each size's result is printed, written and logged as soon as it is measured
        res["results"].append(run(s, device, DTYPES[args.dtype], args.resolution, args.teacher_steps, args.cfg,
                                  steps, args.cfg, args.warmup, args.runs, args.rounds))
        if uri is not None:
            res["results"][-1]["mlflow_run_id"] = log_run(res["results"][-1], res["device"], args.experiment, uri)
        text = json.dumps(res, indent=2)
        print(text, flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
