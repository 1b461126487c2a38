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
