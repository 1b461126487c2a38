"""Experiment YAMLs in training order: a stage whose ``distill.student_init`` names another of the given YAMLs comes
after it (alphabetical order otherwise), so a loop over them (`make ablation-axes`) never starts a second stage
before its first. ``python -m sprint_bench.config.order FILE...`` prints the order."""
from __future__ import annotations

import os
import sys

from sprint_bench.config.load import load_config, run_name


def training_order(paths: list[str]) -> list[str]:
    cfgs = {p: load_config(p) for p in sorted(paths)}
    export_of = {os.path.normpath(os.path.join(c.output_dir, run_name(c), "export")): p for p, c in cfgs.items()}
    needs = {p: export_of.get(os.path.normpath(c.distill.student_init or "")) for p, c in cfgs.items()}
    order: list[str] = []

    def visit(p: str) -> None:  # no cycles: load_config refuses them
        if p not in order:
            if needs[p] is not None:
                visit(needs[p])
            order.append(p)

    for p in cfgs:
        visit(p)
    return order


if __name__ == "__main__":
    print(" ".join(training_order(sys.argv[1:])))
