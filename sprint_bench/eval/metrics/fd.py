"""Fréchet distance and KID on features of a pretrained extractor, with cached reference statistics.

Naming rule: only Inception-v3 (TF 2015-12-05 weights, clean-fid) features give a number called "FID"
(``fid_inception``). The same distance on EfficientNet-Lite0 features is "FD (EfficientNet-Lite0)"
(``fd_effnet_lite0``); it is not comparable with any published FID.

Conventions (metrics-protocol.md §2-3):
* statistics: mean and (N-1)-normalised covariance of the features, in float64;
* FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), matrix root by ``scipy.linalg.sqrtm``;
* KID = unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets of
  m = min(n_g, n_r, subset_size) drawn without replacement; reported raw (not x10^3), with the population std over
  subsets. When both sets have <= subset_size images every subset is the whole set, so the std is 0.
* FD is biased in N: only compare values at the same generated N, reference N, resolution and extractor id.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.linalg

from sprint_bench.atomic import atomic_write
from sprint_bench.eval.metrics.base import MetricResult, Protocol

CACHE_FORMAT = 1
IMAG_REL_TOL = 1e-3
KID_KERNEL = "cubic polynomial k(x,y) = (x.y/d + 1)^3"
STATS_DTYPE = "float32 features, float64 mean/covariance"


# --------------------------------------------------------------------------------------------------------------- maths
def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (N-1)-normalised covariance of features ``(N, d)`` in float64."""
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, d), got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
    mu = f.mean(axis=0)
    sigma = np.cov(f, rowvar=False, ddof=1)
    return mu, np.atleast_2d(sigma)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, return_info: bool = False):
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    * The root of ``sigma1 @ sigma2`` comes from ``scipy.linalg.sqrtm``. Only if it is non-finite (singular product)
      is ``eps * I`` added to both covariances and the root recomputed.
    * Imaginary residue: sqrtm of a product of PSD matrices comes back complex from rounding, notably when N <= d
      (rank-deficient covariances: rounding makes some ~0 eigenvalues slightly negative). Only the diagonal enters
      the trace, so the decision is made on it: ``imag_residue = sum|Im diag| / |Re trace|`` (a bound on the
      relative change of the trace term) is dropped, keeping the real part, when <= 1e-3, and raises ValueError when
      larger. Off-diagonal imaginary parts are ignored: they do not touch the trace and can be O(1) while the trace is
      exact (seen with 200 EfficientNet-Lite0 features, d = 1280). This differs from clean-fid 0.1.35 (absolute 1e-3
      on each diagonal entry) and HEAD (no check). scipy's "singular matrix" LinAlgWarning is silenced: it is
      expected whenever N <= d.
    * The result is not clipped at 0: identical statistics give ~0 up to rounding (possibly a tiny negative).

    Returns the distance (float), or ``(distance, info)`` with ``info = {"eps_added": bool, "imag_residue": float}``
    when ``return_info``.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise ValueError(f"mean vectors differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    eps_added = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.all(np.isfinite(covmean)):
            offset = np.eye(d) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
            eps_added = True
    if not np.all(np.isfinite(covmean)):
        raise ValueError("matrix square root of sigma1 @ sigma2 is not finite even after adding eps*I")

    imag_residue = 0.0
    if np.iscomplexobj(covmean):
        diag = np.diagonal(covmean)
        scale = max(abs(float(diag.real.sum())), 1e-12)
        imag_residue = float(np.abs(diag.imag).sum()) / scale
        if imag_residue > IMAG_REL_TOL:
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has a large imaginary component on its diagonal "
                             f"(sum|Im diag| / |Re trace| = {imag_residue:.3g} > {IMAG_REL_TOL:g}); "
                             "covariances are too ill-conditioned for a trustworthy Fréchet distance")
        covmean = covmean.real

    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    if return_info:
        return fd, {"eps_added": eps_added, "imag_residue": imag_residue}
    return fd


