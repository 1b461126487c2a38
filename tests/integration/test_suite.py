"""`make quick`'s entry point end to end: the chain runs into a temporary directory, the report has every table and
figure, every number in it equals the MLflow metric it came from, a second run skips every stage; the MLflow
server finds the suite's runs through its REST API; (slow) the HTML renders in headless Chromium."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sprint_bench.report import tables

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    from sprint_bench.suite import Suite, quick_spec

    spec = quick_spec(tmp_path_factory.mktemp("quick"))
    first = Suite(spec).run()
    return spec, first


def test_quick_report_has_tables_figures_and_mlflow_numbers(quick):
    from mlflow.tracking import MlflowClient

    spec, first = quick
    assert all(v["status"] == "ran" for v in first.values()), first
    md = (spec.reports / "report.md").read_text()
    assert "SMOKE RUN" in md and "SMOKE RUN" in (spec.reports / "report.html").read_text()
    for title in ("Table 2 (ours)", "Table 3 (ours)", "Quality vs latency", "paper's published numbers",
                  "Sample grids"):
        assert title in md
    for fig in [spec.reports / "pareto.png", *sorted((spec.reports / "grids").glob("*.png"))]:
        data = fig.read_bytes()
        assert data.startswith(PNG) and len(data) > 500, fig
    assert len(list((spec.reports / "grids").glob("*.png"))) == 2 + 3 * 2  # teacher 1, 2 + three students 1, 2
    assert "\\begin{tabular}" in (spec.reports / "table2.tex").read_text()

    # every Table 2 cell is the MLflow metric of the run report.json names for that row, in the column's format
    client = MlflowClient(spec.tracking_uri)
    state = json.loads((spec.reports / "report.json").read_text())
    section = md.split("## Table 2 (ours)")[1].split("\n## ")[0]
    body = [ln for ln in section.splitlines() if ln.startswith("| ")][1:]
    assert len(body) == len(state["rows"]) == 8
    for line, entry in zip(body, state["rows"]):
        run = client.get_run(entry["run_id"]).data
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert cells[1:3] == [run.params["steps"], run.params["nfe"]]
        for (_, key, fmt), got in zip(tables.TABLE2_COLUMNS[3:], cells[3:]):
            value = int(run.params["params"]) / 1e6 if key == "@params_m" else run.metrics.get(key)
            assert got == ("n/a" if value is None else fmt.format(value)), (entry, key, got, value)
        assert cells[3] != "n/a" and cells[9] != "n/a"  # latency and GenEval-Shapes were measured


def test_second_run_skips_every_stage(quick):
    from sprint_bench.suite import Suite

    spec, _ = quick
    before = (spec.reports / "report.json").read_text()
    second = Suite(spec).run()
    assert {v["last"] for v in second.values()} == {"skipped"}, second
    assert (spec.reports / "report.json").read_text() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_server_lists_the_suite_runs(quick):
    spec, _ = quick
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", spec.tracking_uri,
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        deadline, exp = time.time() + 120, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name={spec.experiment}") as r:
                    exp = json.load(r)["experiment"]
                break
            except OSError:
                assert proc.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        assert exp is not None, "mlflow server did not answer"
        req = urllib.request.Request(f"{base}/runs/search", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"experiment_ids": [exp["experiment_id"]],
                                                      "max_results": 1000}).encode())
        with urllib.request.urlopen(req) as r:
            runs = json.load(r)["runs"]
        kinds = [t["value"] for run in runs for t in run["data"].get("tags", []) if t["key"] == "sprint_bench.kind"]
        assert kinds.count("eval-child") == 8 and "report" in kinds
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.poll() is not None


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("chromium")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(quick, tmp_path):
    import numpy as np
    from PIL import Image

    spec, _ = quick
    exe = _chromium()
    html = (spec.reports / "report.html").resolve()
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(common + ["--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<table") >= 5 and re.search(r'<img src="data:image/png;base64,', dom)
    shot = tmp_path / "report.png"
    subprocess.run(common + [f"--screenshot={shot}", "--window-size=1400,2200", html.as_uri()], check=True,
                   capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.shape[0] >= 2000 and (img < 128).mean() > 0.01  # text, table rules and the plot are drawn
    # the Pareto plot (an embedded PNG with coloured lines) shows up as coloured pixels in the screenshot
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    saturated = (np.abs(rgb[..., 0] - rgb[..., 2]) > 60).mean()
    assert saturated > 0.0005


def test_the_report_shows_the_full_protocol_not_a_smoke_or_probe_evaluation(quick, tmp_path):
    """Later evaluations of the same student on fewer prompts or on other noise (seed) do not replace its row; a later
    evaluation under the same protocol does."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from sprint_bench.report.collect import collect
    from sprint_bench.tracking.eval_runs import KIND

    spec, _ = quick
    shutil.copy(spec.tracking_uri.removeprefix("sqlite:///"), tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    row = next(r for r in collect(spec.experiment, uri) if not r.is_teacher)
    exp_id = client.get_experiment_by_name(spec.experiment).experiment_id

    def later_evaluation(**changes) -> str:
        run_id = client.create_run(exp_id, tags={KIND: "eval-child"}).info.run_id
        params = {**row.params, **{k: str(v) for k, v in changes.items()}}
        client.log_batch(run_id, metrics=[Metric("fd_effnet_lite0", 1.0, 0, 0)],
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run_id, "FINISHED")
        return run_id

    def shown() -> str:
        return next(r.run_id for r in collect(spec.experiment, uri) if (r.model_id, r.steps) == (row.model_id,
                                                                                                  row.steps))

    later_evaluation(prompts=int(row.params["prompts"]) - 1)  # a smoke run on fewer prompts
    later_evaluation(seed=1_000_000)  # a probe on other noise
    assert shown() == row.run_id
    rerun = later_evaluation()  # the same protocol, evaluated again
    assert shown() == rerun


def test_a_rebuild_that_drops_rows_keeps_the_previous_report(quick, tmp_path, caplog):
    """A report whose rows the MLflow store no longer holds (a fresh checkout's store, say) is copied aside before
    the rebuild replaces it; a rebuild that drops nothing keeps no copy."""
    from sprint_bench.report.build import build_report

    spec, _ = quick
    out = tmp_path / "report"
    build_report(spec.experiment, spec.tracking_uri, out, "t", log_to_mlflow=False)
    state = json.loads((out / "report.json").read_text())
    state["fingerprint"] = "older"  # a report built from other results...
    state["rows"].append({"run_id": "gone", "model": "sprint-gone", "steps": 2})  # ...with a row this store lacks
    (out / "report.json").write_text(json.dumps(state))
    (out / "report.md").write_text("the previous report\n")
    _, rebuilt = build_report(spec.experiment, spec.tracking_uri, out, "t", log_to_mlflow=False)
    backup = tmp_path / "report.bak-older"
    assert rebuilt and (backup / "report.md").read_text() == "the previous report\n"
    assert "sprint-gone" in (backup / "report.json").read_text()
    assert "sprint-gone" not in (out / "report.json").read_text() and "sprint-gone (2 steps)" in caplog.text
    _, rebuilt = build_report(spec.experiment, spec.tracking_uri, out, "t", log_to_mlflow=False, force=True)
    assert rebuilt and sorted(p.name for p in tmp_path.iterdir()) == ["report", "report.bak-older"]


def test_a_caveat_tag_marks_the_students_rows_and_is_listed(quick, tmp_path):
    """A known flaw of a student's numbers (MLflow tag `caveat` on its training run) travels with them: a dagger
    on its rows in every table, the text under the tables, and a changed fingerprint (the report is rebuilt)."""
    from mlflow.tracking import MlflowClient

    from sprint_bench.report.build import build_report
    from sprint_bench.report.collect import CAVEAT

    spec, _ = quick
    client = MlflowClient(spec.tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment)
    run = next(r for r in client.search_runs([exp.experiment_id], "tags.kind = 'student'")
               if r.data.tags["config_file"].endswith("hybrid.yaml"))
    out = tmp_path / "report"
    build_report(spec.experiment, spec.tracking_uri, out, "t", log_to_mlflow=False)
    before = json.loads((out / "report.json").read_text())["fingerprint"]
    client.set_tag(run.info.run_id, CAVEAT, "trained on noise the evaluation also uses")
    md, rebuilt = build_report(spec.experiment, spec.tracking_uri, out, "t", log_to_mlflow=False)
    assert rebuilt and json.loads((out / "report.json").read_text())["fingerprint"] != before
    text = md.read_text()
    tagged = [ln for ln in text.splitlines() if ln.startswith("| ") and "†" in ln]
    assert tagged and all("hybrid" in ln for ln in tagged)
    assert len([ln for ln in text.split("## Table 2 (ours)")[1].split("\n## ")[0].splitlines() if "†" in ln]) == 2
    assert "- † sprint-hybrid: trained on noise the evaluation also uses" in text
    assert "† sprint-hybrid: trained on noise" in (out / "report.html").read_text()
