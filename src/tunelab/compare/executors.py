"""Where the runs of a comparison execute: here, one fresh process after another (the default), or as
Ray tasks spread over a cluster.

An executor takes a round of :class:`Job` s (one run each: its worker spec and folder) and returns their
run records in the same order, calling ``on_start`` / ``on_done`` as each starts and finishes. A run that
fails in any way (an error, a killed process, a lost Ray worker) comes back as a failed record, written
to its folder, and the others go on. ``compare`` hands an executor every run it does not reuse; a
planner that decides in rounds (successive halving, say) hands it one round at a time.

- :class:`LocalExecutor`: each run in a fresh ``python -m tunelab.run.worker`` process on this machine
  (:func:`execute`), one after another, so each run's peak memory is its own.
- :class:`RayExecutor`: each run as a Ray task holding ``run_cpus`` CPUs and ``run_gpus`` GPUs, as many at
  once as the cluster has room for; inside the task the run still trains in a fresh process. Ray is an
  optional dependency (``pip install 'tunelab[ray]'``). On a cluster of several machines, tunelab must be
  installed on every node and ``--out`` must be a folder every node sees (a shared filesystem): each run
  writes its artifact and record there, and ``--resume`` reads them back.

    >>> from tunelab.compare.executors import RayExecutor
    >>> compare(base, ["head", "lora"], executor=RayExecutor(address="auto", run_cpus=4))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tunelab.errors import ConfigError
from tunelab.io import write_json
from tunelab.run.record import RunRecord
from tunelab.run.worker import RECORD_NAME, run_spec

#: ``run_info.status`` of a run an executor did not start because it would not have ended before its
#: job's ``deadline`` (its record is returned, never written: the run did not happen).
SKIPPED = "skipped"
#: How the error of a run interrupted at its job's ``deadline`` begins.
BUDGET_STOP = "stopped when the comparison's time budget ran out"


@dataclass
class Job:
    """One run for an executor: the worker's spec (:mod:`tunelab.run.worker`) and the run's folder.

    ``deadline`` (a ``time.time()`` value) is when the comparison's budget ends: a run still training
    then is interrupted (SIGINT: it finishes its step and saves a checkpoint; killed ``grace_s`` later if
    still running) and recorded as failed with :data:`BUDGET_STOP`. ``start_by`` is the latest time at
    which it may start: later, it is not started and comes back with status :data:`SKIPPED`.
    """

    run_id: str
    spec: dict[str, Any]
    folder: Path
    timeout_s: float | None = None
    deadline: float | None = None
    start_by: float | None = None
    grace_s: float | None = None


Callback = Callable[[Job], None]
DoneCallback = Callable[[Job, RunRecord], None]


class Executor(Protocol):
    """Runs a round of jobs and returns their records in the jobs' order; never raises for a failed run."""

    concurrent: bool
    """Whether runs overlap (progress lines then name their run)."""

    def run(self, jobs: Sequence[Job], *, on_start: Callback | None = None,
            on_done: DoneCallback | None = None, on_progress: Callback | None = None) -> list[RunRecord]: ...


def execute(spec: dict[str, Any], folder: Path, *, isolate: bool = True, timeout_s: float | None = None,
            on_wait: Callable[[], None] | None = None) -> RunRecord:
    """Run one spec and return its record; a crashed or killed worker is recorded as failed.

    ``isolate=True`` (the default) runs ``python -m tunelab.run.worker`` in a fresh process
    (:func:`tunelab.run.isolate.run_job`), so the run's peak memory is its own; ``isolate=False`` runs
    it in this process (tests, debugging).
    """
    from tunelab.run.isolate import SPEC_NAME, run_job

    if not isolate:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / SPEC_NAME, spec)
        (folder / RECORD_NAME).unlink(missing_ok=True)  # a stale record must not pass for this attempt's
        return run_spec(spec)
    outcome = run_job("tunelab.run.worker", spec, folder, timeout_s=timeout_s, what="the run", result_name=RECORD_NAME,
                      on_wait=on_wait)
    return _record_of(spec, folder, outcome)


def _record_of(spec: dict[str, Any], folder: Path, outcome: Any) -> RunRecord:
    """The record a worker process left, or a failed one saying why it left none."""
    if outcome.result is not None and outcome.child_error is None:
        return RunRecord.from_dict(outcome.result)
    error = outcome.error or f"the worker failed: {outcome.child_error['message']}"  # type: ignore[index]
    record = RunRecord.failure(spec["config"], error, wall_time_s=outcome.seconds, extra=spec.get("extra_record"))
    record.write(folder / RECORD_NAME)
    return record