KID_FULL_KERNEL_ENTRIES = 50_000_000  # (n_g + n_r)^2 float64 entries up to which kid() precomputes whole kernels


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3, the cubic polynomial kernel of KID (Binkowski et al. 2018), for all row pairs."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD^2 from the kernel matrices of one subset pair (diagonals of k_xx, k_yy left out)."""
    m = kxx.shape[0]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(feats_g: np.ndarray, feats_r: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel distance: mean and population std of the unbiased MMD^2 (cubic polynomial kernel) over ``subsets``
    random subset pairs of size m = min(n_g, n_r, subset_size), each drawn without replacement
    (``numpy.random.default_rng(seed)``)."""
    g = np.asarray(feats_g, dtype=np.float64)
    r = np.asarray(feats_r, dtype=np.float64)
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1]:
        raise ValueError(f"feature sets must be (n, d) with equal d, got {g.shape} and {r.shape}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    ng, nr = g.shape[0], r.shape[0]
    m = min(ng, nr, int(subset_size))
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples, got m = {m}")
    full = (ng + nr) ** 2 <= KID_FULL_KERNEL_ENTRIES
    if full:  # every subset's kernel entries are entries of the full matrices: compute those once, index per subset
        kgg, krr, kgr = _poly_kernel(g, g), _poly_kernel(r, r), _poly_kernel(g, r)
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets, dtype=np.float64)
    for i in range(subsets):
        ig = rng.choice(ng, size=m, replace=False)
        ir = rng.choice(nr, size=m, replace=False)
        if full:
            vals[i] = _mmd2_unbiased(kgg[np.ix_(ig, ig)], krr[np.ix_(ir, ir)], kgr[np.ix_(ig, ir)])
        else:
            x, y = g[ig], r[ir]
            vals[i] = _mmd2_unbiased(_poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y))
    return float(vals.mean()), float(vals.std())


# ------------------------------------------------------------------------------------------------- reference cache
def reference_key(extractor_id: str, n: int, resolution: int, data_seed: int) -> dict:
    return {"format": CACHE_FORMAT, "extractor_id": str(extractor_id), "n": int(n), "resolution": int(resolution),
            "data_seed": int(data_seed)}


def reference_cache_path(cache_dir: str | os.PathLike, extractor_id: str, n: int, resolution: int,
                         data_seed: int) -> Path:
    """Cache file for one reference: ``<cache_dir>/refstats-<sha256 of the key>.npz``."""
    key = json.dumps(reference_key(extractor_id, n, resolution, data_seed), sort_keys=True)
    return Path(cache_dir) / f"refstats-{hashlib.sha256(key.encode()).hexdigest()}.npz"


def _content_sha256(mu: np.ndarray, sigma: np.ndarray, feats: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (mu, sigma, feats):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _load_valid(path: Path, expected: dict, dim: int) -> dict | None:
    """The cached reference at ``path`` if it exists, reads cleanly and matches ``expected`` exactly; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            mu, sigma, feats = z["mu"], z["sigma"], z["feats"]
    except Exception:  # corrupt / truncated / foreign file -> recompute
        return None
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        return None
    n = expected["n"]
    if meta.get("dim") != dim or feats.shape != (n, dim) or mu.shape != (dim,) or sigma.shape != (dim, dim):
        return None
    if meta.get("content_sha256") != _content_sha256(mu, sigma, feats):
        return None
    return {"mu": mu, "sigma": sigma, "feats": feats, "meta": meta}


def reference_stats(extractor, images_fn: Callable[[int, int], np.ndarray], n: int, resolution: int,
                    data_seed: int, cache_dir: str | os.PathLike | None) -> dict:
    """Reference features and statistics of ``n`` real images, computed once and cached.

    ``images_fn(n, seed)`` renders uint8 ``(n, resolution, resolution, 3)`` real images (e.g.
    ``lambda n, s: sample_world(world, n, s).images``). The cache file name is the sha256 of
    (extractor.id, n, resolution, data_seed); on load the stored metadata, shapes and a content checksum are
    verified, and anything that does not match (or an unreadable file) is recomputed and overwritten atomically.
    ``cache_dir=None`` disables caching.

    Returns ``{"mu", "sigma", "feats", "meta", "cache_path", "from_cache"}``.
    """
    if n < 2:
        raise ValueError(f"reference needs n >= 2 images, got {n}")
    expected = reference_key(extractor.id, n, resolution, data_seed)
    path = None
    if cache_dir is not None:
        path = reference_cache_path(cache_dir, extractor.id, n, resolution, data_seed)
        hit = _load_valid(path, expected, int(extractor.dim))
        if hit is not None:
            return {**hit, "cache_path": path, "from_cache": True}

    images = np.asarray(images_fn(n, data_seed))
    if images.shape != (n, resolution, resolution, 3) or images.dtype != np.uint8:
        raise ValueError(f"images_fn({n}, {data_seed}) must return uint8 ({n}, {resolution}, {resolution}, 3), "
                         f"got {images.dtype} {images.shape}")
    feats = np.asarray(extractor(images))
    if feats.shape != (n, extractor.dim):
        raise ValueError(f"extractor {extractor.name} returned {feats.shape}, expected ({n}, {extractor.dim})")
    mu, sigma = feature_stats(feats)
    meta = {**expected, "extractor_name": extractor.name, "dim": int(extractor.dim),
            "resize": getattr(extractor, "resize", ""), "feats_dtype": str(feats.dtype),
            "content_sha256": _content_sha256(mu, sigma, feats), "created_unix": time.time()}
    if path is not None:
        atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma, feats=feats,
                                              meta=np.array(json.dumps(meta, sort_keys=True))))
    return {"mu": mu, "sigma": sigma, "feats": feats, "meta": meta, "cache_path": path, "from_cache": False}


# -------------------------------------------------------------------------------------------------------- metrics
_INCEPTION_NAMES = ("fid_inception", "FID (Inception-v3, clean-fid clean mode)",
                    "kid_inception", "KID (Inception-v3, clean-fid clean mode)")
