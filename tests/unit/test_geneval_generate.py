"""GenEval image generation: the seed rule, resuming, and folders that never mix images of two seed rules."""
import numpy as np
import pytest
from PIL import Image

from sprint_bench.eval.geneval.generate import generate_geneval, images_folder_name
from sprint_bench.eval.geneval.layout import iter_samples

PROMPTS = [{"tag": "single_object", "prompt": "a photo of a circle"}, {"tag": "colors", "prompt": "a red square"}]


class SeedPainter:
    """Paints each image with its seed as the pixel value; remembers every seed asked for."""

    def __init__(self):
        self.seeds = []

    def __call__(self, captions, seeds):
        self.seeds += seeds
        return np.stack([np.full((4, 4, 3), s % 256, np.uint8) for s in seeds])


def pixels(root):
    return {(i, p.stem): int(np.asarray(Image.open(p))[0, 0, 0]) for i, _, p in iter_samples(root)}


def test_folder_name_names_non_default_seed_rules():
    assert images_folder_name("scm1-t1.5708-w3") == "scm1-t1.5708-w3"  # seed 0, 4 per prompt: as before
    assert images_folder_name("scm1-t1.5708-w3", 1000000) == "scm1-t1.5708-w3-seed1000000"
    assert images_folder_name("euler1-cfg3", 0, 2) == "euler1-cfg3-ipp2"
    assert images_folder_name("euler1-cfg3", 5, 1) == "euler1-cfg3-seed5-ipp1"


def test_images_follow_the_seed_rule_resume_and_refuse_another_rule(tmp_path):
    root = tmp_path / "images"
    paint = SeedPainter()
    generate_geneval(paint, PROMPTS, root, images_per_prompt=2, batch_size=3, seed=10)
    assert sorted(paint.seeds) == [10, 11, 12, 13]  # seed + i * ipp + k
    want = {(0, "0000"): 10, (0, "0001"): 11, (1, "0000"): 12, (1, "0001"): 13}
    assert pixels(root) == want
    assert sorted(p.name for p in root.iterdir()) == ["00000", "00001"]  # the record sits outside the layout
    assert (tmp_path / "images-seeds.json").exists()
    (root / "00001" / "samples" / "0001.png").unlink()
    generate_geneval(paint, PROMPTS, root, images_per_prompt=2, batch_size=3, seed=10)
    assert paint.seeds[4:] == [13] and pixels(root) == want  # resumed: only the missing image is drawn
    for seed, ipp in ((0, 2), (10, 4)):
        with pytest.raises(ValueError, match="holds images drawn with seed 10 and 2 per prompt"):
            generate_geneval(paint, PROMPTS, root, images_per_prompt=ipp, seed=seed)
    assert len(paint.seeds) == 5 and pixels(root) == want  # nothing drawn, nothing overwritten
