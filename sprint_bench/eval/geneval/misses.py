"""Which objects a generator fails to draw: a GenEval results file (``results.jsonl``, one row per image, written by
the harness under ``<eval dir>/geneval/``) summarised by the class each failed image has too few of and what the
detector found beyond the prompt's objects instead (e.g. squares drawn with rounded corners come back as circles).
A diagnostic; numbers in docs/RESULTS.md (issue 4).

    python -m sprint_bench.eval.geneval.misses runs/eval/<run>-step<k>/scm1-t1.5708-0.0000-w3/geneval/results.jsonl
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping


def shortfalls(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(class, found instead) for each class the image has fewer of than its prompt asks for; "found instead" names
    the classes detected beyond the prompt's counts (comma-joined, sorted) or is "nothing"."""
    boxes = row.get("boxes") or {}
    found = Counter({cls: len(b) for cls, b in boxes.items()})
    wanted = Counter()
    for req in row["metadata"].get("include", []):
        wanted[req["class"]] = max(wanted[req["class"]], int(req["count"]))
    surplus = ",".join(sorted(cls for cls, n in found.items() if n > wanted[cls])) or "nothing"
    return [(cls, surplus) for cls, n in sorted(wanted.items()) if found[cls] < n]


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts over the failed images: images short of each class, and by what was found instead."""
    rows = list(rows)
    failed = [r for r in rows if not r["correct"]]
    short, instead = Counter(), Counter()
    for r in failed:
        for cls, other in shortfalls(r):
            short[cls] += 1
            instead[f"{cls} <- {other}"] += 1
    return {"images": len(rows), "failed": len(failed), "short_of": dict(short.most_common()),
            "short_of_found_instead": dict(instead.most_common())}


def main(argv=None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="GenEval results.jsonl file(s)")
    args = ap.parse_args(argv)
    out = []
    for path in args.results:
        if not path.is_file():
            raise SystemExit(f"no GenEval results file at {path}")
        with path.open() as f:
            out.append({"results": str(path), **summarize(json.loads(line) for line in f if line.strip())})
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
