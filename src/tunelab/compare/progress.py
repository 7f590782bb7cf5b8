"""What a comparison shows while it runs: the run in progress (its steps, loss and epoch, read from the
``progress.json`` its process writes) and the whole comparison's progress with an ETA.

In a terminal: two live bars, the current run's and the comparison's. Elsewhere (a log file, CI): one
line each time the current run finishes an epoch, with the overall ETA. The ETA of a run not started
yet comes from what this comparison has measured so far for its strategy, else from the advice before
training's cost estimate (``tunelab recommend``), else from the mean of the finished runs.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class CompareDisplay:
    """Progress of a comparison's runs; ``say`` prints a line (above the live bars in a terminal)."""

    def __init__(self, jobs: list[Any], strategy_of: Callable[[Any], str], say: Callable[[str], None],
                 estimates: dict[str, float] | None = None, stream=None, scope: str = "comparison"):
        self.jobs, self.strategy_of, self._say = list(jobs), strategy_of, say
        # what the jobs and their ETA are: the comparison, or one of its rounds (then the ETA leaves later rounds out)
        self.scope = scope
        self.estimates = dict(estimates or {})
        self.stream = stream or sys.stdout
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.measured: dict[str, list[float]] = {}
        self.finished: set[str] = set()
        self._started: dict[str, float] = {}
        self._epoch: dict[str, int] = {}
        self._live = None
        self._run_task = self._all_task = None

    # -- lines and bars
    def say(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        else:
            self._say(text)

    def __enter__(self) -> CompareDisplay:
        if self.interactive and self.jobs:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=Console(file=self.stream))
            self._live.start()
            self._all_task = self._live.add_task(self.scope, total=len(self.jobs), info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- the executor's events
    def start(self, job: Any) -> None:
        self._started[job.run_id] = time.perf_counter()
        if self._live is not None:
            if self._run_task is not None:
                self._live.remove_task(self._run_task)
            self._run_task = self._live.add_task(f"  {job.run_id}", total=None, info="starting")
            self._live.update(self._all_task, info=f"ETA {_minutes(self.eta())}")

    def progress(self, job: Any) -> None:
        from tunelab.run.progress import read_progress  # it imports transformers: not at `tunelab --help`

        state = read_progress(job.folder)
        if not state or not state.get("max_steps"):
            return
        loss = f"loss {state['loss']:.4f}" if isinstance(state.get("loss"), int | float) else ""
        if self._live is not None and self._run_task is not None:
            self._live.update(self._run_task, completed=state["step"], total=state["max_steps"],
                              info=f"{state.get('phase', '')} {loss}".strip())
            self._live.update(self._all_task, info=f"ETA {_minutes(self.eta(job, state))}")
            return
        epoch = int(state.get("epoch") or 0)
        if epoch > self._epoch.get(job.run_id, 0):
            self._epoch[job.run_id] = epoch
            self.say(f"    {job.run_id}: epoch {epoch}, step {state['step']}/{state['max_steps']}"
                     f"{', ' + loss if loss else ''}; {self.scope} ETA {_minutes(self.eta(job, state))}")

    def done(self, job: Any, seconds: float | None = None) -> None:
        took = seconds if seconds is not None else time.perf_counter() - self._started.get(job.run_id, time.perf_counter())
        self.measured.setdefault(self.strategy_of(job), []).append(took)
        self.finished.add(job.run_id)
        if self._live is not None:
            self._live.update(self._all_task, completed=len(self.finished), info=f"ETA {_minutes(self.eta())}")

    # -- the estimate
    def expected_s(self, strategy: str) -> float | None:
        """How long a run of ``strategy`` is expected to take."""
        if self.measured.get(strategy):
            return statistics.fmean(self.measured[strategy])
        if strategy in self.estimates:
            return self.estimates[strategy]
        every = [t for times in self.measured.values() for t in times]
        return statistics.fmean(every) if every else None

    def eta(self, current: Any = None, state: dict | None = None) -> float | None:
        """Seconds until every run is done: the current run's rest (from its steps) and the runs to come."""
        total = 0.0
        for job in self.jobs:
            if job.run_id in self.finished:
                continue
            expected = self.expected_s(self.strategy_of(job))
            if current is not None and job.run_id == current.run_id and state and state.get("step"):
                elapsed = time.perf_counter() - self._started.get(job.run_id, time.perf_counter())
                expected = elapsed * state["max_steps"] / state["step"]
                total += max(0.0, expected - elapsed)
                continue
            if expected is None:
                return None
            started = self._started.get(job.run_id)
            total += max(0.0, expected - (time.perf_counter() - started if started else 0.0))
        return total
