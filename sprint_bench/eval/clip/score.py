"""CLIP score = mean over (image, caption) pairs of 100 * max(cos(E_img, E_txt), 0), through open_clip.

Two backbones, one code path (``open_clip.create_model`` + the bundled ``SimpleTokenizer``):

* ``ClipScorer.from_dir(dir)``: our shapes-CLIP, a directory written by :func:`sprint_bench.eval.clip.train.
  train_clip_scorer` (``open_clip_config.json`` with ``model_cfg``/``preprocess_cfg`` + ``model.safetensors`` +
  ``meta.json``), loaded with ``open_clip.create_model("local-dir:<dir>")``. Images are fed at the model's native
  size (the world resolution): uint8 -> float in [0, 1] -> normalised with the mean/std stored in the directory
  (OpenAI CLIP mean/std, open_clip's default). Images of another size are resized with torch bicubic
  (antialiased) interpolation first, and the protocol says so.
* ``ClipScorer.from_open_clip(model_name, pretrained_path)``: a real open_clip model (e.g. ViT-L-14) from a LOCAL
  weights file; images go through open_clip's own validation transform (PIL resize + centre crop + normalise).

Clamp rule: per sample, max(cos, 0), then the mean (Hessel et al.'s CLIPScore clamp at CLIP's scale 100). The
unclamped mean of 100 * cos (the SANA tables' convention) is reported alongside as ``<key>_noclamp``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sprint_bench.eval.metrics.base import MetricResult, Protocol

__all__ = ["ClipScorer", "clip_score_metric", "SCALE"]

SCALE = 100.0
CLAMP_RULE = "per-sample max(cos, 0), then mean over pairs"


def weights_id(path: Path) -> str:
    """A sha256 prefix of a weights file: the scorer's name changes when it is retrained in place, so no finished
    evaluation's CLIP score is reused for other weights."""
    from sprint_bench.eval.metrics.extractors import _HASH_CHARS, sha256_file

    return sha256_file(path)[:_HASH_CHARS]


