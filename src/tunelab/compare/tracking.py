"""A comparison in MLflow: one parent run, a child run per strategy × seed × fraction (each filled by
that run's Trainer, its parameters and then its final record), the verdict and the report attached to the parent.

The parent's id is kept in the comparison's folder (:data:`STATE_NAME`), so ``compare --resume`` goes on in the
same parent run: a run finished earlier and reused keeps its child (or gets one, when the first attempt was not
tracked), a run resumed from its checkpoint logs into its own child again, and the parent holds the whole
comparison once. A child is created when its run starts (a run the budget never started has none), and a comparison
that stops on an error or an interrupt ends its parent and its open children as ``FAILED`` or ``KILLED`` instead of
leaving them ``RUNNING``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.io import write_json
from tunelab.run.record import run_params
from tunelab.run.tracking import earlier_run, log_params, log_record_to_mlflow

#: The file in the comparison's folder that names its MLflow parent run.
STATE_NAME = "mlflow_run.json"


class ComparisonRuns:
    """One MLflow parent run for a comparison, a child run for each of its runs.

    ``folder``: the comparison's folder, where the parent's id is kept; with ``resume`` a parent named there (in the
    same tracking store, not deleted) is continued instead of a new one created."""

    def __init__(self, name: str, params: Mapping[str, Any], folder: Path | None = None, *, resume: bool = False):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.uri = mlflow.get_tracking_uri()
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        self.experiment_id = mlflow.set_experiment(experiment).experiment_id if experiment else "0"
        self.state = Path(folder) / STATE_NAME if folder is not None else None
        self.children: dict[str, str] = {}
        self.open: set[str] = set()
        self.parent = self._earlier_parent() if resume else None
        if self.parent is not None:
            self.client.update_run(self.parent, status="RUNNING")
            for child in self.client.search_runs([self.experiment_id],
                                                 filter_string=f"tags.mlflow.parentRunId = '{self.parent}'"):
                name_of = child.data.tags.get("mlflow.runName") or child.info.run_name
                self.children.setdefault(name_of, child.info.run_id)
        else:
            self.parent = self.client.create_run(self.experiment_id, run_name=name).info.run_id
            for key, value in params.items():
                self.client.log_param(self.parent, key, str(value)[:500])
        if self.state is not None:
            write_json(self.state, {"tracking_uri": self.uri, "experiment_id": self.experiment_id,
                                    "parent_run_id": self.parent})

    def _earlier_parent(self) -> str | None:
        """The parent run an earlier attempt of this comparison made, when it is in this tracking store and active."""
        if self.state is None:
            return None
        return earlier_run(self.state, "parent_run_id", experiment_id=self.experiment_id)

    def child_environment(self, run_name: str) -> dict[str, str]:
        """The child run for ``run_name`` (created now, or the one an earlier attempt made, set running again); the
        environment that makes its Trainer log into it (and its run its parameters, :func:`run_params`)."""
        child = self.children.get(run_name)
        if child is None:
            child = self.client.create_run(
                self.experiment_id, run_name=run_name, tags={"mlflow.parentRunId": self.parent}
            ).info.run_id
            self.children[run_name] = child
        else:
            self.client.update_run(child, status="RUNNING")
        self.open.add(run_name)
        return {"MLFLOW_RUN_ID": child, "MLFLOW_TRACKING_URI": self.uri}

    def finish_child(self, run_name: str, record: Mapping[str, Any]) -> None:
        child = self.children.get(run_name)
        if child is None:
            return
        from tunelab.advice.verdict import as_compared
        from tunelab.compare.executors import interrupted, stopped_by_budget
        from tunelab.run.record import as_record

        # the numbers its table shows (as results.csv), where they are other measurements than its run logged itself
        log_record_to_mlflow(child, as_compared(record, restated_only=True))
        run = as_record(record)
        status = "FINISHED"
        if not run.succeeded:  # stopped by Ctrl-C or the budget (a checkpoint kept, resumable), or failed
            status = "KILLED" if interrupted(run) or stopped_by_budget(run) else "FAILED"
        self.client.set_terminated(child, status=status)
        self.open.discard(run_name)

    def reused(self, run_name: str, record: Mapping[str, Any]) -> None:
        """A run finished by an earlier attempt and reused now: its child already holds it, or (an earlier attempt
        that was not tracked) gets one now, with the run's parameters and final numbers, as a run logs them. Either
        way the child gets the numbers the comparison states for it (:func:`~tunelab.advice.verdict.as_compared`):
        a value recorded under an older definition (macro F1 over the gold or predicted classes) is logged again as
        today's, the recorded one kept as ``recorded_<split>_<metric>``; one that is the same measurement summed
        otherwise (a perplexity's float32 sums) is not logged twice."""
        if run_name in self.children:
            from tunelab.advice.verdict import as_compared

            log_record_to_mlflow(self.children[run_name], as_compared(record, restated_only=True))
            return
        self.child_environment(run_name)
        log_params(self.children[run_name], run_params(record.get("config") or {}, record.get("meta_info")))
        self.finish_child(run_name, record)

    def finish(self, verdict: Mapping[str, Any], files: list[Path]) -> None:
        """The verdict as tags and the report files (a folder: as a folder of artifacts) as artifacts of the parent."""
        for key in ("strategy", "metric"):
            if verdict.get(key) is not None:
                self.client.set_tag(self.parent, f"tunelab.recommended_{key}" if key == "strategy" else "tunelab.metric", str(verdict[key]))
        for path in files:
            if Path(path).is_file():
                self.client.log_artifact(self.parent, str(path))
            elif Path(path).is_dir() and any(Path(path).iterdir()):
                self.client.log_artifacts(self.parent, str(path), artifact_path=Path(path).name)
        self.client.set_terminated(self.parent, status="FINISHED")

    def abort(self, interrupted: bool) -> None:
        """The comparison stopped before its verdict: the parent and every child still open end ``KILLED`` (an
        interrupt) or ``FAILED`` (an error); ``compare --resume`` continues them."""
        status = "KILLED" if interrupted else "FAILED"
        try:
            for run_name in sorted(self.open):
                self.client.set_terminated(self.children[run_name], status=status)
            self.client.set_terminated(self.parent, status=status)
        except Exception as exc:  # noqa: BLE001 - the error that stopped the comparison is the one to report
            import logging

            logging.getLogger("tunelab").warning("MLflow: could not mark the comparison's runs %s: %s", status, exc)
        self.open.clear()
