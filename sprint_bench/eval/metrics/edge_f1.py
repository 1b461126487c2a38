"""Condition fidelity of a ControlNet: F1 between the input edge map and the edges of the generated image, with a
tolerance of k pixels (the boundary-F1 of contour benchmarks: Martin, Fowlkes & Malik, IEEE TPAMI 2004; here
matching is by Chebyshev distance, a (2k+1) x (2k+1) square dilation, instead of a one-to-one assignment).

Per image, with R = input (condition) edge pixels, P = generated-image edge pixels, D_k = dilation by radius k:

* precision = |P ∩ D_k(R)| / |P|   (generated edges that lie within k px of an input edge)
* recall    = |R ∩ D_k(P)| / |R|   (input edges that are reproduced within k px)
* F1 = 2 p r / (p + r), 0 when p + r = 0.

Empty maps: precision is 1 when P is empty (nothing wrong was drawn) and recall is 1 when R is empty (nothing had to
be drawn); so both empty gives F1 = 1 and exactly one empty gives F1 = 0.
"""
from __future__ import annotations

import numpy as np

from sprint_bench.data.shapes.edges import EXTRACTOR, dilate, edge_map
from sprint_bench.eval.metrics.base import MetricResult, Protocol


def _as_bool_batch(edges) -> np.ndarray:
    e = np.asarray(edges)
    if e.ndim == 2:
        e = e[None]
    if e.ndim != 3:
        raise ValueError(f"expected edge maps (H, W) or (B, H, W), got shape {e.shape}")
    return e.astype(bool)


def edge_prf(cond_edges, gen_edges, tolerance: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image (precision, recall, F1), each float64 (B,), of edge maps {0, 1} (H, W) or (B, H, W)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    ref, gen = _as_bool_batch(cond_edges), _as_bool_batch(gen_edges)
    if ref.shape != gen.shape:
        raise ValueError(f"edge maps differ in shape: {ref.shape} vs {gen.shape}")
    n_gen, n_ref = gen.sum(axis=(1, 2)), ref.sum(axis=(1, 2))
    hit_gen = (gen & dilate(ref, 2 * tolerance + 1)).sum(axis=(1, 2))
    hit_ref = (ref & dilate(gen, 2 * tolerance + 1)).sum(axis=(1, 2))
    precision = np.where(n_gen > 0, hit_gen / np.maximum(n_gen, 1), 1.0)
    recall = np.where(n_ref > 0, hit_ref / np.maximum(n_ref, 1), 1.0)
    denom = precision + recall
    f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    return precision, recall, f1


def edge_f1_per_image(cond_edges, generated_images, tolerance: int = 1) -> dict[str, np.ndarray]:
    """Per-image precision, recall and F1 of uint8 generated images (B, H, W, 3) against their input edge maps."""
    images = np.asarray(generated_images)
    gen = edge_map(images if images.ndim == 4 else images[None])
    p, r, f = edge_prf(cond_edges, gen, tolerance)
    return {"precision": p, "recall": r, "f1": f}


def edge_f1_metric(cond_edges, generated_images, tolerance: int = 1) -> MetricResult:
    """Mean edge F1 (and precision, recall) of generated images against the input edge maps.

    ``cond_edges``: the thickness-1 :func:`edge_map` of the condition images (B, H, W); a thicker map would count
    its extra pixels as edges the generator had to reproduce and lower the recall."""
    per = edge_f1_per_image(cond_edges, generated_images, tolerance)
    n = int(len(per["f1"]))
    if n == 0:
        raise ValueError("no images to score")
    key = f"edge_f1_tol{tolerance}"
    values = {key: float(per["f1"].mean()), f"edge_precision_tol{tolerance}": float(per["precision"].mean()),
              f"edge_recall_tol{tolerance}": float(per["recall"].mean())}
    protocol = Protocol(metric=f"edge F1 (tolerance {tolerance} px)", extractor=EXTRACTOR, num_images=n,
                        resolution=int(np.asarray(generated_images).shape[-2]), resize="none", dtype="uint8",
                        extra={"tolerance_px": tolerance, "distance": "Chebyshev (square dilation)",
                               "empty_rule": "precision=1 if no generated edges, recall=1 if no input edges",
                               "average": "mean over images of per-image F1"})
    return MetricResult(key=key, values=values, protocol=protocol)
