"""Edge maps of shapes-world images: the ControlNet condition and the extractor of the edge-F1 fidelity metric.

Filter (deterministic, numpy/scipy only, the same code for renders and generated images):

1. colour gradient magnitude: Sobel derivatives of each RGB channel (pixels in [0, 1], kernel / 8 so that a ramp of
   slope s per pixel gives s, replicate padding) combined by Di Zenzo's structure tensor, sqrt(lambda_max) of
   [[sum gx^2, sum gx gy], [sum gx gy, sum gy^2]] (Di Zenzo, "A note on the gradient of a multi-image", CVGIP 1986);
2. hysteresis threshold: the band of pixels >= LOW_THRESHOLD that are 8-connected (through such pixels) to one
   >= HIGH_THRESHOLD (as in Canny, IEEE TPAMI 1986);
3. thinning of the band to a 1-px, 8-connected curve on the object boundary by Zhang-Suen thinning (topology
   preserving, so the band around an object stays a closed ring; Zhang & Suen, CACM 27(3) 1984);
4. dilation to ``thickness`` px with a thickness x thickness square (offsets -(t//2) .. t-1-t//2), the line-thickness
   step of the SANA-ControlNet scribble recipe (method reference §10).

The thresholds sit below the weakest object/background contrast of the world (brown on grey: a gradient magnitude of
~0.14 at the boundary) and above the gradient of mild pixel noise. Non-maximum suppression (Canny) was tried instead
of thinning and dropped: it cuts the apex of the triangles, leaving open contours.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

HIGH_THRESHOLD = 0.10  # Di Zenzo magnitude, RGB in [0, 1], per pixel
LOW_THRESHOLD = 0.05
EXTRACTOR = (f"Sobel/Di Zenzo colour-gradient magnitude (RGB in [0,1]), hysteresis [{LOW_THRESHOLD}, "
             f"{HIGH_THRESHOLD}], Zhang-Suen thinning")


def _as_batch(images) -> tuple[np.ndarray, bool]:
    """uint8 (H, W, 3) or (B, H, W, 3) -> float64 (B, H, W, 3) in [0, 1] and whether the input was a single image."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got dtype {images.dtype}")
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (B, H, W, 3) images, got shape {images.shape}")
    return images.astype(np.float64) / 255.0, single


def colour_gradient(img: np.ndarray) -> np.ndarray:
    """Di Zenzo colour-gradient magnitude (B, H, W) of float (B, H, W, 3) images in [0, 1]; x right, y down."""
    p = np.pad(img, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = img.shape[1:3]

    def s(dy, dx):  # the padded image shifted by (dy, dx) in {-1, 0, 1}
        return p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    gx = (s(-1, 1) + 2 * s(0, 1) + s(1, 1) - s(-1, -1) - 2 * s(0, -1) - s(1, -1)) / 8.0
    gy = (s(1, -1) + 2 * s(1, 0) + s(1, 1) - s(-1, -1) - 2 * s(-1, 0) - s(-1, 1)) / 8.0
    jxx = gx[..., 0] ** 2 + gx[..., 1] ** 2 + gx[..., 2] ** 2
    jyy = gy[..., 0] ** 2 + gy[..., 1] ** 2 + gy[..., 2] ** 2
    jxy = gx[..., 0] * gy[..., 0] + gx[..., 1] * gy[..., 1] + gx[..., 2] * gy[..., 2]
    lam = (jxx + jyy) / 2 + np.sqrt(((jxx - jyy) / 2) ** 2 + jxy ** 2)
    return np.sqrt(lam)


def zhang_suen_thin(mask: np.ndarray) -> np.ndarray:
    """Boolean (B, H, W) thinned to 8-connected 1-px curves with the same topology (Zhang & Suen, CACM 1984)."""
    m = mask.copy()
    h, w = m.shape[1:]
    while True:
        changed = False
        for step in (0, 1):
            p = np.pad(m, ((0, 0), (1, 1), (1, 1)))
            # neighbours P2..P9 clockwise from north: N, NE, E, SE, S, SW, W, NW
            nb = [p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                  for dy, dx in ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))]
            count = sum(n.astype(int) for n in nb)
            transitions = sum((~nb[i] & nb[(i + 1) % 8]).astype(int) for i in range(8))
            n2, n4, n6, n8 = nb[0], nb[2], nb[4], nb[6]
            if step == 0:
                side = ~(n2 & n4 & n6) & ~(n4 & n6 & n8)
            else:
                side = ~(n2 & n4 & n8) & ~(n2 & n6 & n8)
            remove = m & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                m &= ~remove
                changed = True
        if not changed:
            return m


def _hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity inside each image, never across the batch axis
    labels, n = ndimage.label(weak, structure=structure)
    good = np.zeros(n + 1, dtype=bool)
    good[np.unique(labels[strong & weak])] = True
    good[0] = False
    return good[labels]


def dilate(edges: np.ndarray, thickness: int) -> np.ndarray:
    """Boolean (B, H, W) dilated by a thickness x thickness square; thickness 1 is the identity."""
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    lo, hi = thickness // 2, thickness - 1 - thickness // 2
    h, w = edges.shape[1:]
    p = np.pad(edges, ((0, 0), (hi, lo), (hi, lo)))
    out = np.zeros_like(edges)
    for dy in range(-lo, hi + 1):
        for dx in range(-lo, hi + 1):
            out |= p[:, hi - dy:hi - dy + h, hi - dx:hi - dx + w]
    return out


def edge_map(images, thickness: int = 1) -> np.ndarray:
    """uint8 {0, 1} edge map (H, W) of a uint8 (H, W, 3) image, or (B, H, W) of a (B, H, W, 3) batch."""
    img, single = _as_batch(images)
    mag = colour_gradient(img)
    band = _hysteresis(mag >= LOW_THRESHOLD, mag >= HIGH_THRESHOLD)
    edges = dilate(zhang_suen_thin(band), thickness)
    edges = edges.astype(np.uint8)
    return edges[0] if single else edges


def edges_to_condition(edges: torch.Tensor) -> torch.Tensor:
    """{0, 1} edge maps (B, H, W) -> the ControlNet input: float32 (B, 3, H, W) in {-1, 1} (edge = 1), a view of the
    map on 3 channels."""
    return edges.float().mul(2.0).sub(1.0)[:, None].expand(-1, 3, -1, -1)


def edge_condition(images, thickness: int = 1) -> torch.Tensor:
    """The model input for a ControlNet from uint8 images: :func:`edges_to_condition` of their edge maps."""
    e = edge_map(images, thickness)
    return edges_to_condition(torch.from_numpy(e if e.ndim == 3 else e[None])).contiguous()
