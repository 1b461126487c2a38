"""The GenEval-Shapes detector benchmark: ground-truth renders score 1, blurred ones less, an evaluation's image
folder is scored the same way, and bad input is refused."""
import numpy as np
import pytest
from PIL import Image

from sprint_bench.config import load_config
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import realize
from sprint_bench.eval.geneval import bench
from sprint_bench.eval.geneval.layout import sample_path, write_prompt_folder

REPO_BASE = "experiments/base.yaml"


def test_sharp_renders_score_one_and_a_strong_blur_fails_most():
    sharp = bench.main(["--n", "60", "--noise", "0"])
    blurred = bench.main(["--n", "60", "--noise", "0", "--blur", "2.0"])
    assert sharp["overall"] == 1.0 and sharp["blur_std_px"] == 0.0 and sharp["images"] == 60
    assert blurred["overall"] < 0.5 and blurred["blur_std_px"] == 2.0
    assert set(blurred["tasks"]) == set(sharp["tasks"]) and sharp["images_from"] == "ground-truth renders"


def test_a_folder_of_renders_is_scored_and_blurred_like_the_renders(tmp_path):
    world = load_config(REPO_BASE).world
    prompts = geneval_shapes_prompts(world)[:12]
    rng = np.random.default_rng(1)
    for i, meta in enumerate(prompts):
        write_prompt_folder(tmp_path, i, meta)
        for k in range(2):
            Image.fromarray(render(realize(meta, world, rng))).save(sample_path(tmp_path, i, k))
    sharp = bench.main(["--folder", str(tmp_path)])
    blurred = bench.main(["--folder", str(tmp_path), "--blur", "2.0"])
    assert sharp["images"] == 24 and sharp["noise_std"] == 0.0 and sharp["overall"] == 1.0
    assert blurred["overall"] < sharp["overall"] and blurred["images_from"] == str(tmp_path)


def test_an_unsharp_mask_restores_blurred_renders_and_is_the_identity_on_flat_images():
    blurred = bench.main(["--n", "120", "--noise", "0", "--blur", "1.2"])
    restored = bench.main(["--n", "120", "--noise", "0", "--blur", "1.2", "--sharpen", "1.0"])
    assert restored["sharpen"] == 1.0 and restored["sharpen_std_px"] == 1.0 and blurred["sharpen"] == 0.0
    assert blurred["overall"] < 0.8 and restored["overall"] > blurred["overall"] + 0.15
    flat = np.full((8, 8, 3), 77, dtype=np.uint8)
    assert np.array_equal(bench.degrade(flat, 0.0, 0.0, np.random.default_rng(0), sharpen=2.0), flat)
    step = np.zeros((8, 8, 3), dtype=np.uint8)
    step[:, 4:] = 200
    sharpened = bench.degrade(step, 0.0, 0.0, np.random.default_rng(0), sharpen=1.0).astype(int)
    assert sharpened[0, 3, 0] == 0 and sharpened[0, 4, 0] == 255  # under- and overshoot at the edge, clipped
    assert sharpened[0, 0, 0] == 0 and sharpened[0, 7, 0] == 200  # far from the edge, unchanged


@pytest.mark.parametrize("bad", [["--blur", "-1"], ["--n", "0"], ["--noise", "-0.5"], ["--folder", "."],
                                 ["--sharpen", "-1"], ["--sharpen-sigma", "0"]])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(SystemExit):
        bench.main(bad)