def stopped_by_budget(record: RunRecord) -> bool:
    """Whether ``record`` is a run that the comparison's time budget left unstarted (:data:`SKIPPED`) or interrupted
    (:data:`BUDGET_STOP`): not a failure of the run, and ``compare --resume`` with a larger budget goes on with it."""
    return record.run_info.status == SKIPPED or str(record.run_info.error or "").startswith(BUDGET_STOP)


def interrupted(record: RunRecord) -> bool:
    """Whether ``record`` is a run stopped by an interrupt (Ctrl-C, SIGINT) other than the time budget's: it saved a
    checkpoint, and ``compare --resume`` finishes it."""
    from tunelab.run.worker import INTERRUPTED

    return not record.succeeded and str(record.run_info.error or "").startswith(INTERRUPTED)


def skipped_record(spec: dict[str, Any], why: str) -> RunRecord:
    """The record of a run that was not started (status :data:`SKIPPED`; not written to its folder)."""
    record = RunRecord.failure(spec["config"], why, wall_time_s=0.0, extra=spec.get("extra_record"))
    record.run_info.status = SKIPPED
    return record


def execute_in_time(spec: dict[str, Any], folder: Path, *, isolate: bool = True, timeout_s: float | None = None,
                    deadline: float | None = None, start_by: float | None = None, grace_s: float | None = None,
                    on_wait: Callable[[], None] | None = None, warm: bool = True) -> RunRecord:
    """:func:`execute` within a job's time limits (see :class:`Job`): not started after ``start_by``;
    interrupted at ``deadline`` (only in a fresh process: ``isolate=False`` cannot be interrupted).
    ``warm=False``: the process starts afresh instead of forking from the warm server (:func:`run_job`)."""
    now = time.time()
    if start_by is not None and now > start_by:
        return skipped_record(spec, f"not started: it was predicted not to end before the budget runs out "
                                    f"({now - start_by:.0f} s too late to start)")
    if deadline is not None and now >= deadline:
        return skipped_record(spec, "not started: the comparison's time budget had run out")
    limit = timeout_s
    if deadline is not None and isolate:
        limit = min(timeout_s if timeout_s is not None else math.inf, deadline - now)
    by_budget = limit is not None and (timeout_s is None or limit < timeout_s)
    if not isolate:
        return execute(spec, folder, isolate=False)
    from tunelab.run.isolate import run_job

    outcome = run_job("tunelab.run.worker", spec, folder, timeout_s=limit, what="the run", result_name=RECORD_NAME,
                      on_wait=on_wait, stop_grace_s=grace_s if by_budget else None, warm=warm)
    record = _record_of(spec, folder, outcome)
    if by_budget and outcome.returncode is None and not record.succeeded:
        into = f" ({outcome.seconds:.0f} s into the run)" if outcome.seconds >= 1 else " as it started"
        record.run_info.error = (f"{BUDGET_STOP}{into}; "
                                 "tunelab compare --resume with a larger --budget-minutes continues it")
        record.write(folder / RECORD_NAME)
    return record


class LocalExecutor:
    """One run after another on this machine, each in a fresh process (``isolate=False``: in this one)."""

    concurrent = False

    def __init__(self, *, isolate: bool = True):
        self.isolate = isolate

    def run(self, jobs: Sequence[Job], *, on_start: Callback | None = None,
            on_done: DoneCallback | None = None, on_progress: Callback | None = None) -> list[RunRecord]:
        records = []
        for job in jobs:
            if job.start_by is not None and time.time() > job.start_by:
                records.append(execute_in_time(job.spec, job.folder, start_by=job.start_by))  # skipped, not run
                continue
            if on_start:
                on_start(job)
            ticks = (lambda job=job: on_progress(job)) if on_progress else None
            record = execute_in_time(job.spec, job.folder, isolate=self.isolate, timeout_s=job.timeout_s,
                                     deadline=job.deadline, grace_s=job.grace_s, on_wait=ticks)
            if on_done:
                on_done(job, record)
            records.append(record)
        return records


def import_ray() -> Any:
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed: pip install 'tunelab[ray]' "
                          "(or pip install 'ray>=2.9'), or use the default --executor local") from None
    return ray