class ClipScorer:
    """An open_clip model + tokenizer + image preprocessing, producing per-pair cosines and CLIP scores.

    Build it with :meth:`from_dir` (shapes-CLIP) or :meth:`from_open_clip` (real model, local weights); the plain
    constructor wraps an in-memory model (used by the trainer to evaluate before/after saving).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, key: str, display_name: str, extractor: str,
                 image_size: int, mean: Sequence[float], std: Sequence[float], context_length: int,
                 pil_transform: Callable | None = None, preprocess_desc: str | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 256, info: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.key = key
        self.display_name = display_name
        self.extractor = extractor
        self.image_size = int(image_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.context_length = int(context_length)
        self.pil_transform = pil_transform
        self.preprocess_desc = preprocess_desc
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.info = dict(info or {})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dir(cls, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 256) -> "ClipScorer":
        """Load a trained shapes-CLIP directory (``open_clip_config.json`` + ``model.safetensors``)."""
        import open_clip

        root = Path(path).resolve()
        config_file = root / "open_clip_config.json"
        weights = root / "model.safetensors"
        for f in (config_file, weights):
            if not f.is_file():
                raise FileNotFoundError(f"shapes-CLIP directory {root} is missing {f.name} ({f})")
        config = json.loads(config_file.read_text())
        meta_file = root / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        model = open_clip.create_model(f"local-dir:{root}", device=device)
        tokenizer = open_clip.get_tokenizer(f"local-dir:{root}")
        pp = config.get("preprocess_cfg", {})
        size = int(config["model_cfg"]["vision_cfg"]["image_size"])
        info = {"weights": str(weights)}
        acc = (meta.get("retrieval") or {}).get("top1")
        if acc is not None:
            info["retrieval_top1"] = acc
        return cls(model, tokenizer, key="clip_score_shapes", display_name="CLIP score (shapes-CLIP)",
                   extractor=f"shapes-CLIP (open_clip config {meta.get('config_name', 'shapes-clip')}, "
                             f"trained by sprint_bench, {weights}, sha256 {weights_id(weights)})",
                   image_size=size, mean=pp.get("mean", open_clip.OPENAI_DATASET_MEAN),
                   std=pp.get("std", open_clip.OPENAI_DATASET_STD),
                   context_length=int(config["model_cfg"]["text_cfg"]["context_length"]),
                   device=device, batch_size=batch_size, info=info)

    @classmethod
    def from_open_clip(cls, model_name: str, pretrained_path: str | Path, device: str | torch.device = "cpu",
                       batch_size: int = 32, force_quick_gelu: bool = False) -> "ClipScorer":
        """A real open_clip architecture (e.g. ``"ViT-L-14"``) with weights from a LOCAL file (no downloads).

        OpenAI's original CLIP weights were trained with QuickGELU: load them with ``"ViT-L-14-quickgelu"`` (or
        ``force_quick_gelu=True``); a bare file path carries no activation info, so plain ``"ViT-L-14"`` would
        silently run them with GELU. Raises FileNotFoundError naming the path before anything is built when the
        file does not exist."""
        weights = Path(pretrained_path).expanduser()
        if not weights.is_file():
            raise FileNotFoundError(f"CLIP weights file not found: {weights} (pass a local .pt/.bin/.safetensors "
                                    f"file for open_clip model {model_name!r}; nothing is downloaded)")
        import open_clip

        from sprint_bench.eval.clip import CONFIG_NAME, register_shapes_clip

        if model_name == CONFIG_NAME:
            register_shapes_clip()
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(weights),
                                                                     device=device, force_quick_gelu=force_quick_gelu)
        quick_gelu = bool(force_quick_gelu or (open_clip.get_model_config(model_name) or {}).get("quick_gelu", False))
        tokenizer = open_clip.get_tokenizer(model_name)
        pp = dict(model.visual.preprocess_cfg)
        size = pp["size"] if isinstance(pp["size"], int) else int(pp["size"][0])
        slug = re.sub(r"[^0-9a-z]+", "_", model_name.lower()).strip("_")
        desc = (f"open_clip val transform: PIL {pp.get('interpolation', 'bicubic')} resize "
                f"({pp.get('resize_mode', 'shortest')} side) to {size} + centre crop {size}, "
                f"mean={tuple(pp['mean'])}, std={tuple(pp['std'])}")
        return cls(model, tokenizer, key=f"clip_score_{slug}",
                   display_name=f"CLIP score ({model_name}, {weights.name})",
                   extractor=f"open_clip {model_name}, weights {weights.resolve()}, sha256 {weights_id(weights)}",
                   image_size=size,
                   mean=pp["mean"], std=pp["std"], context_length=int(tokenizer.context_length),
                   pil_transform=preprocess, preprocess_desc=desc, device=device, batch_size=batch_size,
                   info={"weights": str(weights.resolve()), "quick_gelu": quick_gelu})

    # ------------------------------------------------------------------ preprocessing
    def resize_rule(self, side: int) -> str:
        """How images of ``side`` pixels reach the image encoder."""
        if self.pil_transform is not None:
            return self.preprocess_desc or "open_clip val transform"
        if side == self.image_size:
            return f"none (native {self.image_size} px)"
        return f"torch bicubic antialiased resize {side} -> {self.image_size}"

    def preprocess_rule(self, side: int) -> str:
        if self.pil_transform is not None:
            return self.preprocess_desc or "open_clip val transform"
        return (f"{self.resize_rule(side)}; uint8/255 -> float32, normalised with mean={self.mean}, "
                f"std={self.std}")

    def _pixels(self, images: np.ndarray) -> torch.Tensor:
        if self.pil_transform is not None:
            from PIL import Image

            return torch.stack([self.pil_transform(Image.fromarray(im)) for im in images])
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=True).clamp_(0.0, 1.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    # ------------------------------------------------------------------ embeddings
    @staticmethod
    def _check_images(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
        return images

    @torch.inference_mode()
    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, D) L2-normalised float32 features (CPU)."""
        images = self._check_images(images)
        out = []
        for i in range(0, len(images), self.batch_size):
            x = self._pixels(images[i:i + self.batch_size]).to(self.device)
            out.append(self.model.encode_image(x, normalize=True).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    @torch.inference_mode()
    def encode_texts(self, captions: Sequence[str]) -> torch.Tensor:
        """Captions -> (M, D) L2-normalised float32 features (CPU); tokens truncated to the context length."""
        out = []
        for i in range(0, len(captions), self.batch_size):
            tokens = self.tokenizer(list(captions[i:i + self.batch_size])).to(self.device)
            out.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    def similarity(self, images: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        """(N, M) cosine matrix between every image and every caption."""
        return (self.encode_images(images) @ self.encode_texts(captions).T).numpy()

    def cosine(self, images: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        """(N,) cosine of each image with its own caption (duplicate captions are encoded once)."""
        images = self._check_images(images)
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        unique = sorted(set(captions))
        index = {c: k for k, c in enumerate(unique)}
        img = self.encode_images(images)
        txt = self.encode_texts(unique)
        cols = torch.tensor([index[c] for c in captions], dtype=torch.long)
        return (img * txt[cols]).sum(-1).numpy().astype(np.float64)

    def score(self, images: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        """(N,) per-image CLIP score 100 * max(cos, 0)."""
        return clip_from_cosine(self.cosine(images, captions))

    def protocol_extra(self, side: int) -> dict:
        return {
            "clamp": CLAMP_RULE,
            "scale": SCALE,
            "noclamp_key": f"{self.key}_noclamp = mean(100 * cos), no clamp (SANA convention)",
            "tokenizer": f"open_clip {type(self.tokenizer).__name__} (bundled BPE, lower-cased, no download)",
            "context_length": self.context_length,
            "truncation": f"captions longer than {self.context_length} tokens (incl. start/end) are truncated, "
                          f"end token kept",
            "preprocess": self.preprocess_rule(side),
            "image_mean": self.mean,
            "image_std": self.std,
            **self.info,
        }


def clip_from_cosine(cos: np.ndarray) -> np.ndarray:
    """The clamp rule: 100 * max(cos, 0), per sample."""
    return SCALE * np.maximum(np.asarray(cos, dtype=np.float64), 0.0)


def clip_score_metric(images: np.ndarray, captions: Sequence[str], scorer: ClipScorer,
                      resolution: int) -> MetricResult:
    """Mean CLIP score of generated ``images`` (N, H, W, 3) uint8 against their prompts ``captions``.

    Values: ``<key>`` (clamped per sample, the reported number) and ``<key>_noclamp`` (mean of 100 * cos)."""
    images = ClipScorer._check_images(images)
    if images.shape[1] != resolution or images.shape[2] != resolution:
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} but resolution={resolution}")
    if len(images) == 0:
        raise ValueError("no images to score")
    cos = scorer.cosine(images, captions)
    values = {scorer.key: float(clip_from_cosine(cos).mean()), f"{scorer.key}_noclamp": float(SCALE * cos.mean())}
    protocol = Protocol(metric=scorer.display_name, extractor=scorer.extractor, num_images=int(len(images)),
                        resolution=int(resolution), resize=scorer.resize_rule(resolution), dtype="float32",
                        extra=scorer.protocol_extra(resolution))
    return MetricResult(key=scorer.key, values=values, protocol=protocol)
