"""Run one training run from a spec file and write its record, whatever happens.

``tunelab compare`` starts one of these per run (forked from a warm server that holds the libraries
imported, :mod:`tunelab.run.isolate`), so that each strategy's peak memory is its own and a crash (out of
memory, a killed process) takes down only that run::

    python -m tunelab.run.worker runs/compare/runs/lora/spec.json runs/compare/runs/lora/metrics.json

(:func:`tunelab.run.isolate.run_job` starts it: the spec file, the log, the timeout, the result read back.)

The spec is JSON: ``{"config": {...TrainConfig...}, "split_seed": 42, "extra_record": {...}}``.

``config``
    The run's :class:`~tunelab.config.TrainConfig` as a dict (``out`` is the run's folder).
``split_seed``
    Seed of the data split and of the training subset. Seeds of a comparison vary ``config.seed``
    (initialisation, order) but keep this one, so every run of a comparison sees the same examples.
``extra_record``
    Merged into the run record (e.g. ``{"lr_search": {...}}`` written by the learning-rate search).

The worker always leaves ``<out>/metrics.json``: the record of :func:`tunelab.run.training.train` on
success, or a record with ``run_info.status == "failed"`` and the error message on failure. Exit
code 0 on success, 1 on a recorded failure, 130 after Ctrl-C (the run saved a checkpoint and is
recorded as interrupted; ``compare --resume`` continues it). The worker adds ``run_info.split_seed`` and
``run_info.cpu_time_s`` (CPU seconds of the whole process: loading, training, evaluation; and the imports
when it started afresh rather than forked from the warm server, :mod:`tunelab.run.isolate`). If the process dies before it can write (killed for
memory, a segfault), the caller records the failure from the exit status (see
:meth:`tunelab.run.record.RunRecord.failure`).
"""

from __future__ import annotations

import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunelab.config import TrainConfig
from tunelab.run.record import RunRecord

RECORD_NAME = "metrics.json"


INTERRUPTED = "interrupted: "
"""How the error of a run stopped by Ctrl-C (SIGINT) begins: it saved a checkpoint, and a resume continues it."""


def describe_error(exc: BaseException) -> str:
    """One line for a failed run: the error, named for what it means to the user."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text}" if text != "MemoryError" else "out of memory (MemoryError)"
    from tunelab.errors import TunelabError

    if isinstance(exc, TunelabError):
        return text
    return f"{exc.__class__.__name__}: {text}"


def run_spec(spec: dict[str, Any], *, progress: bool = False) -> RunRecord:
    """Train the run a spec describes and write its record; failures are recorded, not raised.

    This is the whole worker: ``python -m tunelab.run.worker`` only reads the spec and calls this, and
    ``compare(..., isolate=False)`` calls it in-process.
    """
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    extra = spec.get("extra_record") or {}
    out = Path(spec["config"]["out"])
    split_seed = spec.get("split_seed")
    config: TrainConfig | dict = dict(spec["config"])

    def finished(record: RunRecord, seed: int | None) -> RunRecord:
        """The run's success record, with what the comparison adds, written where the comparison reads it."""
        record.run_info.split_seed = split_seed if split_seed is not None else seed
        record.run_info.cpu_time_s = _cpu_seconds()
        record = record.merged(extra)
        record.write(out / RECORD_NAME)
        return record

    def failed(error: str) -> RunRecord:
        record = RunRecord.failure(config, error, started_at=started, wall_time_s=time.perf_counter() - t0, extra=extra)
        record.run_info.split_seed = split_seed
        return record

    try:
        from tunelab.run.isolate import import_strategy_modules

        import_strategy_modules()  # strategies the comparison's process registered outside tunelab
        config = TrainConfig.from_dict(spec["config"], where="worker spec").validate()
        record = _train(config, split_seed, progress, spec.get("env"))
    except KeyboardInterrupt as exc:  # Ctrl-C: training saved a checkpoint (tunelab.run.resilience); record and stop
        record = _recorded_success(out / RECORD_NAME, started)
        if record is not None:  # it came once the run had recorded its success (deleting its checkpoints): kept
            finished(record, record.config.get("seed"))
            raise
        error = INTERRUPTED + (" ".join(str(exc).split()) or "Ctrl-C") + " (tunelab compare --resume continues it)"
        failed(error).write(out / RECORD_NAME)
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one run is recorded and the comparison goes on
        error = describe_error(exc)
        print(f"tunelab worker: run {out.name} failed: {error}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        record = failed(error)
        record.run_info.cpu_time_s = _cpu_seconds()
        _release_memory()
        record.write(out / RECORD_NAME)
        return record
    return finished(record, config.seed)


def _recorded_success(path: Path, since: str) -> RunRecord | None:
    """The success record this run wrote at ``path`` (it started at ``since`` or later), if there is one: an interrupt
    that comes after it (while the run deletes its checkpoints) replaced it with "interrupted", and compare --resume
    trained the finished run again from the start, its checkpoints gone."""
    try:
        record = RunRecord.read(path)
    except (OSError, ValueError):
        return None
    return record if record.succeeded and (record.run_info.started_at or "") >= since else None


def _train(config: TrainConfig, split_seed: int | None, progress: bool, env: dict[str, str] | None = None) -> RunRecord:
    from tunelab.run.training import load_data, train_record

    data = None
    if split_seed is not None and split_seed != config.seed:
        # same split and training subset as the comparison's other seeds; only init and order vary
        data = load_data(config.replace(seed=split_seed))
    from tunelab.trackers import environment

    with environment(env or {}):  # e.g. the MLflow child run a comparison opened for this run
        return train_record(config, data=data, progress=progress)


def _cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) this process has used: on a busy machine a steadier
    measure of a run's cost than wall time (in-process runs share it with their caller)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 2)


def _release_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m tunelab.run.worker SPEC.json RECORD.json`` (started by :func:`tunelab.run.isolate.run_job`)."""
    from tunelab.run.isolate import forked, serve

    def handle(spec: dict[str, Any]) -> dict[str, Any]:
        record = run_spec(spec, progress=bool(spec.get("progress", False)))
        record.run_info.process = "forked" if forked() else "fresh"
        return record.to_dict()

    return serve(handle, argv, exit_code=lambda record: 0 if record["run_info"]["status"] == "success" else 1)


if __name__ == "__main__":
    sys.exit(main())
