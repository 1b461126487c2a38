"""Read a suite's results back from MLflow: one row per evaluation child run (model, steps) with its params and
metrics, joined to the training run of the same config for students (so ablation axes can be named)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

from sprint_bench.tracking.eval_runs import KIND

CAVEAT = "caveat"  # MLflow tag on a student's training run (set by hand: `mlflow.MlflowClient().set_tag(...)`)


@dataclass
class Row:
    run_id: str
    model: str  # config name, e.g. teacher, sprint-hybrid
    model_id: str
    method: str
    steps: int
    nfe: int
    params: dict
    metrics: dict
    training: dict = field(default_factory=dict)  # params of the student's training run (empty for the teacher)
    caveat: str = ""  # tag ``caveat`` of the student's training run: a known flaw of its numbers, shown with them
    variant: str = ""  # what tells this row from another of the same model name and steps (set by collect)

    @property
    def is_teacher(self) -> bool:
        """The plain flow-matching teacher (the Table-2 teacher curve); a ControlNet teacher is not one."""
        return self.params.get("method", "").startswith("flow matching")

    @property
    def is_control(self) -> bool:
        """A ControlNet generator (edge-map conditioned): reported in the ControlNet table only."""
        return "control" in self.params or "ControlNet" in self.params.get("method", "")

    @property
    def trained_steps(self) -> int | None:
        """Training steps of the evaluated export (its model id ends in ``-step<N>``): tells apart two runs of one
        config name trained for different lengths."""
        _, sep, tail = self.model_id.rpartition("-step")
        return int(tail) if sep and tail.isdigit() else None

    def metric(self, key: str) -> float | None:
        return self.metrics.get(key)


def _all_runs(client: MlflowClient, exp_id: str, filter_string: str):
    runs, token = [], None
    while True:
        page = client.search_runs([exp_id], filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _preference(run) -> tuple:
    """Which of several evaluations of one (model id, steps, sampler) a report shows: the most images (a smoke run
    on a few prompts never replaces the full protocol), then the protocol's seed 0 (a probe on other noise does not
    either), then the newest. Runs logged before ``prompts`` was recorded count as the full set."""
    p = run.data.params
    images = int(p.get("prompts", 10**9)) * int(p.get("images_per_prompt", 1))
    return images, p.get("seed") == "0", run.info.start_time


def collect(experiment: str, tracking_uri: str) -> list[Row]:
    """Every finished evaluation child run of ``experiment``: per (model id, steps, sampler) the one
    :func:`_preference` ranks first."""
    store = Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None
    if store is not None and not store.is_file():  # a report only reads: it never creates an empty store
        raise ValueError(f"no MLflow store at {store}: run from the repository root, or pass --tracking-uri (or set "
                         f"MLFLOW_TRACKING_URI) to the store the runs were logged to")
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}")
    trained = {}
    for r in _all_runs(client, exp.experiment_id, "tags.kind = 'student'"):  # newest first: the newest one counts
        trained.setdefault(r.data.tags.get("config_hash"), (r.data.params, r.data.tags.get(CAVEAT, "")))
    shown: dict[tuple, object] = {}
    for r in _all_runs(client, exp.experiment_id, f"tags.`{KIND}` = 'eval-child' and attributes.status = 'FINISHED'"):
        p = r.data.params
        key = (p.get("model_id"), p.get("steps"), p.get("sampler"))
        if key not in shown or _preference(r) > _preference(shown[key]):
            shown[key] = r
    rows = []
    for r in shown.values():
        training, caveat = trained.get(r.data.params.get("config_hash"), ({}, ""))
        rows.append(Row(run_id=r.info.run_id, model=r.data.params["model"], model_id=r.data.params["model_id"],
                        method=r.data.params.get("method", ""), steps=int(r.data.params["steps"]),
                        nfe=int(r.data.params["nfe"]), params=dict(r.data.params), metrics=dict(r.data.metrics),
                        training=training, caveat=caveat))
    mark_variants(rows)
    return sorted(rows, key=lambda r: (not r.is_teacher, r.model, r.steps, r.variant))


VARIANT_FACTS = (("model_id", "{}"), ("cfg_scale", "w {}"), ("sampler", "{}"))


def mark_variants(rows: list[Row]) -> None:
    """Rows that would share a name and step count in the tables (two teachers, one student evaluated at two
    guidance scales) get as ``variant`` the facts that differ between them, so that no two rows, sample grids or
    Pareto curves are taken for one."""
    from sprint_bench.report.tables import label

    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((label(r), r.steps), []).append(r)
    for group in (g for g in groups.values() if len(g) > 1):
        for key, fmt in VARIANT_FACTS:
            if len({r.params.get(key) for r in group}) > 1:
                for r in group:
                    r.variant = fmt.format(r.params.get(key))
                break
