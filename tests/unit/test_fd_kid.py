"""Fréchet distance, KID, reference-statistics cache and extractors (real EfficientNet-Lite0, offline)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from sprint_bench.config import load_config
from sprint_bench.data.shapes.sampler import sample_world
from sprint_bench.eval.metrics import MetricResult
from sprint_bench.eval.metrics.extractors import (
    INCEPTION_FILE_NAME,
    INCEPTION_URL,
    EfficientNetLite0Features,
    InceptionFeatures,
    freed_memory_kept,
)
from sprint_bench.eval.metrics.fd import (
    fd_metric,
    feature_stats,
    frechet_distance,
    kid,
    kid_metric,
    metric_names,
    reference_cache_path,
    reference_stats,
)

BASE_YAML = Path(__file__).resolve().parents[2] / "experiments" / "base.yaml"
N = 200
RES = 32
REF_SEED = 11
GEN_SEED = 12
BLUR_SIGMAS = (0.0, 0.5, 1.0, 2.0)
COLOR_SHIFTS = (0, 16, 40)


class TinyExtractor:
    """Test-only extractor: per-channel mean and std of the image, 6-d."""

    name = "Tiny test extractor"
    dim = 6
    resize = "none (native resolution)"
    normalization = "x / 255"
    description = "test-only per-channel mean/std"

    def __init__(self, tag: str = "v1"):
        self.id = f"tiny-test|{tag}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32) / 255.0
        return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1).astype(np.float32)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return images.copy()
    out = gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def color_shift(images: np.ndarray, d: int) -> np.ndarray:
    return np.clip(images.astype(np.int16) + np.array([d, 0, -d], dtype=np.int16), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return load_config(BASE_YAML).world


@pytest.fixture(scope="module")
def images_fn(world):
    return lambda n, seed: sample_world(world, n, seed).images


@pytest.fixture(scope="module")
def effnet():
    return EfficientNetLite0Features(batch_size=16)


@pytest.fixture(scope="module")
def effnet_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("refcache")


@pytest.fixture(scope="module")
def ref(effnet, images_fn, effnet_cache):
    return reference_stats(effnet, images_fn, N, RES, REF_SEED, effnet_cache)


@pytest.fixture(scope="module")
def gen(images_fn):
    """An independent sample of the same distribution (different seed) and its distortions."""
    base = images_fn(N, GEN_SEED)
    sets = {("blur", s): blur(base, s) for s in BLUR_SIGMAS}
    sets.update({("color", d): color_shift(base, d) for d in COLOR_SHIFTS if d})
    sets[("color", 0)] = sets[("blur", 0.0)]
    return sets


@pytest.fixture(scope="module")
def gen_feats(gen, effnet):
    cache: dict = {}
    out = {}
    for k, imgs in gen.items():
        if id(imgs) not in cache:
            cache[id(imgs)] = effnet(imgs)
        out[k] = cache[id(imgs)]
    return out


# -------------------------------------------------------------------------------------------------------- FD maths
def test_frechet_distance_1d_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    fd = frechet_distance(np.array([1.5]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert fd == pytest.approx((1.5 + 0.5) ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)
    assert frechet_distance(1.5, 4.0, -0.5, 0.25) == pytest.approx(6.25, rel=1e-12)  # scalars accepted


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 9.0, 0.04]), np.array([4.0, 1.0, 0.01])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_general_matches_eigen_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(w)) @ v.T
    tr_root = np.sqrt(np.linalg.eigvalsh(r @ s2 @ r)).sum()
    expected = np.trace(s1) + np.trace(s2) - 2 * tr_root
    fd, info = frechet_distance(np.zeros(5), s1, np.zeros(5), s2, return_info=True)
    assert fd == pytest.approx(expected, rel=1e-9)
    assert info == {"eps_added": False, "imag_residue": pytest.approx(0.0, abs=1e-9)}


def test_frechet_distance_large_imaginary_part_raises():
    # not a covariance: sigma1 @ sigma2 has a negative eigenvalue -> purely imaginary root on the diagonal
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0]))


def test_feature_stats_n_minus_1():
    f = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = feature_stats(f)
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(f.T, ddof=1))
    assert mu.dtype == np.float64 and sigma.dtype == np.float64


def test_kid_matches_bruteforce_unbiased_mmd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(7, 3))
    d = 3
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m = 7
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    mean, std = kid(x, y, subsets=5, subset_size=1000)  # m = min(7, 7, 1000) = 7: every subset is the whole set
    assert mean == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    # smaller subsets -> a spread; reproducible by seed
    a = kid(x, y, subsets=20, subset_size=4, seed=3)
    assert a == kid(x, y, subsets=20, subset_size=4, seed=3) and a[1] > 0


def test_kid_full_kernels_equal_per_subset_kernels(monkeypatch):
    """kid() indexes precomputed whole kernel matrices when they fit; the values equal kernels computed per subset."""
    import sprint_bench.eval.metrics.fd as fd_mod

    rng = np.random.default_rng(2)
    g, r = rng.normal(size=(60, 16)), rng.normal(0.3, 1.1, size=(50, 16))
    full = kid(g, r, subsets=30, subset_size=20, seed=4)
    monkeypatch.setattr(fd_mod, "KID_FULL_KERNEL_ENTRIES", 0)  # force the per-subset path
    per_subset = kid(g, r, subsets=30, subset_size=20, seed=4)
    assert full[0] > 0 and full[1] > 0
    np.testing.assert_allclose(full, per_subset, rtol=1e-10)


# ------------------------------------------------------------------------------- real EfficientNet-Lite0 features
def test_effnet_extractor_attributes_and_batching(effnet, gen):
    assert effnet.name == "EfficientNet-Lite0" and effnet.dim == 1280
    assert "sha256:" in effnet.id and "224" in effnet.id and "bicubic" in effnet.id
    assert "bicubic" in effnet.resize.lower() and "224" in effnet.resize
    assert not effnet.model.training
    imgs = gen[("blur", 0.0)][:5]
    x = effnet.preprocess(imgs)
    assert x.shape == (5, 3, 224, 224) and x.dtype == torch.float32
    f_all = effnet(imgs)
    f_one = np.concatenate([effnet(imgs[i:i + 1]) for i in range(5)])
    assert f_all.shape == (5, 1280) and f_all.dtype == np.float32
    np.testing.assert_allclose(f_all, f_one, rtol=1e-4, atol=1e-5)
    assert np.all(f_all >= 0) and np.all(f_all <= 6)  # average of ReLU6 activations
    with pytest.raises(ValueError, match="uint8"):
        effnet(imgs.astype(np.float32))


def test_effnet_runs_folded_in_channels_last_and_matches_the_package_network(effnet, gen):
    """The extractor runs in channels_last with its BatchNorms folded into the convolutions and the symmetric pads
    inside them; its features equal those of the package's own network (default layout, weights as shipped)."""
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    x = effnet.preprocess(gen[("blur", 0.0)][:4])
    plain = EfficientNet.from_name("efficientnet-lite0")
    plain.load_state_dict(torch.load(effnet.weights_path, map_location="cpu", weights_only=True))
    plain.eval()
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in effnet.model.parameters() if p.ndim == 4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in effnet.model.modules())
    pads = [m.static_padding for m in effnet.model.modules() if isinstance(m, Conv2dStaticSamePadding)
            and isinstance(m.static_padding, torch.nn.ZeroPad2d)]
    assert pads and all(p.padding[0] != p.padding[1] for p in pads)  # only the asymmetric (stride-2) pads are left
    with torch.inference_mode():
        want = plain.extract_features(x.contiguous()).mean(dim=(2, 3))
        got = effnet.features(x)
    assert want.abs().max() > 0.5  # a live comparison, not of near-zero features
    torch.testing.assert_close(got, want, rtol=1e-4, atol=2e-5)