_EFFNET_NAMES = ("fd_effnet_lite0", "FD (EfficientNet-Lite0)", "kid_effnet_lite0", "KID (EfficientNet-Lite0)")


def metric_names(extractor) -> tuple[str, str, str, str]:
    """(fd key, fd display name, kid key, kid display name) for an extractor. "FID" only for clean-fid Inception."""
    from sprint_bench.eval.metrics.extractors import EfficientNetLite0Features, InceptionFeatures

    if isinstance(extractor, InceptionFeatures):
        return _INCEPTION_NAMES
    if isinstance(extractor, EfficientNetLite0Features):
        return _EFFNET_NAMES
    name = str(extractor.name)
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "custom"
    return f"fd_{slug}", f"FD ({name})", f"kid_{slug}", f"KID ({name})"


def _gen_features(gen_images, ref: dict, extractor, resolution: int, gen_feats) -> tuple[np.ndarray, int]:
    meta = ref["meta"]
    if meta.get("extractor_id") != extractor.id:
        raise ValueError(f"reference statistics were computed with extractor id {meta.get('extractor_id')!r}, "
                         f"not {extractor.id!r}; recompute the reference")
    if int(meta.get("resolution", -1)) != int(resolution):
        raise ValueError(f"reference resolution {meta.get('resolution')} != requested resolution {resolution}")
    gen_images = np.asarray(gen_images)
    if gen_images.ndim != 4 or gen_images.shape[1:] != (resolution, resolution, 3):
        raise ValueError(f"generated images must be (N, {resolution}, {resolution}, 3), got {gen_images.shape}")
    n = gen_images.shape[0]
    if gen_feats is None:
        gen_feats = extractor(gen_images)
    gen_feats = np.asarray(gen_feats)
    if gen_feats.shape != (n, extractor.dim):
        raise ValueError(f"generated features must be ({n}, {extractor.dim}), got {gen_feats.shape}")
    return gen_feats, n


def _base_extra(ref: dict, extractor) -> dict:
    meta = ref["meta"]
    return {"reference_n": int(meta["n"]), "reference_data_seed": int(meta["data_seed"]),
            "extractor_id": extractor.id, "feature_dim": int(extractor.dim),
            "normalization": getattr(extractor, "normalization", "")}


def fd_metric(gen_images: np.ndarray, ref: dict, extractor, resolution: int, *,
              gen_feats: np.ndarray | None = None) -> MetricResult:
    """Fréchet distance of generated uint8 images ``(N, res, res, 3)`` to a reference from :func:`reference_stats`.

    ``gen_feats``: features of ``gen_images`` already extracted with ``extractor`` (skips a second extraction when FD
    and KID are computed on the same images). Refuses a reference built with another extractor id or resolution.
    """
    feats, n = _gen_features(gen_images, ref, extractor, resolution, gen_feats)
    mu, sigma = feature_stats(feats)
    value, info = frechet_distance(mu, sigma, ref["mu"], ref["sigma"], return_info=True)
    key, display, _, _ = metric_names(extractor)
    extra = {**_base_extra(ref, extractor), "covariance": "N-1 normalised, float64",
             "sqrtm": "scipy.linalg.sqrtm", "sqrtm_eps_added": info["eps_added"],
             "sqrtm_imag_residue": info["imag_residue"]}
    proto = Protocol(metric=display, extractor=extractor.description, num_images=n, resolution=int(resolution),
                     resize=extractor.resize, dtype=STATS_DTYPE, extra=extra)
    return MetricResult(key=key, values={key: value}, protocol=proto)


def kid_metric(gen_images: np.ndarray, ref: dict, extractor, resolution: int, *, subsets: int = 100,
               subset_size: int = 1000, seed: int = 0, gen_feats: np.ndarray | None = None) -> MetricResult:
    """KID (raw, not x10^3) of generated images to a reference from :func:`reference_stats`;
    values ``{key: mean, key + "_std": std}``."""
    feats, n = _gen_features(gen_images, ref, extractor, resolution, gen_feats)
    mean, std = kid(feats, ref["feats"], subsets=subsets, subset_size=subset_size, seed=seed)
    _, _, key, display = metric_names(extractor)
    m = min(n, int(ref["feats"].shape[0]), int(subset_size))
    extra = {**_base_extra(ref, extractor), "subsets": int(subsets), "subset_size": int(subset_size),
             "effective_subset_size": m, "kernel": KID_KERNEL, "estimator": "unbiased MMD^2",
             "std": "population std over subsets", "subset_seed": int(seed), "scale": "raw (not x1e3)"}
    proto = Protocol(metric=display, extractor=extractor.description, num_images=n, resolution=int(resolution),
                     resize=extractor.resize, dtype=STATS_DTYPE, extra=extra)
    return MetricResult(key=key, values={key: mean, f"{key}_std": std}, protocol=proto)