def _ray_task(spec: dict[str, Any], folder: str, timeout_s: float | None, deadline: float | None = None,
              start_by: float | None = None, grace_s: float | None = None) -> dict[str, Any]:
    """What runs on a Ray worker: the run in a fresh process there (within the job's time limits, checked
    when the task starts, which may be later than when it was submitted), its record back as JSON. Not forked
    from a warm server: Ray keeps its workers alive, and each would keep a server's memory on its node."""
    return execute_in_time(spec, Path(folder), isolate=True, timeout_s=timeout_s, deadline=deadline,
                           start_by=start_by, grace_s=grace_s, warm=False).to_dict()


class RayExecutor:
    """Every run as a Ray task with ``run_cpus`` / ``run_gpus``, all submitted at once; Ray runs as many
    together as the cluster has room for. ``address``: an existing cluster (``"auto"``, ``"ray://host:10001"``,
    ``"host:6379"``); ``None`` joins the cluster this process already started, or starts a local one."""

    concurrent = True

    def __init__(self, *, address: str | None = None, run_cpus: float = 1.0, run_gpus: float = 0.0):
        if not run_cpus > 0 or run_gpus < 0:
            raise ConfigError(f"--run-cpus must be positive and --run-gpus at least 0, got {run_cpus:g} and {run_gpus:g}")
        self.ray = import_ray()
        self.address, self.run_cpus, self.run_gpus = address, run_cpus, run_gpus

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        try:
            self.ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {self.address or 'a new local one'}: "
                              f"{(str(exc).splitlines() or [''])[0]}") from exc

    def run(self, jobs: Sequence[Job], *, on_start: Callback | None = None,
            on_done: DoneCallback | None = None, on_progress: Callback | None = None) -> list[RunRecord]:
        if not jobs:
            return []
        self._connect()
        task = self.ray.remote(num_cpus=self.run_cpus, num_gpus=self.run_gpus, max_retries=0)(_ray_task)
        waiting: dict[Any, int] = {}
        for i, job in enumerate(jobs):
            if on_start:
                on_start(job)
            waiting[task.remote(job.spec, str(job.folder), job.timeout_s, job.deadline, job.start_by, job.grace_s)] = i
        records: list[RunRecord | None] = [None] * len(jobs)
        while waiting:
            done, _ = self.ray.wait(list(waiting), num_returns=1, timeout=0.5 if on_progress else None)
            if not done:  # still running: their progress files (where --out is shared) say how far
                for i in waiting.values():
                    on_progress(jobs[i])
                continue
            i = waiting.pop(done[0])
            records[i] = self._gathered(jobs[i], done[0])
            if on_done:
                on_done(jobs[i], records[i])
        return [r for r in records if r is not None]

    def _gathered(self, job: Job, ref: Any) -> RunRecord:
        """The task's record, kept in the run's folder; a task that died is recorded as failed."""
        try:
            record = RunRecord.from_dict(self.ray.get(ref))
        except self.ray.exceptions.RayError as exc:
            text = " ".join(str(exc).split())[:300]
            record = RunRecord.failure(job.spec["config"], f"the run's Ray task failed: {type(exc).__name__}: {text}",
                                       extra=job.spec.get("extra_record"))
            record.write(job.folder / RECORD_NAME)
            return record
        if record.run_info.status != SKIPPED and not (job.folder / RECORD_NAME).is_file():  # the worker's node does not share this folder
            record.write(job.folder / RECORD_NAME)
        return record


def make_executor(name: str, *, isolate: bool = True, address: str | None = None, run_cpus: float | None = None,
                  run_gpus: float | None = None) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``), from the command line's options (``None``: not given)."""
    if name == "local":
        ray_only = [flag for flag, value in (("--address", address), ("--run-cpus", run_cpus), ("--run-gpus", run_gpus))
                    if value is not None]
        if ray_only:  # a value given for nothing (--run-cpus 0 went unchecked, and unused)
            one = len(ray_only) == 1
            raise ConfigError(f"{' and '.join(ray_only)} {'applies' if one else 'apply'} to Ray's tasks, not to local "
                              f"runs: use {'it' if one else 'them'} with --executor ray")
        return LocalExecutor(isolate=isolate)
    if name == "ray":
        return RayExecutor(address=address, run_cpus=1.0 if run_cpus is None else run_cpus,
                           run_gpus=0.0 if run_gpus is None else run_gpus)
    raise ConfigError(f"--executor '{name}' is unknown: use local or ray")