def test_extraction_keeps_freed_memory_for_reuse(effnet, gen, monkeypatch):
    """Feature extraction reuses the memory of one batch's activations for the next (glibc keeps freed blocks while
    inside ``freed_memory_kept``) instead of faulting fresh pages in for every batch; the features are the same.
    Eight batches: with the memory kept, about one batch's faults whatever the count; without it, the faults per batch
    vary 2-3x between runs: over four batches the ratio reached 0.39 (two failures in eight runs), over eight it was
    0.06-0.14 in six runs (2026-12-07)."""
    import contextlib
    import ctypes
    import resource

    import sprint_bench.eval.metrics.extractors as extractors

    imgs = gen[("blur", 0.0)][:128]  # eight batches of 16
    libc = ctypes.CDLL("libc.so.6")

    def faults():
        """Minor page faults of one extraction, from glibc's start-up allocator state: the earlier tests' frees
        given back, mmap and trim thresholds at their defaults (128 KiB)."""
        libc.malloc_trim(0)
        libc.mallopt(extractors._M_MMAP_THRESHOLD, 128 << 10)
        libc.mallopt(extractors._M_TRIM_THRESHOLD, 128 << 10)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        feats = effnet(imgs)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, feats

    kept, f_kept = faults()
    with monkeypatch.context() as m:
        m.setattr(extractors, "freed_memory_kept", contextlib.nullcontext)
        fresh, f_fresh = faults()
    assert kept < 0.3 * fresh, (kept, fresh)
    np.testing.assert_array_equal(f_kept, f_fresh)

    monkeypatch.setattr("ctypes.CDLL", lambda *a, **k: (_ for _ in ()).throw(OSError("not glibc")))
    with freed_memory_kept() as active:  # elsewhere a no-op
        assert active is False


