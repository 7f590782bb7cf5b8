"""A comparison in MLflow: one parent run, a child run per strategy × seed × fraction (each filled by
that run's Trainer and then by its final record), the verdict and the report attached to the parent."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.run.tracking import log_record_to_mlflow


class ComparisonRuns:
    """One MLflow parent run for a comparison, a child run for each of its runs."""

    def __init__(self, name: str, params: Mapping[str, Any]):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        experiment_id = mlflow.set_experiment(experiment).experiment_id if experiment else "0"
        self.experiment_id = experiment_id
        self.parent = self.client.create_run(experiment_id, run_name=name).info.run_id
        for key, value in params.items():
            self.client.log_param(self.parent, key, str(value)[:500])
        self.children: dict[str, str] = {}

    def child_environment(self, run_name: str, params: Mapping[str, Any]) -> dict[str, str]:
        """Create the child run for ``run_name``; the environment that makes its Trainer log into it."""
        child = self.client.create_run(
            self.experiment_id, run_name=run_name, tags={"mlflow.parentRunId": self.parent}
        ).info.run_id
        for key, value in params.items():
            self.client.log_param(child, key, str(value)[:500])
        self.children[run_name] = child
        env = {"MLFLOW_RUN_ID": child}
        import mlflow

        env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
        return env

    def finish_child(self, run_name: str, record: Mapping[str, Any]) -> None:
        child = self.children.get(run_name)
        if child is None:
            return
        log_record_to_mlflow(child, record)
        failed = (record.get("run_info") or {}).get("status") == "failed"
        self.client.set_terminated(child, status="FAILED" if failed else "FINISHED")

    def finish(self, verdict: Mapping[str, Any], files: list[Path]) -> None:
        """The verdict as tags and the report files as artifacts of the parent run."""
        for key in ("strategy", "metric"):
            if verdict.get(key) is not None:
                self.client.set_tag(self.parent, f"tunelab.recommended_{key}" if key == "strategy" else "tunelab.metric", str(verdict[key]))
        for path in files:
            if Path(path).is_file():
                self.client.log_artifact(self.parent, str(path))
        self.client.set_terminated(self.parent, status="FINISHED")
