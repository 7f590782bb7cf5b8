"""Send runs to the trackers users already have, through the Trainer's own integrations.

``--report-to tensorboard,mlflow`` (any name ``transformers`` accepts; off by default) is handed to
``TrainingArguments.report_to``: the Trainer's callbacks log the losses and learning rates as they go.
tunelab adds what the Trainer does not know: the run's final record (validation and test metrics,
trainable share, peak memory, times, forgetting). A comparison groups its runs under one MLflow parent
run (:mod:`tunelab.compare.tracking`).

Where things go: TensorBoard event files under ``<out>/tensorboard``; MLflow wherever
``MLFLOW_TRACKING_URI`` points (a server, or a local store; the Trainer's own defaults otherwise).

Which trackers a ``--report-to`` value names, and the check of each: :mod:`tunelab.trackers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunelab.io import read_json, write_json
from tunelab.trackers import environment, parse_report_to, tracker_names

TENSORBOARD_DIR = "tensorboard"


def trainer_environment(trackers: list[str], out_dir: Path) -> dict[str, str]:
    """What the Trainer's tracker callbacks read from the environment for a run written to ``out_dir``
    (event files beside the run, not inside its checkpoints, which are cleaned up)."""
    env: dict[str, str] = {}
    if "tensorboard" in trackers:
        env["TENSORBOARD_LOGGING_DIR"] = str(Path(out_dir) / TENSORBOARD_DIR)
    return env


def flat_record_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a run record that a tracker shows: ``test_accuracy``, ``train_time_s``, ...; a value its
    ``metrics.json`` recorded otherwise, kept beside the one a comparison states
    (:func:`~tunelab.advice.verdict.as_compared`: ``metrics.recorded.validation.f1_macro``), as
    ``recorded_validation_f1_macro``; forgetting under its unit's name (``forgetting_debiased_cka``,
    :func:`tunelab.run.forgetting.tracked_name`)."""
    out: dict[str, float] = {}

    def add(prefix: str, values: Mapping[str, Any]) -> None:
        for name, value in (values or {}).items():
            if isinstance(value, Mapping):
                add(f"{prefix}{name}_", value)
            elif isinstance(value, int | float):
                out[f"{prefix}{name}"] = float(value)

    add("", {split: values for split, values in (record.get("metrics") or {}).items() if isinstance(values, Mapping)})
    info = record.get("train_info") or {}
    for name in ("train_time_s", "eval_time_s", "cache_time_s", "peak_memory_mb", "trainable_params", "trainable_share"):
        if isinstance(info.get(name), int | float):
            out[name] = float(info[name])
    forgetting = record.get("forgetting") or info.get("forgetting") or {}
    if isinstance(forgetting.get("value"), int | float):  # named by its unit: a biased CKA is not on a debiased one's scale
        from tunelab.run.forgetting import tracked_name

        out[tracked_name(forgetting)] = float(forgetting["value"])
    return out


#: The file in a run's folder that names its MLflow run, so that ``train --resume`` continues that run.
RUN_STATE = "mlflow.json"


