"""`sprint-bench report`: the paper-style report of a suite, built only from MLflow (search_runs + artifacts):
reports/<suite>/report.md, a self-contained report.html, table2.tex, table3.tex, pareto.png and the sample grids;
the Pareto plot and the report are also logged to MLflow as a run of kind "report".

ControlNet (edge-map conditioned) rows are kept out of Tables 2/3 and the Pareto plot (they see the layout, so their
FD / GenEval are not comparable with text-only generation) and reported in their own table (table4.tex) beside the
unconditioned baselines scored against the same conditions; without rows that have an edge-F1 metric the report is
what it was before."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path

from mlflow.tracking import MlflowClient

from sprint_bench.report import paper, tables
from sprint_bench.report.collect import Row, collect
from sprint_bench.tracking.eval_runs import KIND

log = logging.getLogger(__name__)

CONTROL_NOTE = ("Edge F1 compares the edges of each generated image with the thickness-1 edges of its condition "
                "(a render of the same prompt from the image's seed; see the edge F1 protocol above). Rows marked "
                "\"no (baseline)\" never saw the condition: their score is what text alone reaches. ControlNet rows "
                "(\"yes\") are reported here only, not in Tables 2 and 3 or the Pareto plot.")
SMOKE_BANNER = ("SMOKE RUN (micro preset, `make quick`): tiny models trained for a few steps and a handful of "
                "prompts. It checks the pipeline end to end; its numbers mean nothing.")


REPORT_CODE = Path(__file__).parent  # the report package: a change to its code rebuilds every report


def _code_hash() -> str:
    h = hashlib.sha256()
    for f in sorted(REPORT_CODE.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(rows: list[Row], *settings) -> str:
    """What a report is built from: the results (run ids, metrics, caveats), the report code itself and the
    build's ``settings`` (experiment, suite, smoke)."""
    blob = json.dumps([_code_hash(), sorted((r.run_id, sorted(r.metrics.items()), r.caveat) for r in rows),
                       list(settings)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _keep_if_rows_dropped(out: Path, old: dict, rows: list[Row]) -> None:
    """A rebuild that would drop rows (model x steps) of the existing report -- another or a fresh MLflow store, a
    deleted run -- first copies that report to ``<out>.bak-<its fingerprint>`` and says so."""
    dropped = sorted({(r["model"], r["steps"]) for r in old.get("rows", [])} - {(r.model, r.steps) for r in rows})
    if not dropped:
        return
    backup = out.with_name(f"{out.name}.bak-{old.get('fingerprint', 'unknown')}")
    if not backup.exists():
        shutil.copytree(out, backup)
    shown = ", ".join(f"{m} ({plural(s, 'step')})" for m, s in dropped[:6])
    more = f" and {len(dropped) - 6} more" if len(dropped) > 6 else ""
    log.warning("the MLflow results no longer hold %d row(s) of %s: %s%s; the previous report is kept in %s",
                len(dropped), out, shown, more, backup)


TIMED = ("latency", "throughput")


def plural(n, word: str) -> str:
    return f"{n} {word}" + ("" if str(n) == "1" else "s")


def timing_device(r: Row, base: str) -> str | None:
    """'<device>, <n> threads' of a row's ``base`` timing (latency, throughput); None when the row has none."""
    if f"{base}.metric" not in r.params:
        return None
    return f"{r.params.get(f'{base}.device_name', 'device not recorded')}, " \
           f"{plural(r.params.get(f'{base}.threads', '?'), 'thread')}"


def timing_devices(rows: list[Row], base: str) -> str:
    """Where the rows' ``base`` timings were taken: device and torch threads, with the number of rows of each when
    they differ (timings from different devices are not comparable)."""
    where = Counter(d for r in rows if (d := timing_device(r, base)) is not None)
    if len(where) == 1:
        return f"device: {next(iter(where))}"
    return ("devices: " + "; ".join(f"{d} ({plural(n, 'row')})" for d, n in sorted(where.items())) +
            " (not comparable across devices)")


def pareto_figure(rows: list[Row], path: Path) -> Path:
    """Quality vs batch-1 latency (log x): GenEval-Shapes and FD, one marker per method x steps, teacher curve; one
    row of panels per device the latencies were measured on (timings are compared on one device only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facets: dict[str, list[Row]] = {}
    for r in rows:
        if (d := timing_device(r, "latency")) is not None:
            facets.setdefault(d, []).append(r)
    facets = facets or {"": []}  # no latency measured: the empty panels of one facet
    fig, axes = plt.subplots(len(facets), 2, figsize=(11, 4.2 * len(facets)), squeeze=False)
    first: dict[str, Row] = {}
    for r in rows:
        first.setdefault(tables.label(r), r)
    labels = sorted(first, key=lambda n: not first[n].is_teacher)  # the teacher curve first, in every facet
    style = {n: ("osD^v<>pPX*h"[i % 12], f"C{i % 10}") for i, n in enumerate(labels)}  # alike in every facet
    for (device, facet_rows), row_axes in zip(sorted(facets.items()), axes):
        groups: dict[str, list[Row]] = {}
        for r in facet_rows:
            groups.setdefault(tables.label(r), []).append(r)
        for name in (n for n in labels if n in groups):
            rs = sorted(groups[name], key=lambda r: r.steps)
            for ax, key in zip(row_axes, ("geneval_overall", "fd_effnet_lite0")):
                pts = [(r.metric("latency_e2e_ms_median"), r.metric(key), r.steps) for r in rs]
                pts = [p for p in pts if p[0] is not None and p[1] is not None]
                if not pts:
                    continue
                xs, ys, ss = zip(*pts)
                ax.plot(xs, ys, marker=style[name][0], color=style[name][1],
                        linestyle="-" if rs[0].is_teacher else ":", label=name)
                for x, y, s in pts:
                    ax.annotate(str(s), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        for ax, title in zip(row_axes, ("GenEval-Shapes (higher is better)",
                                        "FD, EfficientNet-Lite0 (lower is better)")):
            ax.set_xscale("log")
            ax.set_xlabel("batch-1 latency, end to end (ms, log scale)")
            ax.set_title(title if len(facets) == 1 else f"{title}\n{device}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        if row_axes[0].get_legend_handles_labels()[0]:
            row_axes[0].legend(fontsize=7, loc="best")
    if len(facets) > 1:
        where = ", one row per device"
    else:
        where = f" on {device}" if (device := next(iter(facets))) else ""
    fig.suptitle(f"Quality vs latency{where}; numbers next to markers are sampling steps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def download_grids(client: MlflowClient, rows: list[Row], out: Path) -> dict[str, Path]:
    """The harness's samples/grid.png of each row (same prompts and seeds in every row)."""
    grids = {}
    out.mkdir(parents=True, exist_ok=True)
    for r in rows:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{r.model}-{r.steps}steps-{r.variant}".rstrip("-")) + ".png"
        try:
            local = client.download_artifacts(r.run_id, "samples/grid.png", str(out / ".dl"))
        except Exception:  # noqa: BLE001 - a row without a grid is reported as such
            continue
        shutil.move(local, out / name)
        grids[f"{r.model}|{r.steps}|{r.variant}"] = out / name
    shutil.rmtree(out / ".dl", ignore_errors=True)
    return grids


def protocol_lines(rows: list[Row]) -> list[str]:
    """What each metric measured, from the protocol params logged with it, one line per distinct protocol (with the
    rows it holds for when the rows differ: a smoke run's image count, another dtype); for timings also the
    device(s)."""
    metrics: dict[str, str] = {}  # display name -> params key, in order of appearance
    for r in rows:
        for k, v in sorted(r.params.items()):
            if k.endswith(".metric"):
                metrics.setdefault(v, k[: -len(".metric")])
    lines = []
    for name, base in metrics.items():
        fields = ("num_images", "dtype") if base in TIMED else \
            ("extractor", "num_images", "resolution", "dtype")  # timed pipelines differ per row
        groups: dict[tuple, list[Row]] = {}
        for r in rows:
            if r.params.get(f"{base}.metric") == name:
                groups.setdefault(tuple(r.params.get(f"{base}.{f}") for f in fields), []).append(r)
        for values, group in groups.items():
            parts = [f"{f}: {v}" for f, v in zip(fields, values) if v is not None]
            if base in TIMED:
                parts.append(timing_devices(group, base))
            if len(groups) > 1:
                shown = ", ".join(f"{tables.label(r)} {plural(r.steps, 'step')}" for r in group[:4])
                parts.append(f"{plural(len(group), 'row')}: {shown}" + (", …" if len(group) > 4 else ""))
            lines.append(f"- **{name}** — " + "; ".join(parts))
    return lines


def _img(path: Path, embed: bool, rel_to: Path) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return str(path.relative_to(rel_to))


def build_report(experiment: str, tracking_uri: str, out_dir: str | Path, suite: str, smoke: bool = False,
                 force: bool = False, log_to_mlflow: bool = True) -> tuple[Path, bool]:
    """Write the report; returns (report.md, whether it was rebuilt): skipped when the MLflow results are
    unchanged."""
    out = Path(out_dir)
    rows = collect(experiment, tracking_uri)
    if not rows:
        raise ValueError(f"no finished evaluation runs in MLflow experiment {experiment!r}")
    fp = fingerprint(rows, experiment, suite, smoke)
    state = out / "report.json"
    if not force and state.exists() and json.loads(state.read_text()).get("fingerprint") == fp and \
            (out / "report.html").exists():
        return out / "report.md", False
    if state.exists():
        _keep_if_rows_dropped(out, json.loads(state.read_text()), rows)
    out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri)
    main = [r for r in rows if not r.is_control]
    students = [r for r in main if not r.is_teacher]
    hybrid = next((r.training for r in students if r.model.endswith("hybrid") and r.training), {})
    t2 = tables.table(main, tables.TABLE2_COLUMNS)
    ctrl = tables.control_rows(rows)
    t4 = tables.table(ctrl, tables.CONTROL_COLUMNS) if ctrl else None
    t3_rows = [r for r in students if r.steps in (1, 2)]
    t3_rows.sort(key=lambda r: (r.steps, r.model))
    t3 = tables.table(t3_rows, tables.TABLE3_COLUMNS, hybrid)
    p2 = (["Method (paper)", "Steps", "Throughput (img/s)", "Latency (s)", "Params (B)", "FID (MJHQ-30K)",
           "CLIP (ViT-L/14)", "GenEval"], [[str(c) for c in row] for row in paper.TABLE2])
    p3 = (["Loss (paper, 2 steps)", "FID (MJHQ-30K)", "CLIP (ViT-L/14)"], [[str(c) for c in r] for r in paper.TABLE3])
    pa = (["Axis (paper)", "Setting", "FID (MJHQ-30K)", "CLIP (ViT-L/14)"], [[str(c) for c in r] for r in paper.AXES])
    pareto = pareto_figure(main, out / "pareto.png")
    grids = download_grids(client, rows, out / "grids")
    (out / "table2.tex").write_text(tables.latex(*t2, f"{suite}: quality and speed of every model and step count "
                                                       "(GenEval-Shapes world; see report.md for the protocol)"))
    (out / "table3.tex").write_text(tables.latex(*t3, f"{suite}: distillation ablations"))
    if t4 is not None:
        (out / "table4.tex").write_text(tables.latex(*t4, f"{suite}: ControlNet edge-map fidelity (edge F1, 1 px "
                                                           "tolerance) against unconditioned baselines"))
    else:
        (out / "table4.tex").unlink(missing_ok=True)

    def doc(embed: bool) -> list[tuple[str, object]]:
        parts: list[tuple[str, object]] = [("h1", f"sprint_bench report: {suite}")]
        if smoke:
            parts.append(("warn", SMOKE_BANNER))
        parts += [("p", f"Built from MLflow experiment `{experiment}` ({len(rows)} evaluation runs). Every number "
                        "below is an MLflow metric of the run named in report.json, rounded for display."),
                  ("h2", "What was measured"), ("list", protocol_lines(rows)),
                  ("h2", "Table 2 (ours): every model and step count"), ("table", t2),
                  ("h2", "Table 3 (ours): distillation ablations"), ("table", t3)]
        caveats = tables.caveat_lines(rows)
        if caveats:
            parts += [("p", "Caveats († above; MLflow tag `caveat` of the student's training run):"),
                      ("list", caveats)]
        if t4 is not None:
            parts += [("h2", "ControlNet (ours): edge-map condition fidelity"), ("p", CONTROL_NOTE), ("table", t4)]
        parts += [("h2", "Quality vs latency"), ("img", _img(pareto, embed, out)),
                  ("h2", "For reference: the paper's published numbers"), ("p", paper.SOURCE),
                  ("table", p2), ("table", p3), ("table", pa), ("h2", "Sample grids (same prompts and seeds)")]
        for r in rows:
            g = grids.get(f"{r.model}|{r.steps}|{r.variant}")
            if g is not None:
                parts += [("h3", f"{tables.label(r)}, {r.steps} step(s)"), ("img", _img(g, embed, out))]
        return parts

    md, body = [], []
    for kind, val in doc(False):
        if kind == "table":
            md.append(tables.markdown(*val))
        elif kind == "list":
            md.append("\n".join(val) + "\n")
        elif kind == "img":
            md.append(f"![]({val})\n")
        else:
            md.append({"h1": "# ", "h2": "## ", "h3": "### ", "warn": "> ", "p": ""}[kind]
                      + (f"**{val}**" if kind == "warn" else str(val)) + "\n")
    for kind, val in doc(True):
        if kind == "table":
            body.append(tables.html_table(*val))
        elif kind == "img":
            body.append(f'<img src="{val}" alt="figure">')
        elif kind == "list":
            items = [re.sub(r"[*]{2}(.+?)[*]{2}", r"<b>\1</b>", x[2:]) for x in val]
            body.append("<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>")
        elif kind == "warn":
            body.append(f'<p class="warn">{val}</p>')
        else:
            tag = {"h1": "h1", "h2": "h2", "h3": "h3", "p": "p"}[kind]
            body.append(f"<{tag}>{val}</{tag}>")
    (out / "report.md").write_text("\n".join(md))
    css = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0;"
           "font-size:13px}td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}td:first-child,"
           "th:first-child{text-align:left}.warn{background:#fde68a;padding:.6em;font-weight:bold}img{max-width:100%}")
    (out / "report.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{suite}</title>"
                                     f"<style>{css}</style></head><body>{''.join(body)}</body></html>\n")
    state.write_text(json.dumps({"fingerprint": fp, "experiment": experiment, "suite": suite, "smoke": smoke,
                                 "rows": [{"run_id": r.run_id, "model": r.model, "steps": r.steps} for r in rows]},
                                indent=2) + "\n")
    if log_to_mlflow:
        exp_id = client.get_experiment_by_name(experiment).experiment_id
        run = client.create_run(exp_id, run_name=f"report {suite}", tags={KIND: "report", "suite": suite})
        for f in ("report.md", "report.html", "table2.tex", "table3.tex", "table4.tex", "pareto.png", "report.json"):
            if (out / f).exists():
                client.log_artifact(run.info.run_id, str(out / f))
        client.set_terminated(run.info.run_id)
    return out / "report.md", True
