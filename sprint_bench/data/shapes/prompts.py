"""Captions of the shapes world as GenEval metadata: the six task families, held-out combinations, the training
caption sampler and the 553-prompt GenEval-Shapes set (official GenEval metadata format)."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from sprint_bench.data.shapes.vocab import (FAMILIES, GENEVAL_TASK_MIX, INVERSE_RELATION, NUMBER_WORDS, RELATIONS,
                                            article, plural)

HOLDOUT_SEED = 20250312  # fixed: which combinations are held out is a property of the world, not of a run
PROMPTS_FILE = Path(__file__).resolve().parents[1] / "assets" / "geneval_shapes.jsonl"


def _entry(tag: str, include: list[dict], prompt: str, exclude: list[dict] | None = None) -> dict:
    entry = {"tag": tag, "include": include}
    if exclude:
        entry["exclude"] = exclude
    entry["prompt"] = prompt
    return entry


def single_object(a: str) -> dict:
    return _entry("single_object", [{"class": a, "count": 1}], f"a photo of {article(a)} {a}")


def two_object(a: str, b: str) -> dict:
    return _entry("two_object", [{"class": a, "count": 1}, {"class": b, "count": 1}],
                  f"a photo of {article(a)} {a} and {article(b)} {b}")


def counting(a: str, n: int) -> dict:
    return _entry("counting", [{"class": a, "count": n}], f"a photo of {NUMBER_WORDS[n]} {plural(a)}",
                  exclude=[{"class": a, "count": n + 1}])


def colors(a: str, c: str) -> dict:
    return _entry("colors", [{"class": a, "count": 1, "color": c}], f"a photo of {article(c)} {c} {a}")


def position(a: str, rel: str, b: str) -> dict:
    """"a photo of a {A} {rel} a {B}": B is group 0, A stands in ``rel`` to it (official GenEval layout)."""
    return _entry("position", [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
                  f"a photo of {article(a)} {a} {rel} {article(b)} {b}")


def color_attr(ca: str, a: str, cb: str, b: str) -> dict:
    return _entry("color_attr", [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
                  f"a photo of {article(ca)} {ca} {a} and {article(cb)} {cb} {b}")


def _held_out(items: list, fraction: float, salt: int) -> set:
    if fraction <= 0 or not items:
        return set()
    rng = np.random.default_rng(HOLDOUT_SEED + salt)
    k = max(1, int(round(fraction * len(items))))
    return {items[i] for i in rng.permutation(len(items))[:k]}


def held_out_color_pairs(world) -> set[frozenset]:
    """Unordered {(colour, shape), (colour, shape)} pairs never captioned together in training (both orders)."""
    pairs = [frozenset([p, q]) for p, q in itertools.combinations(
        sorted(itertools.product(world.colors, world.shapes)), 2) if p[0] != q[0] and p[1] != q[1]]
    return _held_out(pairs, world.holdout_color_attr_fraction, 1)


def held_out_positions(world) -> set[tuple[str, str, str]]:
    """(A, relation, B) triples never captioned in training; their mirror (B, inverse, A) stays in training."""
    triples = sorted((a, rel, b) for a, b in itertools.permutations(world.shapes, 2) for rel in RELATIONS)
    chosen: set = set()
    for t in sorted(_held_out(triples, world.holdout_position_fraction, 2)):
        if (t[2], INVERSE_RELATION[t[1]], t[0]) not in chosen:
            chosen.add(t)
    return chosen


def all_prompts(world, family: str, split: str) -> list[dict]:
    """Every distinct prompt of a family; ``split`` is "train" (held-out removed) or "eval" (GenEval-Shapes pool:
    held-out combinations only where the family has a hold-out, all prompts otherwise)."""
    s, cs = world.shapes, world.colors
    if family == "single_object":
        return [single_object(a) for a in s]
    if family == "two_object":
        return [two_object(a, b) for a, b in itertools.permutations(s, 2)]
    if family == "counting":
        return [counting(a, n) for a in s for n in range(2, world.max_count + 1)]
    if family == "colors":
        return [colors(a, c) for a in s for c in cs]
    if family == "position":
        held = held_out_positions(world)
        triples = [(a, rel, b) for a, b in itertools.permutations(s, 2) for rel in RELATIONS]
        keep = [t for t in triples if (t in held) == (split == "eval")] if held else triples
        return [position(*t) for t in keep]
    if family == "color_attr":
        held = held_out_color_pairs(world)
        quads = [(ca, a, cb, b) for (ca, a), (cb, b) in itertools.permutations(itertools.product(cs, s), 2)
                 if ca != cb and a != b]
        if held:
            quads = [q for q in quads if (frozenset([q[:2], q[2:]]) in held) == (split == "eval")]
        return [color_attr(*q) for q in quads]
    raise ValueError(f"unknown task family {family!r}; expected one of {FAMILIES}")


def training_caption_pool(world) -> dict[str, list[dict]]:
    """Family -> distinct training metadata entries (held-out combinations excluded)."""
    return {f: all_prompts(world, f, "train") for f in FAMILIES if world.family_weights.get(f, 0) > 0}


def geneval_shapes_prompts(world) -> list[dict]:
    """The GenEval-Shapes set: the official task mix (80/99/80/94/100/100 = 553) in GenEval metadata format,
    cycling through each family's shuffled eval pool (prompts repeat where the world has fewer)."""
    out: list[dict] = []
    for i, family in enumerate(FAMILIES):
        pool = all_prompts(world, family, "eval")
        if not pool:
            raise ValueError(f"the world has no {family} prompts (shapes={world.shapes}, colors={world.colors})")
        order = np.random.default_rng(HOLDOUT_SEED + 100 + i).permutation(len(pool))
        out += [pool[order[k % len(pool)]] for k in range(GENEVAL_TASK_MIX[family])]
    return out


def write_prompts(entries: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def load_prompts(path: Path = PROMPTS_FILE) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
