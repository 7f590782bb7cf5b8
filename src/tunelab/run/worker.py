"""Run one training run from a spec file and write its record, whatever happens.

``tunelab compare`` starts one of these per run, so that each strategy's peak memory is its own
and a crash (out of memory, a killed process) takes down only that run::

    python -m tunelab.run.worker runs/compare/runs/lora/spec.json

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
``run_info.cpu_time_s`` (CPU seconds of the whole process: import, loading, training, evaluation). If the process dies before it can write (killed for
memory, a segfault), the caller records the failure from the exit status (see
:func:`failed_record`).
"""

from __future__ import annotations

import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunelab.config import TrainConfig
from tunelab.run.record import read_json, write_json

SPEC_NAME = "spec.json"
RECORD_NAME = "metrics.json"
LOG_NAME = "worker.log"


def describe_error(exc: BaseException) -> str:
    """One line for a failed run: the error, named for what it means to the user."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text}" if text != "MemoryError" else "out of memory (MemoryError)"
    from tunelab.errors import TunelabError

    if isinstance(exc, TunelabError):
        return text
    return f"{exc.__class__.__name__}: {text}"


def failed_record(config: TrainConfig | dict, error: str, *, started_at: str | None = None, wall_time_s: float | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run record (same sections as a successful one) for a run that failed with ``error``."""
    cfg = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    out = Path(cfg.get("out") or ".")
    try:
        from tunelab.run.record import library_versions

        versions = library_versions()
    except Exception:  # noqa: BLE001 - the record must be written even when a library is broken
        versions = {}
    record: dict[str, Any] = {
        "run_info": {
            "run_id": out.name,
            "strategy": cfg.get("strategy"),
            "seed": cfg.get("seed"),
            "data_fraction": cfg.get("data_fraction", 1.0),
            "status": "failed",
            "error": error,
            "started_at": started_at or datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_time_s": None if wall_time_s is None else round(wall_time_s, 3),
        },
        "train_info": {},
        "metrics": {},
        "meta_info": {"model": cfg.get("model"), "task": cfg.get("task"), "data": cfg.get("data"), "versions": versions},
        "config": cfg,
        "artifact": None,
    }
    for key, value in (extra or {}).items():
        _merge(record, key, value)
    return record


def _merge(record: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(record.get(key), dict):
        record[key].update(value)
    else:
        record[key] = value


def run_spec(spec: dict[str, Any], *, progress: bool = False) -> dict[str, Any]:
    """Train the run a spec describes and write its record; failures are recorded, not raised.

    This is the whole worker: ``python -m tunelab.run.worker`` only reads the spec and calls this, and
    ``compare(..., isolate=False)`` calls it in-process.
    """
    from tunelab.run.training import load_data, train

    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    extra = spec.get("extra_record") or {}
    config: TrainConfig | dict = dict(spec["config"])
    out = Path(spec["config"]["out"])
    split_seed = spec.get("split_seed")
    try:
        config = TrainConfig.from_dict(spec["config"], where="worker spec").validate()
        data = None
        if split_seed is not None and split_seed != config.seed:
            # same split and training subset as the comparison's other seeds; only init and order vary
            data = load_data(config.replace(seed=split_seed))
        record = train(config, data=data, progress=progress)
    except KeyboardInterrupt as exc:  # Ctrl-C: training saved a checkpoint (tunelab.run.resilience); record and stop
        error = "interrupted: " + (" ".join(str(exc).split()) or "Ctrl-C") + " (tunelab compare --resume continues it)"
        record = failed_record(config, error, started_at=started, wall_time_s=time.perf_counter() - t0, extra=extra)
        record["run_info"]["split_seed"] = split_seed
        write_json(out / RECORD_NAME, record)
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one run is recorded and the comparison goes on
        error = describe_error(exc)
        print(f"tunelab worker: run {out.name} failed: {error}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        record = failed_record(config, error, started_at=started, wall_time_s=time.perf_counter() - t0, extra=extra)
        record["run_info"]["split_seed"] = split_seed
        record["run_info"]["cpu_time_s"] = _cpu_seconds()
        _release_memory()
        write_json(out / RECORD_NAME, record)
        return record
    record["run_info"]["split_seed"] = split_seed if split_seed is not None else config.seed
    record["run_info"]["cpu_time_s"] = _cpu_seconds()
    for key, value in extra.items():
        _merge(record, key, value)
    write_json(out / RECORD_NAME, record)
    return record


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
    import logging
    import os
    import warnings

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tunelab.run.worker SPEC.json", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="tunelab: warning: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    spec = read_json(argv[0])
    try:
        record = run_spec(spec, progress=bool(spec.get("progress", False)))
    except KeyboardInterrupt:
        return 130
    return 0 if record["run_info"]["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
