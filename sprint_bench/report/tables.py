"""The report's tables as plain data (header + rows of strings), each cell formatted from one MLflow metric by
:func:`cell`, so a test can recompute every number; rendered to Markdown, HTML and LaTeX."""
from __future__ import annotations

import functools
import html

from sprint_bench.report.collect import Row

# (header, metric key or row attribute, format); "@" prefix = row attribute / param
TABLE2_COLUMNS = [
    ("Method", "@label", "{}"), ("Steps", "@steps", "{}"), ("NFE", "@nfe", "{}"),
    ("Latency b1 (ms)", "latency_e2e_ms_median", "{:.1f}"), ("Throughput b10 (img/s)", "throughput_images_per_s", "{:.1f}"),
    ("Params (M)", "@params_m", "{:.2f}"), ("FD (EfficientNet-Lite0)", "fd_effnet_lite0", "{:.2f}"),
    ("KID (EfficientNet-Lite0)", "kid_effnet_lite0", "{:.4f}"), ("CLIP score (shapes-CLIP)", "clip_score_shapes", "{:.2f}"),
    ("GenEval-Shapes", "geneval_overall", "{:.3f}"), ("Single", "geneval_single_object", "{:.3f}"),
    ("Two", "geneval_two_object", "{:.3f}"), ("Counting", "geneval_counting", "{:.3f}"),
    ("Colors", "geneval_colors", "{:.3f}"), ("Position", "geneval_position", "{:.3f}"),
    ("Color attr.", "geneval_color_attr", "{:.3f}"),
]
TABLE3_COLUMNS = [
    ("Student", "@model", "{}"), ("Setting (vs the hybrid)", "@setting", "{}"), ("Steps", "@steps", "{}"),
    ("FD (EfficientNet-Lite0)", "fd_effnet_lite0", "{:.2f}"), ("CLIP score (shapes-CLIP)", "clip_score_shapes", "{:.2f}"),
    ("GenEval-Shapes", "geneval_overall", "{:.3f}"),
]
CONTROL_COLUMNS = [
    ("Model", "@model", "{}"), ("Method", "@method", "{}"), ("Trained steps", "@trained_steps", "{}"),
    ("Conditioned", "@conditioned", "{}"), ("Steps", "@steps", "{}"), ("NFE", "@nfe", "{}"),
    ("Latency b1 (ms)", "latency_e2e_ms_median", "{:.1f}"),
    ("Edge F1 (1 px)", "edge_f1_tol1", "{:.3f}"), ("Edge precision", "edge_precision_tol1", "{:.3f}"),
    ("Edge recall", "edge_recall_tol1", "{:.3f}"), ("FD (EfficientNet-Lite0)", "fd_effnet_lite0", "{:.2f}"),
    ("GenEval-Shapes", "geneval_overall", "{:.3f}"),
]
IGNORED_AXES = ("distill/teacher", "distill/debug_nan_steps", "distill/eval_steps", "distill/compile")
# the train keys an ablation may change
TRAIN_AXES = ("train/max_steps", "train/lr", "train/lr_schedule", "train/min_lr_ratio", "train/ema_decay")
# distill keys only one loss term reads: not a setting of a student trained without that term
SCM_KEYS = ("scm_weight", "logvar", "tangent", "fd_eps", "tangent_warmup_steps", "tangent_norm_c")
ADV_KEYS = ("adv_weight", "max_time_p", "d_p_mean", "d_p_std", "head_blocks", "misaligned_pairs", "d_translate",
            "r1_weight", "d_lr", "d_grad_clip", "d_norm_stats", "d_text_proj")
ODE_KEYS = ("ode_pairs", "ode_steps", "ode_metric", "ode_shift", "ode_shift_window")
DMD_KEYS = ("dmd_p_mean", "dmd_p_std", "fake_lr")


def label(row: Row) -> str:
    """A row's name in every table; a dagger marks a run with a caveat (listed under the tables)."""
    variant = f" [{row.variant}]" if row.variant else ""
    if row.is_teacher:
        return f"Flow teacher (Euler, CFG {float(row.params.get('cfg_scale', 0)):g}){variant}"
    return f"{row.method} ({row.model}){variant}" + (" †" if row.caveat else "")


def caveat_lines(rows: list[Row]) -> list[str]:
    """One list item per model whose training run carries a caveat."""
    seen = {r.model: r.caveat for r in rows if r.caveat}
    return [f"- † {model}: {text}" for model, text in sorted(seen.items())]


def control_rows(rows: list[Row]) -> list[Row]:
    """Rows with an edge-F1 metric: the unconditioned baselines (plain teacher / students scored against the same
    conditions) first, then the ControlNet generators; each by model and steps."""
    have = [r for r in rows if r.metric("edge_f1_tol1") is not None]
    return sorted(have, key=lambda r: (r.is_control, not r.is_teacher, r.model, r.trained_steps or 0, r.steps))


@functools.lru_cache(maxsize=1)
def _defaults() -> dict:
    from sprint_bench.config import ExperimentConfig, to_dict

    return to_dict(ExperimentConfig())


def _default(key: str):
    """The schema default of a "section/name" key (what a run recorded before the field existed was trained with)."""
    section, name = key.split("/", 1)
    return _defaults().get(section, {}).get(name)


def _inert(training: dict) -> set[str]:
    """The "distill/..." keys the student's own loss does not read (loss=ode inherits a hybrid's adv_weight)."""
    loss = str(training.get("distill/loss", "hybrid"))
    keys = set() if loss in ("scm", "hybrid") else set(SCM_KEYS)
    keys |= set() if loss in ("ladd", "hybrid") else set(ADV_KEYS)
    keys |= set(ODE_KEYS) if float(training.get("distill/ode_weight", 0.0)) == 0 else set()
    keys |= set(DMD_KEYS) if float(training.get("distill/dmd_weight", 0.0)) == 0 else set()
    return {f"distill/{k}" for k in keys}


def setting(row: Row, reference: dict) -> str:
    """The student's training settings that differ from the reference (hybrid) run: the ablation axis. A key the
    reference run did not record (a field added later) compares with its default; one the student's loss does not
    read is left out."""
    if not row.training:
        return "-"
    inert = _inert(row.training)
    diff = [f"{k.split('/', 1)[1]}={v}" for k, v in sorted(row.training.items())
            if (k.startswith("distill/") or k in TRAIN_AXES) and k not in IGNORED_AXES and k not in inert
            and str(reference[k] if k in reference else _default(k)) != str(v)]  # MLflow params are strings
    return ", ".join(diff) if diff else "default (hybrid)"


def cell(row: Row, key: str, fmt: str, reference: dict | None = None) -> str:
    if key.startswith("@"):
        attr = key[1:]
        value = {"label": lambda: label(row), "setting": lambda: setting(row, reference or {}),
                 "params_m": lambda: int(row.params["params"]) / 1e6,
                 "trained_steps": lambda: "-" if row.trained_steps is None else row.trained_steps,
                 "conditioned": lambda: "yes" if row.is_control else "no (baseline)"
                 }.get(attr, lambda: getattr(row, attr))()
    else:
        value = row.metric(key)
        if value is None:
            return "n/a"
    return fmt.format(value)


def table(rows: list[Row], columns, reference: dict | None = None) -> tuple[list[str], list[list[str]]]:
    return [c[0] for c in columns], [[cell(r, k, f, reference) for _, k, f in columns] for r in rows]


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body]) + "\n"


def html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def latex(header: list[str], body: list[list[str]], caption: str) -> str:
    def esc(s: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
            s = s.replace(a, b)
        return s

    cols = "l" + "r" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", f"\\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in body]
    lines += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
