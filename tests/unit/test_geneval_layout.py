"""Unit tests for the GenEval (Ghosh et al. 2023) folder layout and the vendored official prompts."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from sprint_bench.eval.geneval import (
    Detection,
    iter_samples,
    load_metadata,
    official_metadata_path,
    sample_path,
    score_folder,
    validate_metadata,
    write_prompt_folder,
    write_results,
)

PROMPTS = [
    {"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"},
    {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}], "prompt": "a photo of a red dog"},
    {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"},
]


def write_images(root, brightness):
    """brightness[i][k] -> fill value of sample k of prompt i (8x8 PNG)."""
    for i, meta in enumerate(PROMPTS):
        write_prompt_folder(root, i, meta)
        for k, value in enumerate(brightness[i]):
            Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(sample_path(root, i, k))


def test_paths_are_zero_padded(tmp_path):
    assert sample_path(tmp_path, 7, 3) == tmp_path / "00007" / "samples" / "0003.png"
    folder = write_prompt_folder(tmp_path, 12, PROMPTS[0])
    assert folder == tmp_path / "00012"
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == PROMPTS[0]


def test_iter_samples_finds_only_digit_folders_and_pngs(tmp_path):
    write_images(tmp_path, [[255] * 4] * 3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "metadata.jsonl").write_text(json.dumps(PROMPTS[0]))
    (tmp_path / "00099").write_text("a file, not a folder")
    (tmp_path / "00001" / "samples" / "0004.jpg").write_bytes(b"jpg")
    (tmp_path / "00001" / "samples" / "grid.png").write_bytes(b"png")
    (tmp_path / "00001" / "samples" / "0005.png.bak").write_bytes(b"png")
    found = list(iter_samples(tmp_path))
    assert [(i, p.name) for i, _, p in found] == [(i, f"{k:04d}.png") for i in range(3) for k in range(4)]
    assert all(meta == PROMPTS[i] for i, meta, _ in found)


def test_official_metadata_loads_and_validates():
    entries = load_metadata(official_metadata_path())
    assert len(entries) == 553
    for e in entries:
        validate_metadata(e)
    assert Counter(e["tag"] for e in entries) == {
        "single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}
    assert (official_metadata_path().parent / "LICENSE").read_text().find("Dhruba Ghosh") > 0


def test_official_metadata_round_trip(tmp_path):
    entries = load_metadata(official_metadata_path())
    for i, e in enumerate(entries):
        write_prompt_folder(tmp_path, i, e)
        sample_path(tmp_path, i, 0).write_bytes(b"")
    back = list(iter_samples(tmp_path))
    assert [i for i, _, _ in back] == list(range(553))
    assert [m for _, m, _ in back] == entries


@pytest.mark.parametrize("patch, field", [
    ({"tag": "shapes"}, "tag"),
    ({"include": []}, "include"),
    ({"include": [{"class": "dog"}]}, "count"),
    ({"include": [{"class": "dog", "count": 0}]}, "count"),
    ({"include": [{"class": 3, "count": 1}]}, "class"),
    ({"include": [{"class": "dog", "count": 1, "color": 5}]}, "color"),
    ({"include": [{"class": "dog", "count": 1, "position": ["above", 0]}]}, "position"),
    ({"include": [{"class": "a", "count": 1}, {"class": "b", "count": 1, "position": ["near", 0]}]}, "position"),
    ({"exclude": [{"class": "dog", "count": "3"}]}, "exclude"),
    ({"prompt": None}, "prompt"),
])
def test_validate_metadata_names_bad_field(patch, field):
    with pytest.raises(ValueError, match=field):
        validate_metadata({**PROMPTS[0], **patch})


class BrightRedDogDetector:
    """Sees one red dog (score 0.95) in bright images, nothing in dark ones."""

    def detect(self, image):
        if image.mean() > 128:
            return {"dog": [Detection((1, 1, 6, 6), 0.95, color="red")]}
        return {}


def test_score_folder_and_write_results(tmp_path):
    root = tmp_path / "images"
    write_images(root, [[255, 255, 0, 0], [255] * 4, [255] * 4])
    rows, summary = score_folder(root, BrightRedDogDetector())
    assert len(rows) == 12
    assert [r["correct"] for r in rows] == [True, True, False, False] + [True] * 4 + [False] * 4
    assert rows[2]["reason"] == "expected dog>=1, found 0"
    assert summary["tasks"]["single_object"] == {"score": 0.25, "correct": 2, "images": 8}
    assert summary["tasks"]["colors"] == {"score": 1.0, "correct": 4, "images": 4}
    assert summary["overall"] == pytest.approx(0.625)
    assert summary["image_accuracy"] == pytest.approx(0.5)
    assert summary["prompt_accuracy"] == pytest.approx(2 / 3)

    out = write_results(rows, summary, tmp_path / "out")
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12
    first = json.loads(lines[0])
    assert {"filename", "tag", "prompt", "correct", "reason", "metadata", "boxes"} <= set(first)
    assert first["boxes"] == {"dog": [{"box": [1.0, 1.0, 6.0, 6.0], "score": 0.95}]}
    assert json.loads((out / "summary.json").read_text()) == summary
