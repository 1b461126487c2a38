"""MLflow layout of an evaluation: one parent run per model, one child run per (model, steps); protocol fields
as params, numbers as metrics, grids / per-image GenEval tables / raw timings as artifacts."""
from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from sprint_bench.tracking.mlflow_store import ensure_experiment, tracking_uri

KIND = "sprint_bench.kind"
MODEL_ID = "sprint_bench.model_id"


def _q(value) -> str:
    return str(value).replace("'", "")


NO_GUIDANCE = "none (no guidance embedding)"


def guidance_label(model, cfg_scale: float) -> float | str:
    """The guidance scale a generator samples with: ``cfg_scale``, or NO_GUIDANCE for a student trained without the
    guidance embedding (its sampler ignores the scale, so no scale may be logged for it)."""
    guidance = getattr(model, "guidance", None)
    return cfg_scale if guidance is None or guidance(cfg_scale) is not None else NO_GUIDANCE


def _g(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


class RunLogger:
    def __init__(self, client: MlflowClient, run_id: str, skipped: bool = False, finished_metrics: dict | None = None):
        self.client, self.run_id, self.skipped = client, run_id, skipped
        self.finished_metrics = finished_metrics or {}

    def params(self, params: dict) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, result) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in result.values.items()])
        self.params(result.protocol.as_params(result.key))

    def artifact_bytes(self, data: bytes, path: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / Path(path).name
            f.write_bytes(data)
            self.client.log_artifact(self.run_id, str(f), str(Path(path).parent) if "/" in path else None)

    def artifact_file(self, file: Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(file), artifact_dir)


class EvalTracker:
    """Parent run per model (found again by its model id), child runs found again by (steps, protocol hash)."""

    def __init__(self, experiment: str, uri: str | None, model):
        self.uri = tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.exp_id = ensure_experiment(experiment, self.uri)
        self.model = model
        found = self.client.search_runs([self.exp_id], f"tags.`{KIND}` = 'eval' and tags.`{MODEL_ID}` = "
                                                       f"'{_q(model.model_id)}'", max_results=1)
        if found:
            self.parent = found[0].info.run_id
            self.client.update_run(self.parent, "RUNNING")
        else:
            run = self.client.create_run(self.exp_id, run_name=f"eval {model.name}",
                                         tags={KIND: "eval", MODEL_ID: model.model_id, "model": model.name})
            self.parent = run.info.run_id
            RunLogger(self.client, self.parent).params(self._model_params())

    def _model_params(self) -> dict:
        m = self.model
        out = {"model": m.name, "method": m.method, "model_id": m.model_id, "model_path": str(m.path),
               "params": m.params, "resolution": m.resolution, "config_hash": m.meta["config_hash"],
               "global_step": m.meta["global_step"]}
        if getattr(m, "control", None):  # ControlNet generators only: the report keys its ControlNet table on it
            out["control"] = json.dumps(m.control, sort_keys=True)
        return out

    @contextmanager
    def child(self, steps: int, cfg_scale: float, settings, protocol_hash: str):
        found = self.client.search_runs(
            [self.exp_id], f"tags.`mlflow.parentRunId` = '{self.parent}' and tags.steps = '{steps}' and "
                           f"tags.protocol_hash = '{protocol_hash}'", max_results=1)
        if found and found[0].info.status == "FINISHED":
            r = found[0]
            yield RunLogger(self.client, r.info.run_id, skipped=True,
                            finished_metrics={"steps": steps, "run_id": r.info.run_id, **r.data.metrics})
            return
        guidance = guidance_label(self.model, cfg_scale)
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, "RUNNING")
        else:
            tags = {"mlflow.parentRunId": self.parent, KIND: "eval-child", MODEL_ID: self.model.model_id,
                    "steps": str(steps), "cfg_scale": _g(guidance),
                    "protocol_hash": protocol_hash,
                    "model": self.model.name}
            run_id = self.client.create_run(self.exp_id, run_name=f"{self.model.name} {steps} steps",
                                            tags=tags).info.run_id
        logger = RunLogger(self.client, run_id)
        logger.params({**self._model_params(), "steps": steps, "nfe": self.model.nfe(steps, cfg_scale),
                       "cfg_scale": guidance, "seed": settings.seed,
                       "images_per_prompt": settings.images_per_prompt,
                       "metrics": ",".join(settings.metrics), "sampler": self.model.sampler_tag(steps, cfg_scale)})
        try:
            yield logger
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def close(self) -> None:
        self.client.set_terminated(self.parent, "FINISHED")