def log_params(run_id: str, params: Mapping[str, str]) -> None:
    """``params`` to an MLflow run; one it already holds is kept (a resumed run holds them from its first start)."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    held = client.get_run(run_id).data.params
    new = [Param(key, value) for key, value in params.items() if key not in held]
    for i in range(0, len(new), 100):  # MLflow takes at most 100 parameters in one call
        client.log_batch(run_id, params=new[i:i + 100])


def earlier_run(state: Path, key: str, *, experiment_id: str | None = None) -> str | None:
    """The MLflow run named under ``key`` in the JSON file ``state`` (written by an earlier attempt of a run or a
    comparison), when it is in the tracking store MLflow points to now (and in ``experiment_id``, when given) and not
    deleted; else None."""
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        saved = read_json(state) if Path(state).is_file() else {}
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not saved.get(key) or saved.get("tracking_uri") != mlflow.get_tracking_uri():
        return None
    if experiment_id is not None and saved.get("experiment_id") != experiment_id:
        return None
    try:
        run = MlflowClient().get_run(str(saved[key]))
    except Exception:  # noqa: BLE001 - MLflow raises its own errors for a run it does not have
        return None
    return run.info.run_id if run.info.lifecycle_stage == "active" else None


@contextmanager
def tracking(report_to: str | None, out_dir: Path, params: Mapping[str, str] | None = None, *,
             resume: bool = False) -> Iterator[str | None]:
    """The trackers of one run, for the duration of a block: their environment, and the MLflow run
    (yielded: its id, or ``None`` without MLflow) kept open from before the Trainer is built until the
    final record is logged, so that the test evaluation after training lands in the same run. It ends ``FINISHED``,
    ``KILLED`` when an interrupt stopped it (it was ``FAILED``, unlike a comparison's children) or ``FAILED``. A run
    that a caller opened (``MLFLOW_RUN_ID``, an active run) is used and left open.

    The run gets ``params`` (:func:`run_params`), and its id is kept in ``<out_dir>/mlflow.json``
    (:data:`RUN_STATE`): with ``resume`` (a checkpoint continued), the run named there goes on, where it is in the
    same tracking store and not deleted, instead of a new run (one MLflow run per tunelab run)."""
    trackers = parse_report_to(report_to)
    with environment(trainer_environment(trackers, out_dir)):
        if "mlflow" not in trackers:
            yield None
            return
        import mlflow

        opened = mlflow.active_run() is None
        if opened:
            earlier = (earlier_run(Path(out_dir) / RUN_STATE, "run_id")
                       if resume and not os.environ.get("MLFLOW_RUN_ID") else None)
            run = mlflow.start_run(run_id=earlier, run_name=None if earlier else Path(out_dir).name)
        else:
            run = mlflow.active_run()
        write_json(Path(out_dir) / RUN_STATE, {"tracking_uri": mlflow.get_tracking_uri(),
                                               "experiment_id": run.info.experiment_id, "run_id": run.info.run_id})
        status = "FAILED"
        try:
            log_params(run.info.run_id, params or {})
            yield run.info.run_id
            status = "FINISHED"
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (a checkpoint saved, --resume continues): as a comparison's runs
            status = "KILLED"
            raise
        finally:
            if opened:
                mlflow.end_run(status)


def log_record(report_to: str | None, out_dir: Path, mlflow_run_id: str | None, record: Mapping[str, Any]) -> None:
    """A finished run's final numbers (:func:`flat_record_metrics`) to the trackers of ``report_to`` that tunelab
    writes to itself: MLflow (:func:`log_record_to_mlflow`) and TensorBoard (:func:`log_record_to_tensorboard`; they
    reached MLflow alone, and TensorBoard had the Trainer's test metrics but no cost nor forgetting)."""
    names = tracker_names(report_to)
    if "all" in names:  # as the Trainer was given them (mlflow,all: TensorBoard too)
        names = parse_report_to(report_to)
    if mlflow_run_id:
        log_record_to_mlflow(mlflow_run_id, record)
    if "tensorboard" in names:
        log_record_to_tensorboard(Path(out_dir) / TENSORBOARD_DIR, record)


def log_record_to_tensorboard(folder: Path, record: Mapping[str, Any]) -> None:
    """A finished run's final numbers as ``tunelab/<name>`` scalars in the run's TensorBoard folder (where the
    Trainer's event files are), at the run's last optimizer step, as in MLflow."""
    from torch.utils.tensorboard import SummaryWriter

    step = int((record.get("train_info") or {}).get("steps") or 0)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for name, value in flat_record_metrics(record).items():
            writer.add_scalar(f"tunelab/{name}", value, global_step=step)
    finally:
        writer.close()


def log_record_to_mlflow(run_id: str, record: Mapping[str, Any]) -> None:
    """Add a finished run's final numbers and status to an existing MLflow run, at the run's last optimizer step
    (``train_info.steps``; 0 for a record without it), where the Trainer's own last losses are: at step 0 a chart of
    the final numbers against steps put them before training. A number the run already holds at that step is not
    logged again: the Trainer logs the test split's metrics itself, and a comparison logs each child's record after
    its run did (a run's ``test_accuracy`` had three identical points at its last step)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    step = int((record.get("train_info") or {}).get("steps") or 0)
    logged = client.get_run(run_id).data.metrics  # each metric's latest value
    for name, value in flat_record_metrics(record).items():
        if name in logged and _logged_at(client, run_id, name, value, step):
            continue
        client.log_metric(run_id, name, value, step=step)
    status = (record.get("run_info") or {}).get("status", "success")
    client.set_tag(run_id, "tunelab.status", status)


def _logged_at(client, run_id: str, name: str, value: float, step: int) -> bool:
    """Whether the MLflow run holds ``value`` for metric ``name`` at ``step`` already."""
    import math

    return any(m.step == step and math.isclose(m.value, value, rel_tol=1e-9, abs_tol=0.0)
               for m in client.get_metric_history(run_id, name))
