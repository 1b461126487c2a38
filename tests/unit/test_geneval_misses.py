"""The GenEval miss summary (sprint_bench.eval.geneval.misses): which class a failed image is short of and what the
detector found instead."""
import json

import pytest

from sprint_bench.eval.geneval.misses import main, shortfalls, summarize

BOX = {"box": [0, 0, 4, 4], "score": 1.0}


def _row(include, found, correct=False):
    return {"correct": correct, "metadata": {"include": [{"class": c, "count": n} for c, n in include]},
            "boxes": {c: [BOX] * n for c, n in found.items()}}


def test_shortfalls_name_the_missing_class_and_the_surplus():
    rounded_square = _row([("circle", 1), ("square", 1)], {"circle": 2})
    assert shortfalls(rounded_square) == [("square", "circle")]
    two_of_three = _row([("triangle", 3)], {"triangle": 2})
    assert shortfalls(two_of_three) == [("triangle", "nothing")]
    both_gone = _row([("circle", 1), ("square", 1)], {"triangle": 1})
    assert shortfalls(both_gone) == [("circle", "triangle"), ("square", "triangle")]
    wrong_colour = _row([("square", 1)], {"square": 1})  # failed on colour or position: nothing short
    assert shortfalls(wrong_colour) == []


def test_summary_counts_failed_images_only(tmp_path, capsys):
    rows = [_row([("circle", 1), ("square", 1)], {"circle": 2}),
            _row([("square", 1)], {"circle": 1}),
            _row([("triangle", 2)], {"triangle": 1}),
            _row([("square", 1)], {"circle": 1}, correct=True)]  # correct rows are not counted, whatever they hold
    got = summarize(rows)
    assert got == {"images": 4, "failed": 3, "short_of": {"square": 2, "triangle": 1},
                   "short_of_found_instead": {"square <- circle": 2, "triangle <- nothing": 1}}
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(path)]) == [{"results": str(path), **got}]
    assert json.loads(capsys.readouterr().out)[0]["failed"] == 3
    with pytest.raises(SystemExit, match="no GenEval results file"):
        main([str(tmp_path / "missing.jsonl")])
