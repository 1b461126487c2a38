"""Unit tests for the GenEval (Ghosh et al. 2023) scoring rules, with hand-made boxes."""

import numpy as np
import pytest

from sprint_bench.eval.geneval import (
    Detection,
    DetectionColorClassifier,
    ScoringOptions,
    compute_iou,
    evaluate_detections,
    postprocess,
    relative_position,
    score_image,
    summarize,
    summarize_images,
)


def det(x1, y1, x2, y2, score=0.95, color=None):
    return Detection((x1, y1, x2, y2), score, color=color)


def single(cls):
    return {"tag": "single_object", "include": [{"class": cls, "count": 1}], "prompt": f"a photo of a {cls}"}


def counting(cls, n):
    return {"tag": "counting", "include": [{"class": cls, "count": n}],
            "exclude": [{"class": cls, "count": n + 1}], "prompt": f"a photo of {n} {cls}s"}


POSITION = {"tag": "position", "prompt": "a photo of a dog right of a cup",
            "include": [{"class": "cup", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}]}


# --- thresholds, cap, NMS ---------------------------------------------------------------------------

def test_threshold_is_stricter_for_counting():
    dets = {"cat": [det(0, 0, 10, 10, 0.85)]}
    assert evaluate_detections(dets, single("cat")).correct
    res = evaluate_detections(dets, counting("cat", 1))
    assert not res.correct
    assert res.reason == "expected cat>=1, found 0"
    assert res.boxes == {}  # class with no survivor is dropped


def test_threshold_is_strict_greater_than():
    assert not evaluate_detections({"cat": [det(0, 0, 10, 10, 0.3)]}, single("cat")).correct
    assert evaluate_detections({"cat": [det(0, 0, 10, 10, 0.31)]}, single("cat")).correct


def test_postprocess_sorts_and_caps_per_class():
    dets = {"cat": [det(i, 0, i + 5, 5, s) for i, s in enumerate([0.4, 0.9, 0.6, 0.2])]}
    kept = postprocess(dets, "single_object", ScoringOptions(max_objects=2))
    assert [d.score for d in kept["cat"]] == [0.9, 0.6]
    assert [d.score for d in postprocess(dets, "single_object")["cat"]] == [0.9, 0.6, 0.4]


def test_max_objects_limits_counted_objects():
    dets = {"cat": [det(20 * i, 0, 20 * i + 10, 10, 0.5) for i in range(3)]}
    meta = {"tag": "two_object", "include": [{"class": "cat", "count": 3}], "prompt": "three cats"}
    assert evaluate_detections(dets, meta).correct
    res = evaluate_detections(dets, meta, options=ScoringOptions(max_objects=2))
    assert not res.correct and res.reason == "expected cat>=3, found 2"


def test_iou_uses_inclusive_pixel_sizes():
    assert compute_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    # (0,0,1,1) and (1,1,2,2) share pixel (1,1): inter 1, areas 2*2=4 each, union 7
    assert compute_iou((0, 0, 1, 1), (1, 1, 2, 2)) == pytest.approx(1 / 7)
    # (0,0,9,9) vs (1,0,10,9): inter 9*10=90, union 100+100-90=110
    assert compute_iou((0, 0, 9, 9), (1, 0, 10, 9)) == pytest.approx(90 / 110)


def test_nms_only_when_max_overlap_below_one():
    dets = {"cat": [det(0, 0, 9, 9, 0.9), det(1, 0, 10, 9, 0.8), det(50, 50, 59, 59, 0.7)]}
    assert len(postprocess(dets, "single_object")["cat"]) == 3
    kept = postprocess(dets, "single_object", ScoringOptions(max_overlap=0.5))["cat"]
    assert [d.score for d in kept] == [0.9, 0.7]  # IoU 0.818 >= 0.5 suppressed
    assert len(postprocess(dets, "single_object", ScoringOptions(max_overlap=0.9))["cat"]) == 3


# --- counting / exclude -------------------------------------------------------------------------------

