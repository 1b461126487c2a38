"""The training-cost benchmark times its two kinds of step in turns, after warming each up."""
import time

from sprint_bench.lit.bench_distill import interleaved


def test_steps_are_warmed_up_then_timed_in_turns():
    calls = []
    res = interleaved({"teacher": lambda: calls.append("T"), "scm": lambda: calls.append("S")}, n=3, warmup=2)
    assert calls == ["T", "T", "S", "S"] + ["T", "S"] * 3
    assert set(res) == {"teacher", "scm"} and all(len(v) == 3 for v in res.values())
    assert all(ms >= 0 for v in res.values() for ms in v)


def test_a_drift_reaches_both_kinds_alike():
    """A host that slows down halfway: timed in turns, each kind sees the slow half for the same share of its calls."""
    clock = {"calls": 0}

    def step():
        clock["calls"] += 1
        time.sleep(0.001 if clock["calls"] <= 12 else 0.05)

    res = interleaved({"a": step, "b": step}, n=10, warmup=1)
    slow = {k: sum(ms > 25 for ms in v) for k, v in res.items()}
    assert slow["a"] == slow["b"] == 5
