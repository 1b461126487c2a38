"""Train shapes-CLIP: the bundled ``shapes-clip`` open_clip config, trained contrastively on shapes-world pairs.

Loss: symmetric InfoNCE with open_clip's learnable logit scale (clamped at 100). The caption vocabulary of the
training pool is small (~190 distinct captions, many images per caption in a batch), so instead of treating other
images' copies of the same caption as negatives:

* image -> text: softmax over ALL distinct training captions (encoded every step; every image has exactly one
  positive, and every other caption is a genuine negative);
* text -> image: for each caption present in the batch, a multi-positive target spread uniformly over the batch
  images drawn with that caption.

Held-out evaluation (``caption_retrieval``): fresh renders of the GenEval-Shapes prompts (which include the
colour-attribute combinations held out of training); each image ranks its prompt against 31 other distinct prompts
of the set. Two candidate rules are reported:

* ``top1`` (headline): negatives are prompts that are FALSE for the image under the GenEval rules applied to the
  ground-truth scene (objects as perfect detections; e.g. "a photo of a square and a circle" is not a negative
  for "a photo of a circle and a square", nor is "a photo of a circle" for two circles);
* ``top1_strict``: negatives are any other distinct prompt, including ones that also describe the image.

CLI: ``python -m sprint_bench.eval.clip.train --out artifacts/clip-scorer --steps N`` prints the result JSON.
Defaults (patch-8 ViT, batch 256, 3000 steps, 100k rendered pairs) were sized for ~10-15 min on 2 CPU threads;
``--device cuda`` trains on a GPU, ``--init-from DIR`` continues a saved scorer.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sprint_bench.eval.clip import CONFIG_NAME, register_shapes_clip

__all__ = ["build_shapes_clip", "train_clip_scorer", "save_shapes_clip", "caption_retrieval", "contrastive_loss",
           "encode_text_trimmed", "main"]

logger = logging.getLogger(__name__)

NUM_CANDIDATES = 32


def build_shapes_clip(world, seed: int = 0, model_overrides: dict | None = None):
    """Fresh (random-init) shapes-CLIP for ``world``'s resolution -> (model, model_cfg, preprocess_cfg).

    ``model_overrides`` patches the bundled config: ``{"embed_dim": 64, "vision_cfg": {"layers": 2}, ...}``
    (nested dicts are merged one level deep). The saved ``open_clip_config.json`` holds the final config."""
    import open_clip

    register_shapes_clip()
    model_cfg = open_clip.get_model_config(CONFIG_NAME)
    for k, v in (model_overrides or {}).items():
        if isinstance(v, dict) and isinstance(model_cfg.get(k), dict):
            model_cfg[k] = {**model_cfg[k], **v}
        else:
            model_cfg[k] = v
    res = int(world.resolution)
    patch = int(model_cfg["vision_cfg"]["patch_size"])
    if res % patch:
        raise ValueError(f"world resolution {res} is not a multiple of the shapes-clip patch size {patch}")
    model_cfg["vision_cfg"]["image_size"] = res
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)  # the registered config after overrides; no weights are loaded
    preprocess_cfg = {"size": res, "mode": "RGB", "mean": list(open_clip.OPENAI_DATASET_MEAN),
                      "std": list(open_clip.OPENAI_DATASET_STD), "interpolation": "bicubic",
                      "resize_mode": "shortest"}
    return model, model_cfg, preprocess_cfg


def _param_groups(named_params, weight_decay: float, logit_scale_lr_mult: float) -> list[dict]:
    """Weight decay on matrices only; the logit scale gets its own (faster) learning rate: with Adam it moves at
    most ~lr per step, so at lr 1e-3 it would need thousands of steps to leave its 1/0.07 init."""
    decay, no_decay, scale = [], [], []
    for name, p in named_params:
        if not p.requires_grad:
            continue
        if name == "logit_scale":
            scale.append(p)
        elif p.ndim < 2 or "embedding" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay, "lr_mult": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0},
            {"params": scale, "weight_decay": 0.0, "lr_mult": float(logit_scale_lr_mult)}]


def _lr_at(step: int, steps: int, lr: float, warmup: int, min_ratio: float = 0.1) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, caption_ids: torch.Tensor,
                     logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between B normalised image features and ALL C normalised caption features.

    ``caption_ids`` (B,) index the caption of each image; captions shared by several images are one positive
    for each of them (image -> text) and have a uniform multi-positive target over those images (text -> image)."""
    logits = logit_scale * img @ txt.T  # (B, C)
    loss_i2t = F.cross_entropy(logits, caption_ids)
    present = torch.unique(caption_ids)
    pos = (caption_ids[None, :] == present[:, None]).float()  # (P, B)
    target = pos / pos.sum(dim=1, keepdim=True)
    loss_t2i = -(target * F.log_softmax(logits.T[present], dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def encode_text_trimmed(model, tokens: torch.Tensor, embedding: torch.Tensor | None = None,
                        local_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``model.encode_text(tokens, normalize=True)`` computed on the first L positions only (L = longest caption
    incl. start/end). Exact for open_clip's CLIP text tower: with its causal mask and end-token pooling, positions
    after the end token never influence the pooled feature. Saves ~2.5x text compute at context 32.

    ``embedding``/``local_ids``: optionally the rows of the token table actually used by ``tokens`` and the tokens
    re-indexed into them, so training updates a (K, width) table instead of the dense 49408-row one."""
    from open_clip.transformer import text_global_pool

    length = int((tokens != 0).sum(dim=1).max())
    t = tokens[:, :length]
    if embedding is not None:
        x = F.embedding(local_ids[:, :length], embedding)
    else:
        x = model.token_embedding(t)
    x = x + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, t, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if isinstance(model.text_projection, torch.nn.Linear):
        x = model.text_projection(x)
    elif model.text_projection is not None:
        x = x @ model.text_projection
    return F.normalize(x, dim=-1)


def _trim_is_exact(model, tokens: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            return bool(torch.allclose(encode_text_trimmed(model, tokens), model.encode_text(tokens, normalize=True),
                                       atol=1e-5))
    except Exception:  # an open_clip version whose text tower differs: fall back to encode_text
        logger.warning("trimmed text encoding unavailable; using model.encode_text", exc_info=True)
        return False


def _ground_truth_orderings(scene) -> list[dict]:
    """The scene's objects as perfect detections (score 1), once per ordering of same-class objects: GenEval keeps
    the top-``count`` detections of a class by score, which for tied ground truth would depend on list order."""
    import itertools

    from sprint_bench.eval.geneval.detector import Detection

    by_class: dict[str, list] = {}
    for obj in scene.objects:
        by_class.setdefault(obj.shape, []).append(Detection(box=obj.box, score=1.0, color=obj.color))
    classes = sorted(by_class)
    return [dict(zip(classes, (list(p) for p in perm)))
            for perm in itertools.product(*(itertools.permutations(by_class[c]) for c in classes))]


def _true_of_scene(scene, metadata: dict) -> bool:
    """A prompt describes a rendered scene: some ordering of its ground-truth objects passes GenEval's rules."""
    from sprint_bench.eval.geneval.scoring import evaluate_detections

    return any(evaluate_detections(dets, metadata).correct for dets in _ground_truth_orderings(scene))


def render_eval_set(world, images_per_prompt: int, seed: int):
    """Fresh renders of every GenEval-Shapes prompt -> (images, entries, scenes)."""
    from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
    from sprint_bench.data.shapes.render import render
    from sprint_bench.data.shapes.scene import realize

    rng = np.random.default_rng(seed)
    entries, scenes = [], []
    for entry in geneval_shapes_prompts(world):
        for _ in range(images_per_prompt):
            scenes.append(realize(entry, world, rng))
            entries.append(entry)
    images = np.stack([render(s) for s in scenes]) if scenes else np.zeros((0, world.resolution,
                                                                            world.resolution, 3), np.uint8)
    return images, entries, scenes


def caption_retrieval(scorer, world, images_per_prompt: int = 2, seed: int = 1234,
                      num_candidates: int = NUM_CANDIDATES) -> dict:
    """Held-out caption retrieval top-1 among ``num_candidates`` (see the module docstring), overall and per family,
    plus the mean CLIP score of matched vs mismatched (false) captions on the same images."""
    from sprint_bench.eval.clip.score import clip_from_cosine

    images, entries, scenes = render_eval_set(world, images_per_prompt, seed)
    prompts = sorted({e["prompt"] for e in entries})
    meta = {e["prompt"]: e for e in entries}
    col = {p: k for k, p in enumerate(prompts)}
    true_col = np.array([col[e["prompt"]] for e in entries])
    # truth[i, c]: prompt c is satisfied by image i's ground-truth scene (GenEval rules)
    truth = np.zeros((len(entries), len(prompts)), dtype=bool)
    for i, scene in enumerate(scenes):
        for c, p in enumerate(prompts):
            truth[i, c] = _true_of_scene(scene, meta[p])
    sim = scorer.similarity(images, prompts)  # (N, C)
    rng = np.random.default_rng(seed + 1)
    k = num_candidates - 1
    hit, hit_strict, mismatched = [], [], []
    for i in range(len(entries)):
        t = true_col[i]
        others = np.flatnonzero(np.arange(len(prompts)) != t)
        false = np.flatnonzero(~truth[i])
        neg = rng.choice(false, size=min(k, len(false)), replace=False)
        neg_strict = rng.choice(others, size=min(k, len(others)), replace=False)
        hit.append(bool(sim[i, t] > sim[i, neg].max()) if len(neg) else True)
        hit_strict.append(bool(sim[i, t] > sim[i, neg_strict].max()) if len(neg_strict) else True)
        mismatched.append(sim[i, rng.choice(false)] if len(false) else np.nan)
    hit, hit_strict = np.array(hit), np.array(hit_strict)
    tags = np.array([e["tag"] for e in entries])
    families = {}
    for tag in dict.fromkeys(tags):
        m = tags == tag
        families[str(tag)] = {"top1": float(hit[m].mean()), "top1_strict": float(hit_strict[m].mean()),
                              "images": int(m.sum())}
    matched_cos = sim[np.arange(len(entries)), true_col]
    return {
        "top1": float(hit.mean()),
        "top1_strict": float(hit_strict.mean()),
        "num_candidates": int(num_candidates),
        "images": int(len(entries)),
        "distinct_prompts": int(len(prompts)),
        "images_per_prompt": int(images_per_prompt),
        "seed": int(seed),
        "true_caption_satisfied": float(truth[np.arange(len(entries)), true_col].mean()),
        "clip_score_matched": float(clip_from_cosine(matched_cos).mean()),
        "clip_score_mismatched": float(np.nanmean(clip_from_cosine(np.array(mismatched)))),
        "families": families,
    }


def train_clip_scorer(world, out_dir: str | Path, steps: int = 3000, batch_size: int = 256, lr: float = 1e-3,
                      seed: int = 0, train_size: int = 100000, warmup_steps: int = 100, weight_decay: float = 0.05,
                      grad_clip: float = 1.0, eval_images_per_prompt: int = 2, eval_seed: int = 1234,
                      logit_scale_lr_mult: float = 10.0, model_overrides: dict | None = None,
                      init_from: str | Path | None = None, device: str = "cpu", progress: bool = True) -> dict:
    """Train shapes-CLIP on ``train_size`` freshly rendered training pairs of ``world`` (seeded), save it to
    ``out_dir`` (``model.safetensors``, ``open_clip_config.json``, ``meta.json``), reload it from disk and measure
    held-out caption retrieval. Returns the meta dict (also written to ``meta.json``)."""
    import open_clip
    from tqdm.auto import tqdm

    from sprint_bench.data.shapes.sampler import sample_world
    from sprint_bench.eval.clip.score import ClipScorer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sample = sample_world(world, train_size, seed, progress=progress)
    render_s = time.time() - t0
    if init_from is not None:  # continue from a saved shapes-CLIP (its config wins over model_overrides)
        from safetensors.torch import load_file

        src = Path(init_from)
        saved = json.loads((src / "open_clip_config.json").read_text())
        model, model_cfg, preprocess_cfg = build_shapes_clip(world, seed, saved["model_cfg"])
        model.load_state_dict(load_file(str(src / "model.safetensors")))
    else:
        model, model_cfg, preprocess_cfg = build_shapes_clip(world, seed, model_overrides)
    tokenizer = open_clip.get_tokenizer(CONFIG_NAME)
    tokens = tokenizer(sample.captions)  # (C, ctx): every distinct training caption, encoded every step
    images = torch.from_numpy(sample.images).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, H, W), on CPU
    ids = torch.from_numpy(sample.caption_ids)
    dev = torch.device(device)
    model.to(dev)
    tokens = tokens.to(dev)
    mean = torch.tensor(preprocess_cfg["mean"], device=dev).view(1, 3, 1, 1)
    std = torch.tensor(preprocess_cfg["std"], device=dev).view(1, 3, 1, 1)

    trim = _trim_is_exact(model, tokens)
    named = list(model.named_parameters())
    emb = local_ids = used = None
    if trim:  # train only the token-table rows the captions use (the rest get no gradient anyway)
        used = torch.unique(tokens)
        remap = torch.zeros(model.token_embedding.num_embeddings, dtype=torch.long, device=dev)
        remap[used] = torch.arange(len(used), device=dev)
        local_ids = remap[tokens]
        emb = torch.nn.Parameter(model.token_embedding.weight.detach()[used].clone())
        model.token_embedding.weight.requires_grad_(False)
        named.append(("token_embedding.used_rows", emb))
    params = [p for _, p in named if p.requires_grad]
    opt = torch.optim.AdamW(_param_groups(named, weight_decay, logit_scale_lr_mult), lr=lr, betas=(0.9, 0.98),
                            eps=1e-6)
    gen = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(ids), generator=gen), 0
    max_logit = math.log(100.0)
    model.train()
    bar = tqdm(range(steps), desc="shapes-CLIP", unit="step", disable=not progress, mininterval=2.0)
    ema = None
    t1 = time.time()
    for step in bar:
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(ids), generator=gen), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, lr, warmup_steps) * g["lr_mult"]
        x = (images[idx].to(dev, non_blocking=True).float().div_(255.0) - mean) / std
        img = model.encode_image(x, normalize=True)
        txt = encode_text_trimmed(model, tokens, emb, local_ids) if trim else model.encode_text(tokens,
                                                                                                 normalize=True)
        loss = contrastive_loss(img, txt, ids[idx].to(dev), model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, max_logit)
        if step % 10 == 0 or step == steps - 1:
            v = loss.item()
            ema = v if ema is None else 0.8 * ema + 0.2 * v
            bar.set_postfix(loss=f"{ema:.3f}", scale=f"{model.logit_scale.exp().item():.1f}", refresh=False)
    if trim:
        with torch.no_grad():
            model.token_embedding.weight[used] = emb
        model.token_embedding.weight.requires_grad_(True)
    train_s = time.time() - t1
    bar.close()

    model.eval()
    meta = {
        "config_name": CONFIG_NAME,
        "world": dataclasses.asdict(world),
        "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
        "train_size": int(train_size), "warmup_steps": int(warmup_steps), "weight_decay": float(weight_decay),
        "grad_clip": float(grad_clip), "logit_scale_lr_mult": float(logit_scale_lr_mult),
        "init_from": str(init_from) if init_from is not None else None,
        "train_captions": len(sample.captions), "trimmed_text_context": trim,
        "final_loss_ema": float(ema) if ema is not None else None,
        "logit_scale": float(model.logit_scale.exp().item()),
        "render_seconds": round(render_s, 1), "train_seconds": round(train_s, 1),
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "open_clip_version": open_clip.__version__, "torch_version": torch.__version__,
    }
    save_shapes_clip(model, model_cfg, preprocess_cfg, out, meta)
    if eval_images_per_prompt > 0:
        scorer = ClipScorer.from_dir(out, device=device)  # evaluate what was saved, through the loading path
        meta["retrieval"] = caption_retrieval(scorer, world, eval_images_per_prompt, eval_seed)
    else:
        meta["retrieval"] = None
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def save_shapes_clip(model, model_cfg: dict, preprocess_cfg: dict, out_dir: str | Path, meta: dict) -> Path:
    """Write ``model.safetensors`` + ``open_clip_config.json`` (``model_cfg``/``preprocess_cfg``, loadable by
    ``open_clip.create_model("local-dir:<dir>")``) + ``meta.json`` to ``out_dir``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg},
                                                          indent=2))
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sprint_bench.eval.clip.train",
                                description="Train the shapes-CLIP scorer and measure held-out caption retrieval.")
    p.add_argument("--config", default="experiments/base.yaml", help="experiment YAML whose `world` is used")
    p.add_argument("--out", default="artifacts/clip-scorer", help="output directory")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=100000, help="rendered training pairs (cycled)")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--logit-scale-lr-mult", type=float, default=10.0)
    p.add_argument("--eval-images-per-prompt", type=int, default=2)
    p.add_argument("--eval-seed", type=int, default=1234)
    p.add_argument("--model-overrides", type=json.loads, default=None,
                   help='JSON patch of the shapes-clip config, e.g. \'{"vision_cfg": {"layers": 6}}\'')
    p.add_argument("--init-from", default=None, help="continue training a saved shapes-CLIP directory")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sprint_bench.config import load_config

    world = load_config(args.config).world
    meta = train_clip_scorer(world, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             seed=args.seed, train_size=args.train_size, warmup_steps=args.warmup_steps,
                             weight_decay=args.weight_decay, logit_scale_lr_mult=args.logit_scale_lr_mult,
                             eval_images_per_prompt=args.eval_images_per_prompt,
                             eval_seed=args.eval_seed, model_overrides=args.model_overrides, init_from=args.init_from,
                             device=args.device,
                             progress=not args.no_progress)
    summary = (meta["retrieval"] or {}) | {"out": str(args.out), "train_seconds": meta["train_seconds"]}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
