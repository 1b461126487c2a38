"""MiniLM text encoder (offline) and the caption-embedding cache."""
import pytest
import torch

from sprint_bench.models.text_encoder import HIDDEN_SIZE, CaptionCache, TextEncoder


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_length=16)


def test_token_states_and_mask(encoder):
    hidden, mask = encoder.encode(["a photo of a red circle", "a photo of three squares", ""])
    assert hidden.shape == (3, 16, HIDDEN_SIZE) and mask.shape == (3, 16)
    assert mask[2].sum() == 2  # the empty caption is [CLS] [SEP]
    assert mask[0].sum() == 8
    assert not torch.allclose(hidden[0], hidden[1])
    # a real pretrained encoder: captions that differ in one colour word stay close, unrelated ones less so
    h2, m2 = encoder.encode(["a photo of a blue circle", "stock market crash"])
    pooled = lambda h, m: (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)  # noqa: E731
    ref, other = pooled(hidden[:1], mask[:1]), pooled(h2, m2)
    cos = torch.nn.functional.cosine_similarity(ref, other)
    assert cos[0] > cos[1] + 0.2


def test_cache_is_built_once_and_reloaded(tmp_path, encoder):
    caps = ["a photo of a circle", "a photo of a square"]
    built = CaptionCache.build(caps, 16, tmp_path, encoder=encoder)
    assert built.hidden.shape == (3, 16, HIDDEN_SIZE) and built.null_id == 2
    files = list(tmp_path.glob("captions-*.pt"))
    assert len(files) == 1

    class NoEncoder:
        def encode(self, *a, **k):
            raise AssertionError("cache should have been reused")

    again = CaptionCache.build(caps, 16, tmp_path, encoder=NoEncoder())
    assert torch.equal(again.hidden, built.hidden)
    ids = again.ids_for(["a photo of a square"])
    assert torch.equal(again.lookup(ids)[0], built.hidden[1:2])
    with pytest.raises(KeyError, match="not in the cache"):
        again.ids_for(["a photo of a triangle"])
    # a different caption list is a different cache entry
    CaptionCache.build(caps[:1], 16, tmp_path, encoder=encoder)
    assert len(list(tmp_path.glob("captions-*.pt"))) == 2