def test_fd_self_is_zero(ref):
    fd = frechet_distance(ref["mu"], ref["sigma"], ref["mu"], ref["sigma"])
    assert abs(fd) < 1e-6 * np.trace(ref["sigma"])


def test_fd_increases_with_blur_and_color_shift(ref, gen_feats):
    memo: dict = {}

    def fd_of(key):
        f = gen_feats[key]
        if id(f) not in memo:  # ("color", 0) and ("blur", 0.0) are the same images
            mu, sigma = feature_stats(f)
            memo[id(f)] = frechet_distance(mu, sigma, ref["mu"], ref["sigma"])
        return memo[id(f)]

    blur_fd = [fd_of(("blur", s)) for s in BLUR_SIGMAS]
    color_fd = [fd_of(("color", d)) for d in COLOR_SHIFTS]
    assert all(a < b for a, b in zip(blur_fd, blur_fd[1:])), blur_fd
    assert all(a < b for a, b in zip(color_fd, color_fd[1:])), color_fd
    assert blur_fd[-1] > 5 * blur_fd[0]  # the sample-to-sample FD is small against a real distortion


def test_kid_increases_with_distortion_and_is_unbiased(ref, gen_feats):
    def kid_of(key):
        return kid(gen_feats[key], ref["feats"], subsets=20, subset_size=1000)[0]

    blur_kid = [kid_of(("blur", s)) for s in BLUR_SIGMAS]
    color_kid = [kid_of(("color", d)) for d in COLOR_SHIFTS]
    assert all(a < b for a, b in zip(blur_kid, blur_kid[1:])), blur_kid
    assert all(a < b for a, b in zip(color_kid, color_kid[1:])), color_kid
    # unbiasedness sanity: two independent samples of the same distribution -> |KID| ~ 0 next to a distortion
    assert abs(blur_kid[0]) < 0.05 * blur_kid[-1]
    # identical sets: ~0 up to the O(1/m) term of the unbiased estimator (it is slightly negative)
    self_kid, _ = kid(ref["feats"], ref["feats"], subsets=5)
    assert abs(self_kid) < 0.05 * blur_kid[-1]


# ---------------------------------------------------------------------------------------------- reference cache
def test_reference_cache_is_reused(ref, effnet, effnet_cache):
    assert not ref["from_cache"] and ref["cache_path"].is_file()
    assert ref["feats"].shape == (N, 1280) and ref["mu"].shape == (1280,) and ref["sigma"].shape == (1280, 1280)

    def must_not_render(n, seed):
        raise AssertionError("reference images rendered again although a valid cache exists")

    again = reference_stats(effnet, must_not_render, N, RES, REF_SEED, effnet_cache)
    assert again["from_cache"]
    np.testing.assert_array_equal(again["feats"], ref["feats"])
    np.testing.assert_array_equal(again["sigma"], ref["sigma"])
    assert again["meta"]["extractor_id"] == effnet.id and again["meta"]["n"] == N


def _counting(fn):
    calls = []

    def wrapped(n, seed):
        calls.append((n, seed))
        return fn(n, seed)

    return wrapped, calls


