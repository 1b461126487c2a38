"""Greedy timestep-schedule search (SANA-Sprint App. F.2): pick t_max for 1 step, then t_2 for 2 steps with t_max
fixed, then each further t_i below the previous one, every stage keeping the earlier choices."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from sprint_bench.samplers.scm import Schedule, validate_schedule

# the SANA-Sprint demo's t_max choices (method reference §9)
DEMO_T_MAX = (1.57080, 1.56830, 1.56580, 1.56454, 1.56246, 1.55830, 1.55413, 1.55080, 1.54580)
MID_GRID = (1.0, 1.1, 1.2, 1.3, 1.4)  # t_2 in [1.0, 1.4] (App. F.2)
LATER_GRID = tuple(round(0.1 * k, 1) for k in range(1, 14))  # 0.1 ... 1.3; only values below t_{i-1} are tried


def greedy_schedule_search(score: Callable[[Schedule], float], steps: int,
                           candidates_first: Sequence[float] | None = None,
                           candidates_mid: Sequence[float] | None = None,
                           higher_is_better: bool = True,
                           candidates_later: Sequence[float] | None = None,
                           ) -> tuple[dict[int, Schedule], list[dict]]:
    """Greedy search of the 1 ... ``steps``-step schedules.

    Stage 1 scores (c, 0) for c in ``candidates_first`` (default: the demo's t_max list); stage 2 scores
    (t_max, c, 0) for c in ``candidates_mid`` (default 1.0 ... 1.4); stage k >= 3 scores (..., t_{k-1}, c, 0) for c
    in ``candidates_later`` (default 0.1 ... 1.3) below t_{k-1}. ``score(schedule) -> float`` (e.g. GenEval or -FD on
    a prompt subset) is called once per distinct schedule; non-finite scores are logged, never chosen; ties keep the
    first candidate. Returns ({k: chosen k-step schedule}, table of every scored schedule as dicts with keys
    stage, schedule, score, chosen)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grids = {1: DEMO_T_MAX if candidates_first is None else candidates_first,
             2: MID_GRID if candidates_mid is None else candidates_mid}
    later = LATER_GRID if candidates_later is None else candidates_later
    sign = 1.0 if higher_is_better else -1.0
    chosen: dict[int, Schedule] = {}
    table: list[dict] = []
    prefix: tuple[float, ...] = ()
    for stage in range(1, steps + 1):
        grid = grids.get(stage, later)
        cands = [float(c) for c in grid if not prefix or float(c) < prefix[-1]]
        if not cands:
            raise ValueError(f"stage {stage}: no candidate timestep below {prefix[-1]} in {tuple(grid)}")
        rows = []
        for c in dict.fromkeys(cands):  # distinct, in order
            schedule = validate_schedule(prefix + (c, 0.0), stage)
            value = float(score(schedule))
            rows.append({"stage": stage, "schedule": schedule, "score": value, "chosen": False})
        finite = [r for r in rows if math.isfinite(r["score"])]
        if not finite:
            raise ValueError(f"stage {stage}: every score is non-finite: {[r['score'] for r in rows]}")
        best = max(finite, key=lambda r: sign * r["score"])  # max keeps the first of equal scores
        best["chosen"] = True
        table += rows
        chosen[stage] = best["schedule"]
        prefix = best["schedule"][:-1]
    return chosen, table
