"""The evaluation harness: `sprint-bench eval <checkpoint-or-run> --steps 1,2,4 --metrics fd,kid,clip,geneval,latency`.

For each step count it generates the GenEval-Shapes images once (553 prompts x 4 = 2,212 PNGs in the official
layout, cached and resumable, one folder per sampler, seed and images per prompt), computes every requested metric
on those images, and logs one MLflow child run per (model, steps) under a parent run per model. A finished child
run with the same protocol is skipped; an interrupted one is resumed (its finished metrics are kept in
``metrics.json`` beside the images).

``edge_f1`` (opt-in) scores image k of prompt i against the thickness-1 edges of the ControlNet condition of (prompt
i's metadata, its seed ``seed + i * ipp + k``) (:mod:`sprint_bench.data.shapes.control`), for any generator: a
ControlNet generator was given that condition, a plain one gives the unconditioned baseline."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sprint_bench.data.shapes.control import CONDITION_RULE, CONTROL_SEED_SALT, condition_edges
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import realize
from sprint_bench.eval.generators import load_generator
from sprint_bench.eval.geneval.generate import generate_geneval, images_folder_name
from sprint_bench.eval.geneval.layout import iter_samples, score_folder, write_results
from sprint_bench.eval.geneval.scoring import ScoringOptions
from sprint_bench.eval.geneval.shapes_detector import ShapesDetector
from sprint_bench.eval.grid import image_grid, png_bytes
from sprint_bench.eval.metrics.base import MetricResult, Protocol
from sprint_bench.models.text_encoder import CaptionCache
from sprint_bench.samplers.ode_pairs import PAIR_SEED_BASE
from sprint_bench.tracking.eval_runs import guidance_label

log = logging.getLogger(__name__)
METRICS = ("fd", "kid", "clip", "geneval", "latency", "fid", "edge_f1")
DEFAULT_METRICS = ("fd", "kid", "clip", "geneval", "latency")
DEFAULT_CLIP_SCORER = Path("artifacts") / "clip-scorer"


@dataclass
class EvalSettings:
    steps: list[int] = field(default_factory=lambda: [1, 2, 4])
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    cfg_scale: float | None = None  # None: the model's own default (teacher: sample.cfg_scale)
    seed: int = 0
    images_per_prompt: int = 4
    batch_size: int = 64
    clip_scorer: str = str(DEFAULT_CLIP_SCORER)
    inception_weights: str | None = None
    latency_warmup: int = 10
    latency_runs: int = 50  # timed calls (metrics protocol §6.2: >= 50 after >= 10 untimed)
    throughput_batch: int = 10
    throughput_batches: int = 20
    threads: int = 2
    limit_prompts: int | None = None  # smoke runs only: the first N GenEval-Shapes prompts
    out_root: str = "runs/eval"
    experiment: str = "sprint_bench"
    tracking_uri: str | None = None


def parse_metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ValueError(f"unknown metric(s) {bad or [text]}; valid metrics: {', '.join(METRICS)}")
    return names


def parse_steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--steps must be a comma-separated list of integers, got {text!r}") from None
    if not steps or any(s < 1 for s in steps):
        raise ValueError(f"--steps must be positive integers, got {text!r}")
    return steps


class Evaluator:
    """Everything that can fail cheaply is checked in the constructor, before any generation."""

    def __init__(self, checkpoint: str | Path, settings: EvalSettings):
        self.s = settings
        check_counts(settings)
        for m in settings.metrics:
            if m not in METRICS:
                raise ValueError(f"unknown metric {m!r}; valid metrics: {', '.join(METRICS)}")
        if settings.steps and any(int(k) < 1 for k in settings.steps):
            raise ValueError(f"steps must be >= 1, got {settings.steps}")
        self.model = load_generator(checkpoint)
        self.world = self.model.cfg.world
        self.cfg_scale = self.model.cfg.sample.cfg_scale if settings.cfg_scale is None else settings.cfg_scale
        self.extractors = {}
        if "fd" in settings.metrics or "kid" in settings.metrics:
            from sprint_bench.eval.metrics.extractors import EfficientNetLite0Features

            self.extractors["effnet"] = EfficientNetLite0Features()
        if "fid" in settings.metrics:
            from sprint_bench.eval.metrics.extractors import InceptionFeatures

            if not settings.inception_weights:
                raise FileNotFoundError("metric 'fid' needs --inception-weights /path/to/inception-2015-12-05.pt")
            self.extractors["inception"] = InceptionFeatures(settings.inception_weights)
        self.clip = None
        if "clip" in settings.metrics:
            from sprint_bench.eval.clip.score import ClipScorer

            if not Path(settings.clip_scorer).exists():
                raise FileNotFoundError(f"CLIP scorer not found at {settings.clip_scorer}; train it with "
                                        f"`make clip-scorer` or pass --clip-scorer DIR")
            self.clip = ClipScorer.from_dir(settings.clip_scorer)
        all_prompts = geneval_shapes_prompts(self.world)
        self.prompts = all_prompts[:settings.limit_prompts]
        self.first_prompts = len(self.prompts) if len(self.prompts) < len(all_prompts) else None
        last_seed = settings.seed + len(self.prompts) * settings.images_per_prompt - 1
        if settings.seed < 0 or last_seed >= PAIR_SEED_BASE:
            raise ValueError(f"image seeds {settings.seed}..{last_seed} must lie in [0, 2**31): torch keeps a seed's "
                             f"low 32 bits, and seeds from 2**31 on draw the ODE-pair banks' training noise")
        self.cache_dir = Path(self.model.cfg.output_dir) / "cache"
        self.captions = CaptionCache.build(sorted({p["prompt"] for p in self.prompts}),
                                           self.model.cfg.text.max_length, self.cache_dir)
        self.root = Path(settings.out_root) / self.model.model_id

    # ------------------------------------------------------------------ reference data
    def _prompt_set_hash(self) -> str:
        blob = json.dumps({"world": asdict(self.world), "prompts": self.prompts}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def real_images(self, n: int, seed: int) -> np.ndarray:
        """Ground-truth renders of the same prompts, image k of prompt i with its own seed."""
        ipp = self.s.images_per_prompt
        out = np.empty((n, self.world.resolution, self.world.resolution, 3), np.uint8)
        for j in range(n):
            i, k = divmod(j, ipp)
            rng = np.random.default_rng([seed, i, k])
            out[j] = render(realize(self.prompts[i % len(self.prompts)], self.world, rng))
        return out

    def reference(self, extractor):
        from sprint_bench.eval.metrics.fd import reference_stats

        n = len(self.prompts) * self.s.images_per_prompt
        cache = self.cache_dir / "reference" / self._prompt_set_hash()
        return reference_stats(extractor, self.real_images, n, self.world.resolution, 1000 + self.s.seed, cache)

    # ------------------------------------------------------------------ one (model, steps)
    def protocol_hash(self, steps: int) -> str:
        facts = {"model": self.model.model_id, "steps": steps, "cfg": guidance_label(self.model, self.cfg_scale),
                 "sampler": self.model.sampler_tag(steps, self.cfg_scale), "seed": self.s.seed,
                 "ipp": self.s.images_per_prompt, "prompts": len(self.prompts), "metrics": sorted(self.s.metrics),
                 "extractors": {k: e.id for k, e in self.extractors.items()},
                 "clip": getattr(self.clip, "extractor", None),
                 "latency": [self.s.latency_warmup, self.s.latency_runs, self.s.throughput_batch,
                             self.s.throughput_batches, self.s.threads]}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]

    def load_images(self, folder: Path) -> tuple[np.ndarray, list[str], list[dict]]:
        """The images of exactly the requested prompts x images per prompt (anything else in ``folder`` is an
        error: every metric must see the image set its protocol names)."""
        imgs, caps, metas, found = [], [], [], []
        for i, meta, png in iter_samples(folder):
            imgs.append(np.asarray(Image.open(png).convert("RGB")))
            caps.append(meta["prompt"])
            metas.append(meta)
            found.append((i, int(png.stem)))
        ipp = self.s.images_per_prompt
        if found != [(i, k) for i in range(len(self.prompts)) for k in range(ipp)]:
            raise ValueError(f"{folder} holds {len(found)} images, not images 0..{ipp - 1} of prompts "
                             f"0..{len(self.prompts) - 1} ({len(self.prompts) * ipp} images): remove the folder and "
                             f"evaluate again")
        return np.stack(imgs), caps, metas

    def folder(self, steps: int) -> Path:
        """Where the images and finished metrics of ``steps`` live: one folder per sampler, seed, images per
        prompt and prompt subset, so another seed or a smoke run never reuses (or overwrites) the images of the
        first."""
        tag = self.model.sampler_tag(steps, self.cfg_scale)
        return self.root / images_folder_name(tag, self.s.seed, self.s.images_per_prompt, self.first_prompts)

    def evaluate_steps(self, steps: int, logger) -> dict:
        folder = self.folder(steps)
        images_dir = folder / "images"
        done_file = folder / "metrics.json"
        done = json.loads(done_file.read_text()) if done_file.exists() else {}
        phash = self.protocol_hash(steps)
        if done.get("protocol_hash") != phash:
            done = {"protocol_hash": phash, "results": {}}
        for key, r in done["results"].items():  # resumed: make sure MLflow has what was already computed
            logger.metrics(MetricResult(key, r["values"], Protocol(**r["protocol"])))

        def save(result: MetricResult):
            done["results"][result.key] = {"values": result.values, "protocol": asdict(result.protocol)}
            tmp = done_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(done, indent=1, default=str))
            tmp.replace(done_file)
            logger.metrics(result)

        needs_images = any(m in self.s.metrics for m in ("fd", "kid", "clip", "geneval", "fid", "edge_f1"))
        if needs_images:
            fn = self.model.sample_fn(steps, self.cfg_scale, self.captions)
            generate_geneval(fn, self.prompts, images_dir, self.s.images_per_prompt, self.s.batch_size, self.s.seed)
            images, caps, _ = self.load_images(images_dir)
            logger.artifact_bytes(png_bytes(sample_grid(images, len(self.prompts))), "samples/grid.png")
        res = self.world.resolution
        for kind, extractor in self.extractors.items():
            from sprint_bench.eval.metrics.fd import fd_metric, kid_metric, metric_names

            fd_key, _, kid_key, _ = metric_names(extractor)
            want_fd = ("fd" if kind == "effnet" else "fid") in self.s.metrics and fd_key not in done["results"]
            want_kid = kind == "effnet" and "kid" in self.s.metrics and kid_key not in done["results"]
            if not (want_fd or want_kid):
                continue
            ref = self.reference(extractor)
            feats = extractor(images)
            if want_fd:
                save(fd_metric(images, ref, extractor, res, gen_feats=feats))
            if want_kid:
                save(kid_metric(images, ref, extractor, res, gen_feats=feats, seed=self.s.seed))
        if "clip" in self.s.metrics and self.clip.key not in done["results"]:
            from sprint_bench.eval.clip.score import clip_score_metric

            save(clip_score_metric(images, caps, self.clip, res))
        if "geneval" in self.s.metrics and "geneval_shapes" not in done["results"]:
            rows, summary = score_folder(images_dir, ShapesDetector(self.world), options=ScoringOptions(),
                                         colors=list(self.world.colors))
            write_results(rows, summary, folder / "geneval")
            logger.artifact_file(folder / "geneval" / "results.jsonl", "geneval")
            logger.artifact_file(folder / "geneval" / "summary.json", "geneval")
            save(geneval_result(summary, len(rows), res, self.s.images_per_prompt))
        if "edge_f1" in self.s.metrics and "edge_f1_tol1" not in done["results"]:
            result, per_image = self.edge_f1(images_dir)
            logger.artifact_bytes(json.dumps(per_image, indent=0).encode(), "edge_f1/per_image.json")
            save(result)
        if "latency" in self.s.metrics and "latency" not in done["results"]:
            save_timing = self._timings(steps)
            for r in save_timing:
                save(r)
                logger.artifact_bytes(json.dumps(getattr(r, "samples", {}), indent=1).encode(),
                                      f"timing/{r.key}_samples.json")
        return done["results"]

    def edge_f1(self, images_dir: Path) -> tuple[MetricResult, list[dict]]:
        """Edge F1 (tolerance 1 px) of every image under ``images_dir`` against its condition's thickness-1 edges,
        plus the per-image rows (prompt index, image k, seed, precision, recall, F1)."""
        from sprint_bench.eval.metrics.edge_f1 import edge_f1_metric, edge_f1_per_image

        ipp, keys, images = self.s.images_per_prompt, [], []
        for i, meta, png in iter_samples(images_dir):
            if meta["prompt"] != self.prompts[i]["prompt"]:
                raise ValueError(f"{png}: prompt {meta['prompt']!r} is not GenEval-Shapes prompt {i}")
            keys.append((i, int(png.stem), self.s.seed + i * ipp + int(png.stem)))
            images.append(np.asarray(Image.open(png).convert("RGB")))
        images = np.stack(images)
        cond = condition_edges([self.prompts[i] for i, _, _ in keys], [s for _, _, s in keys], self.world)
        result = edge_f1_metric(cond, images, tolerance=1)
        control = self.model.control
        extra = {**result.protocol.extra, "condition": CONDITION_RULE, "condition_salt": CONTROL_SEED_SALT,
                 "condition_seed": "image seed = seed + prompt index * images_per_prompt + k",
                 "reference_edges": "thickness 1", "conditioned": "yes" if control else "no"}
        if control:
            extra["model_condition_thickness"] = control["thickness"]
        result = MetricResult(result.key, result.values, replace(result.protocol, extra=extra))
        per = edge_f1_per_image(cond, images, tolerance=1)
        rows = [{"index": i, "k": k, "seed": s, "prompt": self.prompts[i]["prompt"],
                 **{m: round(float(per[m][j]), 6) for m in ("precision", "recall", "f1")}}
                for j, (i, k, s) in enumerate(keys)]
        return result, rows

    def _timings(self, steps: int) -> list[MetricResult]:
        from sprint_bench.eval.latency import measure_latency, measure_throughput
        from sprint_bench.models.text_encoder import TextEncoder

        encoder = TextEncoder(self.model.cfg.text.max_length)
        pipe = self.model.pipeline(steps, self.cfg_scale, encoder)
        caps = [p["prompt"] for p in self.prompts[::37]]
        lat = measure_latency(pipe, caps, warmup=self.s.latency_warmup, runs=self.s.latency_runs, batch=1,
                              threads=self.s.threads)
        thr = measure_throughput(pipe, caps, batch=self.s.throughput_batch, batches=self.s.throughput_batches,
                                 warmup=self.s.latency_warmup, threads=self.s.threads)
        return [lat, thr]

    def run(self) -> list[dict]:
        from sprint_bench.tracking.eval_runs import EvalTracker

        torch.set_num_threads(self.s.threads)
        tracker = EvalTracker(self.s.experiment, self.s.tracking_uri, self.model)
        rows = []
        for steps in self.s.steps:
            with tracker.child(steps, self.cfg_scale, self.s, self.protocol_hash(steps)) as logger:
                if logger.skipped:
                    log.info("skipping %s %s steps: finished run %s", self.model.model_id, steps, logger.run_id)
                    rows.append({**(logger.finished_metrics or {}), "steps": steps, "skipped": True})
                    continue
                logger.params({"prompts": len(self.prompts)})  # with images_per_prompt and seed: the image set
                results = self.evaluate_steps(steps, logger)
                rows.append({"steps": steps, "run_id": logger.run_id, **flat_values(results)})
        tracker.close()
        return rows


def check_counts(s: EvalSettings) -> None:
    """Counts that must be positive, and the timing counts of metrics protocol §6, checked before anything loads."""
    from sprint_bench.eval.latency import MIN_BATCHES, MIN_RUNS, MIN_WARMUP

    rules = [("images_per_prompt", s.images_per_prompt, 1), ("batch_size", s.batch_size, 1),
             ("threads", s.threads, 1)]
    if s.limit_prompts is not None:
        rules.append(("limit_prompts", s.limit_prompts, 1))
    if "latency" in s.metrics:
        rules += [("latency_warmup", s.latency_warmup, MIN_WARMUP), ("latency_runs", s.latency_runs, MIN_RUNS),
                  ("throughput_batch", s.throughput_batch, 1), ("throughput_batches", s.throughput_batches,
                                                                 MIN_BATCHES)]
    for name, value, low in rules:
        if value is None or int(value) < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


def flat_values(results: dict) -> dict:
    return {k: v for r in results.values() for k, v in r["values"].items()}


def sample_grid(images: np.ndarray, n_prompts: int, rows: int = 8, per_prompt: int = 2) -> np.ndarray:
    """Grid of ``per_prompt`` images for ``rows * 8 / per_prompt`` prompts spread over the whole prompt set."""
    ipp = len(images) // n_prompts
    picks = np.linspace(0, n_prompts - 1, rows * 8 // per_prompt).round().astype(int)
    return image_grid(np.concatenate([images[i * ipp:i * ipp + per_prompt] for i in picks]), 8)


def geneval_result(summary: dict, n: int, resolution: int, ipp: int) -> MetricResult:
    values = {"geneval_overall": summary["overall"]}
    values.update({f"geneval_{t}": v["score"] for t, v in summary["tasks"].items()})
    values["geneval_image_accuracy"] = summary["image_accuracy"]
    proto = Protocol(metric="GenEval-Shapes (GenEval protocol, non-official detector)",
                     extractor="shapes-exact detector (sprint_bench.eval.geneval.shapes_detector)",
                     num_images=n, resolution=resolution, resize="none", dtype="uint8 PNG",
                     extra={"prompts": summary["n_prompts"], "images_per_prompt": ipp,
                            "summary": "unweighted mean of the six task means", **asdict(ScoringOptions())})
    return MetricResult(key="geneval_shapes", values=values, protocol=proto)