def test_counting_requires_exactly_n():
    two = [det(0, 0, 10, 10, 0.95), det(30, 0, 40, 10, 0.93)]
    assert evaluate_detections({"clock": two}, counting("clock", 2)).correct
    res = evaluate_detections({"clock": two + [det(60, 0, 70, 10, 0.91)]}, counting("clock", 2))
    assert not res.correct and res.reason == "expected clock<3, found 3"
    # the extra one is below the 0.9 counting threshold, so it is not counted
    assert evaluate_detections({"clock": two + [det(60, 0, 70, 10, 0.5)]}, counting("clock", 2)).correct
    res = evaluate_detections({"clock": two[:1]}, counting("clock", 2))
    assert res.reason == "expected clock>=2, found 1"


def test_exclude_clauses_are_ored():
    meta = {"tag": "two_object", "include": [{"class": "cat", "count": 1}],
            "exclude": [{"class": "dog", "count": 1}, {"class": "cow", "count": 2}], "prompt": "p"}
    assert evaluate_detections({"cat": [det(0, 0, 5, 5)]}, meta).correct
    assert not evaluate_detections({"cat": [det(0, 0, 5, 5)], "dog": [det(9, 9, 19, 19)]}, meta).correct
    one_cow = {"cat": [det(0, 0, 5, 5)], "cow": [det(9, 9, 19, 19)]}
    assert evaluate_detections(one_cow, meta).correct


# --- colour -------------------------------------------------------------------------------------------

COLOR_ATTR = {"tag": "color_attr", "prompt": "a red car and a blue bench",
              "include": [{"class": "car", "count": 1, "color": "red"},
                          {"class": "bench", "count": 1, "color": "blue"}]}


def test_color_pass_and_fail():
    ok = {"car": [det(0, 0, 9, 9, color="red")], "bench": [det(20, 0, 29, 9, color="blue")]}
    assert evaluate_detections(ok, COLOR_ATTR).correct
    bad = {"car": [det(0, 0, 9, 9, color="red")], "bench": [det(20, 0, 29, 9, color="green")]}
    res = evaluate_detections(bad, COLOR_ATTR)
    assert not res.correct
    assert res.reason == "expected blue bench>=1, found 0 blue; and 1 green"


def test_color_only_checks_the_top_count_objects():
    meta = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a red car"}
    dets = {"car": [det(0, 0, 9, 9, 0.6, color="red"), det(20, 0, 29, 9, 0.9, color="white")]}
    assert not evaluate_detections(dets, meta).correct  # most confident car is white


def test_custom_color_fn_and_missing_color():
    meta = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a red car"}
    dets = {"car": [det(0, 0, 9, 9)]}
    assert evaluate_detections(dets, meta, color_fn=lambda d, cls: "red").correct
    with pytest.raises(ValueError, match="no colour"):
        evaluate_detections(dets, meta)
    with pytest.raises(ValueError, match="no colour"):
        DetectionColorClassifier().classify(None, dets["car"][0], "car", ["red"])


# --- position -----------------------------------------------------------------------------------------

def test_relative_position_margin():
    # Two 10x10 boxes offset horizontally by o: margin shrink = 0.1 * (10 + 10) = 2,
    # revised = max(o - 2, 0), dx = revised / o, "right of" needs dx > 0.5, i.e. o > 4.
    cup = (0, 0, 10, 10)
    assert relative_position((1.5, 0, 11.5, 10), cup) == set()  # o=1.5 < 2: inside the margin
    assert relative_position((1.5, 0, 11.5, 10), cup, margin=0.0) == {"right of"}
    assert relative_position((3.5, 0, 13.5, 10), cup) == set()  # dx = 1.5/3.5 = 0.43
    assert relative_position((4.5, 0, 14.5, 10), cup) == {"right of"}  # dx = 2.5/4.5 = 0.56
    assert relative_position((-4.5, 0, 5.5, 10), cup) == {"left of"}
    assert relative_position((0, -20, 10, -10), cup) == {"above"}  # y grows downward
    assert relative_position((0, 20, 10, 30), cup) == {"below"}
    # diagonal (10,10): revised (8,8), norm 14.14 -> 0.566 on both axes
    assert relative_position((10, 10, 20, 20), cup) == {"right of", "below"}
    # overlapping boxes with the same centre have no relation
    assert relative_position((2, 2, 8, 8), cup) == set()