def test_reference_cache_key_changes(tmp_path, images_fn):
    ex = TinyExtractor()
    p = reference_cache_path(tmp_path, ex.id, 40, RES, 0)
    assert p.parent == tmp_path and p.name.startswith("refstats-")
    others = {reference_cache_path(tmp_path, ex.id, 41, RES, 0),
              reference_cache_path(tmp_path, ex.id, 40, RES, 1),
              reference_cache_path(tmp_path, ex.id, 40, 64, 0),
              reference_cache_path(tmp_path, TinyExtractor("v2").id, 40, RES, 0)}
    assert len(others) == 4 and p not in others

    fn, calls = _counting(images_fn)
    a = reference_stats(ex, fn, 40, RES, 0, tmp_path)
    b = reference_stats(ex, fn, 40, RES, 0, tmp_path)
    c = reference_stats(ex, fn, 48, RES, 0, tmp_path)
    d = reference_stats(ex, fn, 40, RES, 1, tmp_path)
    e = reference_stats(TinyExtractor("v2"), fn, 40, RES, 0, tmp_path)
    assert calls == [(40, 0), (48, 0), (40, 1), (40, 0)]
    assert not a["from_cache"] and b["from_cache"]
    paths = {x["cache_path"] for x in (a, c, d, e)}
    assert len(paths) == 4 and all(q.is_file() for q in paths)
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_reference_cache_stale_or_corrupt_is_recomputed(tmp_path, images_fn):
    ex = TinyExtractor()
    fn, calls = _counting(images_fn)
    fresh = reference_stats(ex, fn, 40, RES, 0, tmp_path)
    path = fresh["cache_path"]

    # 1) a file at the right name whose stored metadata belongs to another reference (seed 1)
    other = reference_stats(ex, fn, 40, RES, 1, tmp_path)
    path.write_bytes(other["cache_path"].read_bytes())
    got = reference_stats(ex, fn, 40, RES, 0, tmp_path)
    assert not got["from_cache"] and got["meta"]["data_seed"] == 0
    np.testing.assert_array_equal(got["feats"], fresh["feats"])

    # 2) metadata doctored in place (extractor id differs) -> recomputed
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["extractor_id"] = "something-else"
    with open(path, "wb") as f:
        np.savez(f, **{**arrays, "meta": np.array(json.dumps(meta))})
    assert not reference_stats(ex, fn, 40, RES, 0, tmp_path)["from_cache"]

    # 3) features changed but metadata intact -> content checksum fails -> recomputed
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["feats"] = arrays["feats"] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    got = reference_stats(ex, fn, 40, RES, 0, tmp_path)
    assert not got["from_cache"]
    np.testing.assert_array_equal(got["feats"], fresh["feats"])

    # 4) truncated / garbage file -> recomputed and overwritten with a valid one
    path.write_bytes(b"not an npz")
    assert not reference_stats(ex, fn, 40, RES, 0, tmp_path)["from_cache"]
    assert reference_stats(ex, fn, 40, RES, 0, tmp_path)["from_cache"]
    assert len(calls) == 6


def test_reference_images_fn_shape_checked(tmp_path):
    with pytest.raises(ValueError, match="images_fn"):
        reference_stats(TinyExtractor(), lambda n, s: np.zeros((n, 16, 16, 3), np.uint8), 10, RES, 0, tmp_path)


# --------------------------------------------------------------------------------------------------- Inception
def test_inception_missing_weights_raises_in_constructor(tmp_path, monkeypatch):
    import cleanfid.inception_torchscript as it

    def boom(*a, **k):
        raise AssertionError("InceptionV3W reached although the weights file is missing")

    monkeypatch.setattr(it, "InceptionV3W", boom)
    for arg in (tmp_path, tmp_path / INCEPTION_FILE_NAME):
        with pytest.raises(FileNotFoundError) as e:
            InceptionFeatures(arg)
        msg = str(e.value)
        assert str(tmp_path / INCEPTION_FILE_NAME) in msg and INCEPTION_FILE_NAME in msg and INCEPTION_URL in msg
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        InceptionFeatures(tmp_path / "no-such-dir")
    wrong = tmp_path / "weights.pt"
    wrong.write_bytes(b"x")
    with pytest.raises(ValueError, match=INCEPTION_FILE_NAME):
        InceptionFeatures(wrong)


class _FakeInceptionLayers(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)).repeat(1, 683)[:, :2048]


