"""Pushes `TrackedRun`s to MLflow through its own client (`MlflowClient`), idempotently.

A tracker run is found again by its `rttui.run_id` tag in the experiment; a second push logs only the points the
run lacks (MLflow keeps every `log_metric` call as a history point, even at the same step with the same value, so
logging everything again would double each history). Imported only when a push to MLflow runs.
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Any

from rttui.analysis.tracking import TrackedRun, TrackerError, TrackerTarget, mlflow_uri

BATCH = 100  # MLflow's log_batch takes at most 100 params or tags and 1000 metrics per call


class MlflowSink:
    def __init__(self, target: TrackerTarget, study: str) -> None:
        from mlflow.tracking import MlflowClient

        # MLflow and alembic print a line per schema step when a database store is created: not the user's concern
        for name in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = mlflow_uri(target)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = target.experiment or study
        self.experiment_id = self._experiment()

    def where(self) -> str:
        return f"MLflow experiment {self.experiment!r} at {self.client.tracking_uri}"

    def _experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            if exp.lifecycle_stage != "active":
                raise TrackerError(
                    f"MLflow experiment {self.experiment!r} is deleted; restore it (mlflow experiments restore) or "
                    "pass --experiment with another name"
                )
            return str(exp.experiment_id)
        return str(self.client.create_experiment(self.experiment, artifact_location=self._artifact_location()))

    def _artifact_location(self) -> str | None:
        """A local SQLite store keeps its artifacts next to its file (MLflow's default is ./mlruns under whatever
        folder the command ran in)."""
        uri = self.client.tracking_uri
        if urllib.parse.urlparse(uri).scheme == "sqlite" and "sqlite:///" in uri:
            path = Path(uri.split("sqlite:///", 1)[1])
            if str(path) != ":memory:":
                return (path.resolve().parent / "mlartifacts").as_uri()
        return None

    def find(self, key: str) -> Any:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`rttui.run_id` = '{key}'", max_results=1
        )
        return runs[0] if runs else None

    def push(self, tr: TrackedRun, parent: str | None = None) -> tuple[bool, str]:
        """(created, MLflow run id)."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.find(tr.key)
        tags = dict(tr.tags)
        if parent:
            tags["mlflow.parentRunId"] = parent
        if run is None:
            start = tr.timestamp_ms or None
            run = self.client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=tr.name)
            params_have: dict[str, str] = {}
            created = True
        else:
            params_have = dict(run.data.params)
            created = False
        rid = run.info.run_id
        # Params never change in MLflow (a second value is refused); the same run id means the same config.
        params = [Param(k, v) for k, v in tr.params.items() if k not in params_have]
        tag_list = [RunTag(k, v) for k, v in tags.items()]
        latest = {} if created else dict(run.data.metrics)
        points = [(k, v, 0) for k, v in tr.metrics.items() if latest.get(k) != v]
        steps = [(k, v, step) for k, pts in tr.steps.items() for step, v in pts]
        points += steps if created else self._new_points(rid, steps)
        metrics = [Metric(k, v, tr.timestamp_ms, step) for k, v, step in points]
        for i in range(0, max(len(params), len(tag_list), len(metrics)), BATCH):
            self.client.log_batch(
                rid, metrics=metrics[i : i + BATCH], params=params[i : i + BATCH], tags=tag_list[i : i + BATCH]
            )
        for folder, paths in tr.artifacts.items():
            for path in paths:  # the same name again overwrites the stored file
                self.client.log_artifact(rid, str(path), artifact_path=folder)
        if created:
            self.client.set_terminated(rid, "FINISHED", end_time=tr.timestamp_ms or None)
        return created, rid

    def _new_points(self, rid: str, points: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
        """The points the run does not hold yet: a (metric, step) whose value changed is logged again (its latest
        value is then the new one), an identical one is not."""
        have: dict[str, set[tuple[int, float]]] = {}
        out = []
        for k, v, step in points:
            if k not in have:
                have[k] = {(m.step, m.value) for m in self.client.get_metric_history(rid, k)}
            if (step, v) not in have[k]:
                out.append((k, v, step))
        return out
