"""GenEval (Ghosh et al. 2023) folder layout: <root>/<00000>/metadata.jsonl and <root>/<00000>/samples/<0000>.png."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from .detector import ColorClassifier, Detector
from .scoring import GENEVAL_COLORS, GENEVAL_TASKS, RELATIONS, ScoringOptions, score_image, summarize

__all__ = [
    "official_metadata_path", "load_metadata", "validate_metadata", "write_prompt_folder", "sample_path",
    "iter_samples", "score_folder", "write_results",
]

logger = logging.getLogger(__name__)

_PNG = re.compile(r"\d+\.png")


def official_metadata_path() -> Path:
    """Path of the vendored, unmodified official GenEval evaluation_metadata.jsonl (553 prompts)."""
    return Path(__file__).resolve().parents[2] / "data" / "assets" / "geneval_official" / "evaluation_metadata.jsonl"


def load_metadata(path: str | Path) -> list[dict[str, Any]]:
    """Read a GenEval metadata .jsonl file (one prompt object per non-empty line)."""
    with open(path, encoding="utf-8") as fp:
        return [json.loads(line) for line in fp if line.strip()]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_clauses(clauses: Any, name: str) -> None:
    if not isinstance(clauses, list) or not all(isinstance(c, dict) for c in clauses):
        raise ValueError(f"{name} must be a list of dicts, got {clauses!r}")
    for i, c in enumerate(clauses):
        if not isinstance(c.get("class"), str):
            raise ValueError(f"{name}[{i}].class must be a string, got {c.get('class')!r}")
        if not _is_int(c.get("count")) or c["count"] < 1:
            raise ValueError(f"{name}[{i}].count must be an int >= 1, got {c.get('count')!r}")


def validate_metadata(entry: Mapping[str, Any]) -> None:
    """Check one GenEval (Ghosh et al. 2023) prompt entry; raise ValueError naming the bad field."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"metadata entry must be a dict, got {type(entry).__name__}")
    if entry.get("tag") not in GENEVAL_TASKS:
        raise ValueError(f"tag must be one of {GENEVAL_TASKS}, got {entry.get('tag')!r}")
    if not isinstance(entry.get("prompt"), str):
        raise ValueError(f"prompt must be a string, got {entry.get('prompt')!r}")
    include = entry.get("include")
    if not include:
        raise ValueError(f"include must be a non-empty list, got {include!r}")
    _check_clauses(include, "include")
    for i, c in enumerate(include):
        if "color" in c and not isinstance(c["color"], str):
            raise ValueError(f"include[{i}].color must be a string, got {c['color']!r}")
        if "position" in c:
            pos = c["position"]
            if (not isinstance(pos, list) or len(pos) != 2 or pos[0] not in RELATIONS
                    or not _is_int(pos[1]) or not 0 <= pos[1] < i):
                raise ValueError(f"include[{i}].position must be [relation in {RELATIONS}, "
                                 f"earlier include index < {i}], got {pos!r}")
    if "exclude" in entry:
        _check_clauses(entry["exclude"], "exclude")


def write_prompt_folder(root: str | Path, index: int, metadata: Mapping[str, Any]) -> Path:
    """Create <root>/<index:05d>/ with metadata.jsonl (one JSON line) and an empty samples/ folder."""
    folder = Path(root) / f"{index:05d}"
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text(json.dumps(metadata) + "\n", encoding="utf-8")
    return folder


def sample_path(root: str | Path, index: int, k: int) -> Path:
    """Path of the k-th sample image of prompt `index`: <root>/<index:05d>/samples/<k:04d>.png."""
    return Path(root) / f"{index:05d}" / "samples" / f"{k:04d}.png"


def iter_samples(root: str | Path) -> Iterator[tuple[int, dict[str, Any], Path]]:
    """Yield (index, metadata, png_path) for digit-named prompt folders and `\\d+.png` samples, sorted."""
    folders = sorted((p for p in Path(root).iterdir() if p.is_dir() and p.name.isdigit()),
                     key=lambda p: int(p.name))
    for folder in folders:
        metadata = json.loads((folder / "metadata.jsonl").read_text(encoding="utf-8"))
        samples = folder / "samples"
        if not samples.is_dir():
            continue
        pngs = [p for p in samples.iterdir() if p.is_file() and _PNG.fullmatch(p.name)]
        for png in sorted(pngs, key=lambda p: int(p.stem)):
            yield int(folder.name), metadata, png


def load_image(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array (EXIF orientation applied)."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def score_folder(root: str | Path, detector: Detector, color_classifier: ColorClassifier | None = None,
                 options: ScoringOptions = ScoringOptions(),
                 colors: Iterable[str] = GENEVAL_COLORS) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """GenEval (Ghosh et al. 2023) evaluation of every sample under `root`; returns (rows, summary)."""
    samples = list(iter_samples(root))
    if not samples:
        raise ValueError(f"no GenEval samples found under {root}")
    colors = list(colors)
    rows = []
    for index, metadata, png in tqdm(samples, desc="GenEval", unit="img"):
        res = score_image(load_image(png), metadata, detector, color_classifier, options, colors)
        rows.append({"filename": str(png), "index": index, "tag": metadata["tag"],
                     "prompt": metadata.get("prompt", ""), "correct": res.correct, "reason": res.reason,
                     "metadata": metadata, "boxes": res.boxes})
    summary = summarize(rows)
    logger.info("GenEval overall %.4f over %d images", summary["overall"], summary["n_images"])
    return rows, summary


def write_results(rows: Iterable[Mapping[str, Any]], summary: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write results.jsonl (one row per image) and summary.json into `out_dir`; return `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as fp:
        for row in rows:
            fp.write(json.dumps(row) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out