class _FakeInception(torch.nn.Module):
    """Same TorchScript interface as inception-2015-12-05.pt (``layers`` + ``forward(x, return_features)``)."""

    def __init__(self):
        super().__init__()
        self.layers = _FakeInceptionLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_inception_wiring_with_stand_in_torchscript(tmp_path, images_fn):
    torch.jit.script(_FakeInception()).save(str(tmp_path / INCEPTION_FILE_NAME))
    ex = InceptionFeatures(tmp_path / INCEPTION_FILE_NAME)
    imgs = images_fn(12, 5)
    assert ex.preprocess(imgs[:2]).shape == (2, 3, 299, 299)
    f = ex(imgs)
    assert f.shape == (12, 2048) and f.dtype == np.float32
    # clean-fid normalisation (x - 128) / 128 happens inside InceptionV3W: the stand-in returns channel means
    expected = (imgs.astype(np.float64).mean(axis=(1, 2)) - 128.0) / 128.0
    np.testing.assert_allclose(f[:, :3], expected, atol=0.02)
    assert metric_names(ex)[:2] == ("fid_inception", "FID (Inception-v3, clean-fid clean mode)")
    r = reference_stats(ex, images_fn, 12, RES, 0, tmp_path)
    res = kid_metric(images_fn(12, 6), r, ex, RES, subsets=3)
    assert res.key == "kid_inception" and "Inception-v3" in res.protocol.metric
    assert "299" in res.protocol.resize and "clean" in res.protocol.resize


# ---------------------------------------------------------------------------------------------- metric results
def test_metric_results_protocols(ref, effnet, gen, gen_feats):
    imgs, feats = gen[("blur", 0.0)], gen_feats[("blur", 0.0)]
    fd_res = fd_metric(imgs, ref, effnet, RES, gen_feats=feats)
    kid_res = kid_metric(imgs, ref, effnet, RES, subsets=10, subset_size=1000, seed=0, gen_feats=feats)
    assert isinstance(fd_res, MetricResult) and isinstance(kid_res, MetricResult)
    assert fd_res.key == "fd_effnet_lite0" and set(fd_res.values) == {"fd_effnet_lite0"}
    assert kid_res.key == "kid_effnet_lite0" and set(kid_res.values) == {"kid_effnet_lite0", "kid_effnet_lite0_std"}
    for res in (fd_res, kid_res):
        p = res.protocol
        assert "FID" not in p.metric and "EfficientNet-Lite0" in p.metric
        assert "EfficientNet-Lite0" in p.extractor and "sha256" in p.extractor
        assert p.num_images == N and p.resolution == RES
        assert "bicubic" in p.resize.lower() and "224" in p.resize
        assert "float32" in p.dtype and "float64" in p.dtype
        assert p.extra["reference_n"] == N and p.extra["reference_data_seed"] == REF_SEED
        assert p.extra["extractor_id"] == effnet.id
        params = p.as_params(res.key)
        assert params[f"{res.key}.num_images"] == str(N)
    assert fd_res.protocol.metric == "FD (EfficientNet-Lite0)"
    assert kid_res.protocol.extra["subsets"] == 10 and kid_res.protocol.extra["subset_size"] == 1000
    assert kid_res.protocol.extra["effective_subset_size"] == N
    assert "(x.y/d + 1)^3" in kid_res.protocol.extra["kernel"]

    # the same number when the metric extracts the features itself (small set; KID avoids another sqrtm)
    small = imgs[:16]
    direct = kid_metric(small, ref, effnet, RES, subsets=3)
    via = kid_metric(small, ref, effnet, RES, subsets=3, gen_feats=feats[:16])
    assert direct.values["kid_effnet_lite0"] == pytest.approx(via.values["kid_effnet_lite0"], rel=1e-3, abs=1e-6)


def test_metric_refuses_mismatched_reference(ref, effnet, gen):
    tiny = TinyExtractor()
    with pytest.raises(ValueError, match="extractor id"):
        fd_metric(gen[("blur", 0.0)], ref, tiny, RES)
    with pytest.raises(ValueError, match="resolution"):
        kid_metric(gen[("blur", 0.0)], ref, effnet, 64)


def test_custom_extractor_names_never_fid(tmp_path, images_fn):
    ex = TinyExtractor()
    r = reference_stats(ex, images_fn, 30, RES, 0, tmp_path)
    res = fd_metric(images_fn(30, 1), r, ex, RES)
    assert res.key == "fd_tiny_test_extractor" and res.protocol.metric == "FD (Tiny test extractor)"
    assert "FID" not in res.protocol.metric
