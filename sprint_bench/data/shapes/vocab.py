"""Vocabulary of the shapes world: shapes, GenEval colours, task families and caption words (DESIGN.md §3)."""
from __future__ import annotations

SHAPES = ("circle", "square", "triangle")

# The ten GenEval colour names with the RGB value the renderer paints them in.
GENEVAL_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 50, 180),
    "pink": (245, 140, 190),
    "brown": (130, 80, 40),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
}

GENEVAL_COLOR_NAMES = tuple(GENEVAL_COLORS)

# GenEval task tags, in the official order.
FAMILIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
# Official GenEval task mix of the 553 prompts.
GENEVAL_TASK_MIX = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                    "color_attr": 100}

RELATIONS = ("left of", "right of", "above", "below")
INVERSE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


def plural(shape: str) -> str:
    return shape + "s"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