def test_position_clause():
    cup = [det(0, 0, 10, 10)]
    assert evaluate_detections({"cup": cup, "dog": [det(4.5, 0, 14.5, 10)]}, POSITION).correct
    res = evaluate_detections({"cup": cup, "dog": [det(3.5, 0, 13.5, 10)]}, POSITION)
    assert not res.correct and res.reason == "expected dog right of target, found no relation to target"
    res = evaluate_detections({"cup": cup, "dog": [det(-20, 0, -10, 10)]}, POSITION)
    assert res.reason == "expected dog right of target, found left of target"


def test_position_every_pair_must_hold():
    meta = {"tag": "position", "prompt": "p",
            "include": [{"class": "cup", "count": 2}, {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    cups = [det(0, 0, 10, 10), det(100, 0, 110, 10)]
    assert not evaluate_detections({"cup": cups, "dog": [det(50, 0, 60, 10)]}, meta).correct
    assert evaluate_detections({"cup": cups, "dog": [det(150, 0, 160, 10)]}, meta).correct


def test_no_target_when_referenced_group_failed():
    res = evaluate_detections({"dog": [det(50, 0, 60, 10)]}, POSITION)
    assert not res.correct
    assert res.reason == "expected cup>=1, found 0"
    assert res.reasons[1] == "no target for dog to be right of"


# --- score_image with a detector ----------------------------------------------------------------------

class FixedDetector:
    def __init__(self, dets):
        self.dets = dets

    def detect(self, image):
        assert image.shape == (8, 8, 3)
        return self.dets


class ConstantColor:
    def __init__(self, color):
        self.color = color
        self.seen = []

    def classify(self, image, detection, class_name, candidates):
        self.seen.append((class_name, tuple(candidates)))
        return self.color


def test_score_image_uses_detector_and_classifier():
    image = np.zeros((8, 8, 3), np.uint8)
    meta = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a red car"}
    detector = FixedDetector({"car": [det(0, 0, 4, 4, 0.8)], "dog": [det(0, 0, 4, 4, 0.1)]})
    clf = ConstantColor("red")
    res = score_image(image, meta, detector, clf, colors=["red", "blue"])
    assert res.correct and res.reason == ""
    assert clf.seen == [("car", ("red", "blue"))]
    assert res.boxes == {"car": [{"box": [0.0, 0.0, 4.0, 4.0], "score": 0.8}]}
    assert not score_image(image, meta, detector, ConstantColor("blue")).correct


# --- summary ------------------------------------------------------------------------------------------

def test_summary_is_unweighted_mean_of_task_means():
    rows = [
        {"tag": "single_object", "index": 0, "correct": True},
        {"tag": "single_object", "index": 0, "correct": False},
        {"tag": "single_object", "index": 1, "correct": False},
        {"tag": "single_object", "index": 1, "correct": False},
        {"tag": "counting", "index": 2, "correct": True},
    ]
    s = summarize(rows)
    assert s["tasks"]["single_object"] == {"score": 0.25, "correct": 1, "images": 4}
    assert s["tasks"]["counting"] == {"score": 1.0, "correct": 1, "images": 1}
    assert s["overall"] == pytest.approx(0.625)  # (0.25 + 1.0) / 2, not 2/5
    assert s["image_accuracy"] == pytest.approx(0.4)
    assert s["prompt_accuracy"] == pytest.approx(2 / 3)  # prompts 0 and 2 have a correct image
    assert s["n_images"] == 5 and s["n_prompts"] == 3
    with pytest.raises(ValueError):
        summarize([])


def test_summarize_images_scores_each_item_against_its_own_prompt():
    image = np.zeros((8, 8, 3), np.uint8)
    detector = FixedDetector({"car": [det(0, 0, 4, 4, 0.9)]})
    items = [(image, single("car"), 0), (image, single("dog"), 1), (image, counting("car", 2), 2),
             (image, single("car"), 0)]
    s = summarize_images(iter(items), detector)
    assert s["tasks"]["single_object"] == {"score": 2 / 3, "correct": 2, "images": 3}
    assert s["tasks"]["counting"] == {"score": 0.0, "correct": 0, "images": 1}
    assert s["n_prompts"] == 3 and s["prompt_accuracy"] == pytest.approx(1 / 3)
