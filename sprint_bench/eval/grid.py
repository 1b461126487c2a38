"""Sample grids: tile uint8 images and encode them as PNG."""
from __future__ import annotations

import io

import numpy as np


def image_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows*H, cols*W, 3) grid, padded with black tiles."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    pad = np.zeros((rows * cols - n, h, w, c), images.dtype)
    tiles = np.concatenate([images, pad]).reshape(rows, cols, h, w, c)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def upscaled(grid: np.ndarray, scale: int = 4):
    """A PIL image of the grid, enlarged ``scale`` times with nearest-neighbour (pixels stay visible)."""
    from PIL import Image

    img = Image.fromarray(grid)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def png_bytes(grid: np.ndarray, scale: int = 4) -> bytes:
    buf = io.BytesIO()
    upscaled(grid, scale).save(buf, format="PNG")
    return buf.getvalue()
