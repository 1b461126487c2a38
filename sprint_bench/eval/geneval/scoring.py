"""GenEval (Ghosh et al. 2023, djghosh13/geneval) scoring rules as pure Python over a pluggable detector."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .detector import ColorClassifier, Detection, DetectionColorClassifier, Detector

__all__ = [
    "GENEVAL_TASKS", "GENEVAL_COLORS", "RELATIONS", "ScoringOptions", "ImageResult", "compute_iou",
    "relative_position", "postprocess", "evaluate_detections", "score_image", "summarize",
]

logger = logging.getLogger(__name__)

from sprint_bench.data.shapes.vocab import FAMILIES as GENEVAL_TASKS
from sprint_bench.data.shapes.vocab import GENEVAL_COLOR_NAMES as GENEVAL_COLORS
from sprint_bench.data.shapes.vocab import RELATIONS

Box = tuple[float, float, float, float]
ColorFn = Callable[[Detection, str], str]


@dataclass(frozen=True)
class ScoringOptions:
    """GenEval (Ghosh et al. 2023) defaults: thresholds, per-class cap, NMS IoU (off at 1.0), position margin."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0
    position_threshold: float = 0.1


@dataclass
class ImageResult:
    """Outcome for one image: correctness, first failure reason (all in `reasons`), kept boxes per class."""

    correct: bool
    reason: str
    boxes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def compute_iou(box_a: Box, box_b: Box) -> float:
    """GenEval (Ghosh et al. 2023) rule: IoU with inclusive pixel boxes (w = x2 - x1 + 1)."""
    def area(b: Box) -> float:
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    inter = area((max(box_a[0], box_b[0]), max(box_a[1], box_b[1]),
                  min(box_a[2], box_b[2]), min(box_a[3], box_b[3])))
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def relative_position(box_a: Box, box_b: Box, margin: float = 0.1) -> set[str]:
    """GenEval (Ghosh et al. 2023) rule: relations of A to B after shrinking the centre offset by margin*(dims)."""
    a, b = np.asarray(box_a, dtype=float), np.asarray(box_b, dtype=float)
    offset = (a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2
    dims = np.abs(a[2:] - a[:2]) + np.abs(b[2:] - b[:2])
    revised = np.sign(offset) * np.maximum(np.abs(offset) - margin * dims, 0)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels


def postprocess(detections: Mapping[str, Iterable[Detection]], tag: str,
                options: ScoringOptions = ScoringOptions()) -> dict[str, list[Detection]]:
    """GenEval (Ghosh et al. 2023) rule: sort, threshold (stricter for counting), cap per class, greedy NMS."""
    thr = options.counting_threshold if tag == "counting" else options.threshold
    kept: dict[str, list[Detection]] = {}
    for cls, dets in detections.items():
        order = sorted((d for d in dets if d.score > thr), key=lambda d: d.score, reverse=True)
        order = order[: options.max_objects]
        out: list[Detection] = []
        while order:
            best = order.pop(0)
            out.append(best)
            if options.max_overlap < 1:
                order = [d for d in order if compute_iou(best.box, d.box) < options.max_overlap]
        if out:
            kept[cls] = out
    return kept


def _json_boxes(kept: Mapping[str, list[Detection]]) -> dict[str, list[dict[str, Any]]]:
    return {cls: [{"box": [float(v) for v in d.box], "score": float(d.score)} for d in dets]
            for cls, dets in kept.items()}


def evaluate_detections(detections_by_class: Mapping[str, Iterable[Detection]], metadata: Mapping[str, Any],
                        color_fn: ColorFn | None = None,
                        options: ScoringOptions = ScoringOptions()) -> ImageResult:
    """GenEval (Ghosh et al. 2023) rule: ANDed include clauses (count, colour, position), ORed exclude clauses.

    `detections_by_class` are raw detections (post-processing is applied here); `color_fn(det, class)`
    returns a colour name and defaults to the colour already stored on the detection.
    """
    if color_fn is None:
        clf = DetectionColorClassifier()
        color_fn = lambda det, cls: clf.classify(None, det, cls, list(GENEVAL_COLORS))  # noqa: E731
    objects = postprocess(detections_by_class, metadata.get("tag", ""), options)
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        cls, count = req["class"], req["count"]
        found = objects.get(cls, [])[:count]
        ok = len(found) >= count
        if not ok:
            reasons.append(f"expected {cls}>={count}, found {len(found)}")
        if ok and "color" in req:
            colors = [color_fn(d, cls) for d in found]
            n = colors.count(req["color"])
            if n < count:
                ok = False
                seen = ", ".join(f"{k} {c}" for c, k in Counter(colors).items())
                reasons.append(f"expected {req['color']} {cls}>={count}, found {n} {req['color']}; and {seen}")
        if ok and "position" in req:
            rel, target = req["position"]
            if target >= len(groups) or groups[target] is None:
                ok = False
                reasons.append(f"no target for {cls} to be {rel}")
            else:
                for obj in found:
                    bad = next((t for t in groups[target]
                                if rel not in relative_position(obj.box, t.box, options.position_threshold)), None)
                    if bad is not None:
                        ok = False
                        got = " and ".join(sorted(relative_position(obj.box, bad.box, options.position_threshold)))
                        reasons.append(f"expected {cls} {rel} target, found {got or 'no relation to'} target")
                        break
        groups.append(found if ok else None)
    for req in metadata.get("exclude", []):
        n = len(objects.get(req["class"], []))
        if n >= req["count"]:
            reasons.append(f"expected {req['class']}<{req['count']}, found {n}")
    return ImageResult(correct=not reasons, reason=reasons[0] if reasons else "",
                       boxes=_json_boxes(objects), reasons=reasons)


def score_image(image: np.ndarray, metadata: Mapping[str, Any], detector: Detector,
                color_classifier: ColorClassifier | None = None, options: ScoringOptions = ScoringOptions(),
                colors: Iterable[str] = GENEVAL_COLORS) -> ImageResult:
    """GenEval (Ghosh et al. 2023) rule: detect objects in one image and check them against its prompt metadata."""
    clf = color_classifier if color_classifier is not None else DetectionColorClassifier()
    vocab = list(colors)
    result = evaluate_detections(detector.detect(image), metadata,
                                 lambda det, cls: clf.classify(image, det, cls, vocab), options)
    logger.debug("%s -> %s %s", metadata.get("prompt"), result.correct, result.reason)
    return result


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """GenEval (Ghosh et al. 2023) rule: overall = unweighted mean of per-task image accuracies.

    Each row needs `tag`, `index` (prompt index) and `correct`.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("summarize() needs at least one row")
    by_task: dict[str, list[bool]] = {}
    by_prompt: dict[Any, bool] = {}
    for r in rows:
        by_task.setdefault(r["tag"], []).append(bool(r["correct"]))
        by_prompt[r["index"]] = by_prompt.get(r["index"], False) or bool(r["correct"])
    order = [t for t in GENEVAL_TASKS if t in by_task] + sorted(t for t in by_task if t not in GENEVAL_TASKS)
    tasks = {t: {"score": float(np.mean(by_task[t])), "correct": int(sum(by_task[t])),
                 "images": len(by_task[t])} for t in order}
    return {
        "overall": float(np.mean([v["score"] for v in tasks.values()])),
        "tasks": tasks,
        "image_accuracy": float(np.mean([bool(r["correct"]) for r in rows])),
        "prompt_accuracy": float(np.mean(list(by_prompt.values()))),
        "n_images": len(rows),
        "n_prompts": len(by_prompt),
    }


def summarize_images(items: Iterable[tuple[np.ndarray, Mapping[str, Any], Any]], detector: Detector) -> dict[str, Any]:
    """:func:`summarize` of (image, prompt metadata, prompt index) items, each scored by :func:`score_image`."""
    return summarize({"tag": meta["tag"], "index": i, "correct": score_image(img, meta, detector).correct}
                     for img, meta, i in items)
