"""The report's fingerprint (what decides whether `sprint-bench report` rebuilds: results and report code) and its
list of what each metric measured."""
import shutil

from sprint_bench.report import build
from sprint_bench.report.collect import Row


def test_fingerprint_changes_with_the_report_code(tmp_path, monkeypatch):
    for f in build.REPORT_CODE.glob("*.py"):
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(build, "REPORT_CODE", tmp_path)
    before = build.fingerprint([])
    assert build.fingerprint([]) == before  # the same code and results: no rebuild
    with open(tmp_path / "tables.py", "a") as f:
        f.write("\n# a changed table layout\n")
    assert build.fingerprint([]) != before


def test_fingerprint_changes_with_the_builds_settings():
    """A rebuild with --smoke or another suite title is not skipped as 'unchanged'."""
    base = build.fingerprint([], "sprint_bench", "paper", False)
    assert build.fingerprint([], "sprint_bench", "paper", False) == base
    for other in (("sprint_bench", "paper", True), ("sprint_bench", "other", False), ("probes", "paper", False)):
        assert build.fingerprint([], *other) != base, other


def _row(run_id: str, device: str | None, threads: str = "2") -> Row:
    params = {"fd_effnet_lite0.metric": "FD (EfficientNet-Lite0)", "fd_effnet_lite0.num_images": "2212"}
    if device is not None:
        params.update({"latency.metric": "latency (batch 1)", "latency.num_images": "20", "latency.dtype": "float32",
                       "latency.device_name": device, "latency.threads": threads})
    return Row(run_id, "sprint-hybrid", "m", "sCM + LADD", 1, 1, params, {})


def test_latency_line_names_the_device_and_counts_rows_of_each():
    one = build.protocol_lines([_row("a", "AMD EPYC"), _row("b", "AMD EPYC"), _row("c", None)])
    assert "- **latency (batch 1)** — num_images: 20; dtype: float32; device: AMD EPYC, 2 threads" in one
    assert not any("device" in line for line in one if "FD" in line)
    mixed = build.protocol_lines([_row("a", "AMD EPYC"), _row("b", "Intel Xeon"), _row("c", "AMD EPYC"),
                                  _row("d", "AMD EPYC", "1")])
    line = next(line for line in mixed if "latency" in line)
    assert line.endswith("devices: AMD EPYC, 1 thread (1 row); AMD EPYC, 2 threads (2 rows); "
                         "Intel Xeon, 2 threads (1 row) (not comparable across devices)")


def test_each_distinct_protocol_gets_its_own_line_with_its_rows():
    smoke = _row("s", None)
    smoke.params["fd_effnet_lite0.num_images"] = "96"  # a smoke evaluation beside two full ones
    lines = [ln for ln in build.protocol_lines([_row("a", None), smoke, _row("b", None)]) if "FD" in ln]
    assert lines == ["- **FD (EfficientNet-Lite0)** — num_images: 2212; 2 rows: sCM + LADD (sprint-hybrid) 1 step, "
                     "sCM + LADD (sprint-hybrid) 1 step",
                     "- **FD (EfficientNet-Lite0)** — num_images: 96; 1 row: sCM + LADD (sprint-hybrid) 1 step"]
    assert [ln for ln in build.protocol_lines([_row("a", None), _row("b", None)]) if "FD" in ln] == \
        ["- **FD (EfficientNet-Lite0)** — num_images: 2212"]  # one protocol: no row list


def test_pareto_plot_gives_each_device_its_own_row_of_panels(tmp_path):
    """Latencies from two devices are never drawn on one axis (metrics protocol §6.5: a device facet)."""
    from PIL import Image

    def row(run_id, device, steps, latency):
        r = _row(run_id, device)
        r.steps, r.metrics = steps, {"latency_e2e_ms_median": latency, "geneval_overall": 0.4, "fd_effnet_lite0": 90.0}
        return r

    one = build.pareto_figure([row("a", "AMD EPYC", 1, 14.0), row("b", "AMD EPYC", 4, 30.0)], tmp_path / "one.png")
    two = build.pareto_figure([row("a", "AMD EPYC", 1, 14.0), row("b", "Intel Xeon", 1, 20.0)], tmp_path / "two.png")
    none = build.pareto_figure([_row("c", None)], tmp_path / "none.png")
    (w1, h1), (w2, h2) = Image.open(one).size, Image.open(two).size
    assert w1 == w2 and h2 == 2 * h1 and Image.open(none).size == (w1, h1)


def test_the_newest_training_run_of_a_config_gives_the_caveat(tmp_path):
    import time

    from mlflow.tracking import MlflowClient

    from sprint_bench.report.collect import CAVEAT, collect
    from sprint_bench.tracking.eval_runs import KIND

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("e")
    for caveat in ("older run", "newer run"):  # two trainings of one config (the first one failed, say)
        client.create_run(exp, tags={"kind": "student", "config_hash": "abc", CAVEAT: caveat})
        time.sleep(0.01)
    child = client.create_run(exp, tags={KIND: "eval-child"})
    for k, v in {"model": "sprint-hybrid", "model_id": "sprint-hybrid-abc-step2", "steps": 1, "nfe": 1,
                 "config_hash": "abc", "sampler": "scm1"}.items():
        client.log_param(child.info.run_id, k, v)
    client.set_terminated(child.info.run_id, "FINISHED")
    (row,) = collect("e", uri)
    assert row.caveat == "newer run"


def test_rows_sharing_a_name_and_steps_are_told_apart():
    from sprint_bench.report.collect import mark_variants
    from sprint_bench.report.tables import label

    def row(run_id, model_id, cfg, method="sCM + LADD", model="sprint-hybrid"):
        return Row(run_id, model, model_id, method, 1, 1, {"model_id": model_id, "cfg_scale": cfg,
                                                            "method": method}, {})

    students = [row("a", "s-step2", "3.0"), row("b", "s-step2", "4.5"), row("c", "other", "3.0", model="x")]
    teachers = [row(i, mid, "3.0", "flow matching", "teacher") for i, mid in (("d", "t-step1"), ("e", "t-step2"))]
    mark_variants(students + teachers)
    assert [label(r) for r in students] == ["sCM + LADD (sprint-hybrid) [w 3.0]", "sCM + LADD (sprint-hybrid) [w 4.5]",
                                            "sCM + LADD (x)"]
    assert [label(r) for r in teachers] == ["Flow teacher (Euler, CFG 3) [t-step1]",
                                            "Flow teacher (Euler, CFG 3) [t-step2]"]


def test_a_report_never_creates_an_empty_store(tmp_path):
    import pytest

    from sprint_bench.report.collect import collect

    with pytest.raises(ValueError, match="no MLflow store at"):
        collect("sprint_bench", f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()
