"""Greedy schedule search (SANA-Sprint App. F.2) on synthetic scores with known optima."""
import math

import pytest

from sprint_bench.samplers.scm import PAPER_SCHEDULES
from sprint_bench.samplers.search import DEMO_T_MAX, MID_GRID, greedy_schedule_search

TARGET = (1.5683, 1.3, 1.1, 0.6)


def distance(schedule):
    """L1 distance of the schedule's nonzero timesteps to the first len - 1 target timesteps."""
    return sum(abs(a - b) for a, b in zip(schedule[:-1], TARGET))


def test_finds_the_paper_schedules_of_a_known_optimum():
    calls = []

    def score(s):
        calls.append(s)
        return -distance(s)

    chosen, table = greedy_schedule_search(score, 4)
    assert chosen[1] == (1.5683, 0.0)
    assert chosen[2] == PAPER_SCHEDULES[2] and chosen[4] == PAPER_SCHEDULES[4]
    assert chosen[3] == (1.5683, 1.3, 1.1, 0.0)
    # stage sizes: 9 t_max, 5 mid, 1.3 -> 12 values 0.1..1.2, then 10 values 0.1..1.0
    assert [sum(r["stage"] == k for r in table) for k in (1, 2, 3, 4)] == [9, 5, 12, 10]
    assert len(calls) == len(table) == len(set(calls))
    assert [r["schedule"] for r in table if r["chosen"]] == [chosen[k] for k in (1, 2, 3, 4)]
    assert {r["schedule"][0] for r in table if r["stage"] == 1} == set(DEMO_T_MAX)
    assert {r["schedule"][1] for r in table if r["stage"] == 2} == set(MID_GRID)


def test_lower_is_better_and_custom_grids():
    chosen, table = greedy_schedule_search(distance, 2, candidates_first=[1.5708, 1.55], candidates_mid=[1.0, 1.3],
                                           higher_is_better=False)
    assert chosen == {1: (1.5708, 0.0), 2: (1.5708, 1.3, 0.0)}
    assert len(table) == 4


def test_greedy_keeps_earlier_choices():
    """The 2-step score prefers t_max = 1.5708, but stage 1 picked 1.5683: greedy keeps it."""
    def score(s):
        if len(s) == 2:
            return -abs(s[0] - 1.5683)
        return -abs(s[0] - 1.5708) - abs(s[1] - 1.0)

    chosen, table = greedy_schedule_search(score, 2)
    assert chosen[2] == (1.5683, 1.0, 0.0)
    assert all(r["schedule"][0] == 1.5683 for r in table if r["stage"] == 2)


def test_non_finite_scores_are_logged_not_chosen_and_errors():
    def score(s):
        return math.nan if s[0] == 1.5708 else -abs(s[0] - 1.5708)

    chosen, table = greedy_schedule_search(score, 1)
    assert chosen[1] == (1.5683, 0.0) and math.isnan(table[0]["score"])
    with pytest.raises(ValueError, match="non-finite"):
        greedy_schedule_search(lambda s: math.inf, 1)
    with pytest.raises(ValueError, match="no candidate timestep below"):
        greedy_schedule_search(distance, 3, candidates_mid=[1.0], candidates_later=[1.2])
    with pytest.raises(ValueError, match="exceeds T_MAX"):
        greedy_schedule_search(distance, 1, candidates_first=[1.6])


def test_search_noise_is_disjoint_from_evaluation_and_bank_noise():
    """The schedule search draws its noise (the harness's image-seed rule from SEARCH_SEED_BASE) away from the seeds
    the harness evaluates on (seed 0 and the unseen-noise seed 10**6, 553 prompts x 4 images) and from the ODE-pair
    banks' (from 2**31)."""
    from sprint_bench.eval.geneval.generate import image_seed
    from sprint_bench.eval.schedule_search import SEARCH_SEED_BASE
    from sprint_bench.samplers.ode_pairs import PAIR_SEED_BASE

    flat = [image_seed(SEARCH_SEED_BASE, i, 4, k) for i in range(553) for k in range(4)]
    assert len(flat) == len(set(flat)) == 553 * 4 and image_seed(SEARCH_SEED_BASE, 2, 4, 3) == flat[0] + 11
    evaluated = {image_seed(base, i, 4, k) for base in (0, 10**6) for i in range(553) for k in range(4)}
    assert not evaluated & set(flat)
    assert max(flat) < PAIR_SEED_BASE
