"""MLflow store resolution (DESIGN.md §5): SQLite `mlflow.db` in SPRINT_BENCH_HOME, else the current directory (the
repository root under make), unless MLFLOW_TRACKING_URI or the config says otherwise; artifacts under an explicit
absolute location; telemetry off."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def project_root() -> Path:
    """SPRINT_BENCH_HOME if set, else the current directory (make-targets run from the repository root)."""
    return Path(os.environ.get("SPRINT_BENCH_HOME", os.getcwd())).resolve()


def tracking_uri(configured: str | None = None) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{project_root() / 'mlflow.db'}"


def artifact_location(uri: str, experiment: str) -> str:
    """Absolute file:// artifact location beside a sqlite store (never relative to the CWD)."""
    if uri.startswith("sqlite:///"):
        base = Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts"
    else:
        base = project_root() / "mlartifacts"
    return (base / experiment).as_uri()


def ensure_experiment(name: str, uri: str) -> str:
    """Experiment id, created with an absolute artifact location if it does not exist."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {name!r} is deleted in {uri}: restore it (`mlflow experiments restore "
                         f"--experiment-id {exp.experiment_id}`) or choose another tracking.experiment")
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri, name))


def make_logger(tracking_cfg, run_name: str, run_id: str | None = None, tags: dict | None = None):
    """Lightning MLFlowLogger on our store; passing ``run_id`` continues that run (resume, no duplicate run)."""
    from lightning.pytorch.loggers import MLFlowLogger

    uri = tracking_uri(tracking_cfg.tracking_uri)
    ensure_experiment(tracking_cfg.experiment, uri)
    return MLFlowLogger(experiment_name=tracking_cfg.experiment, run_name=run_name, tracking_uri=uri,
                        artifact_location=artifact_location(uri, tracking_cfg.experiment), run_id=run_id,
                        tags=tags)
