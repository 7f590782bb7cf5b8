"""One clear progress display for a run: a live bar per phase in a terminal, one line per epoch otherwise.

The Trainer's own display (tqdm bars with evaluation bars nested inside, and raw log dicts such as
``{'loss': '1.594', 'grad_norm': '0.607', ...}`` when tqdm is off) is replaced by :class:`RunProgress`,
a ``TrainerCallback``:

- in a terminal, a single rich bar for training (step, loss, elapsed, ETA) and a transient one for each
  evaluation;
- not in a terminal (a log file, CI, a pipe), one line per epoch: ``epoch 2/3  loss 0.412  validation
  accuracy 0.781  41 s``.

``phase(name, total)`` shows the same kind of bar for work outside the Trainer (the frozen-layer cache).

>>> import io
>>> display = RunProgress(stream=io.StringIO())
>>> display.interactive
False
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback

_METRIC_KEYS = ("accuracy", "f1_macro", "perplexity", "loss")


def _fmt_metric(logs: dict[str, Any]) -> str:
    for key in _METRIC_KEYS:
        full = f"validation_{key}" if f"validation_{key}" in logs else f"eval_{key}"
        if isinstance(logs.get(full), int | float):
            return f"validation {key} {logs[full]:.4g}"
    return ""


class RunProgress(TrainerCallback):
    """The run's progress: live bars in a terminal, one line per epoch elsewhere."""

    def __init__(self, stream=None, *, label: str = ""):
        self.stream = stream or sys.stderr
        self.label = label
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._progress = None
        self._train_task = None
        self._eval_task = None
        self._loss: float | None = None
        self._t0 = time.perf_counter()
        self._epoch_logged = -1

    # -- the bars
    def _start(self):
        if self._progress is None and self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
        return self._progress

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def phase(self, name: str, total: int | None):
        """A bar for work outside the Trainer; yields ``advance(n)``."""
        progress = self._start()
        if progress is None:
            t0 = time.perf_counter()
            yield lambda n=1: None
            self.stream.write(f"{self.label}{name}: {time.perf_counter() - t0:.0f} s\n")
            return
        task = progress.add_task(f"{self.label}{name}", total=total, info="")
        try:
            yield lambda n=1: progress.advance(task, n)
        finally:
            progress.remove_task(task)

    # -- the Trainer's events
    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()
        progress = self._start()
        if progress is not None:
            self._train_task = progress.add_task(f"{self.label}training", total=state.max_steps, info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None and self._train_task is not None:
            info = f"loss {self._loss:.4f}" if self._loss is not None else ""
            self._progress.update(self._train_task, completed=state.global_step, info=info)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and isinstance(logs.get("loss"), int | float):
            self._loss = float(logs["loss"])

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self._progress is None:
            return
        if self._eval_task is None:
            total = len(eval_dataloader) if eval_dataloader is not None and hasattr(eval_dataloader, "__len__") else None
            self._eval_task = self._progress.add_task(f"{self.label}evaluating", total=total, info="")
        self._progress.advance(self._eval_task)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self._progress is not None and self._eval_task is not None:
            self._progress.remove_task(self._eval_task)
        self._eval_task = None
        epoch = int(round(state.epoch or 0))
        if not self.interactive and state.global_step and epoch != self._epoch_logged and state.max_steps:
            self._epoch_logged = epoch
            total = int(round(args.num_train_epochs)) if args.num_train_epochs else "?"
            loss = f"  loss {self._loss:.4g}" if self._loss is not None else ""
            metric = _fmt_metric(metrics or {})
            elapsed = time.perf_counter() - self._t0
            self.stream.write(f"{self.label}epoch {epoch}/{total}{loss}  {metric}  {elapsed:.0f} s\n".replace("    ", "  "))
            self.stream.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None and self._train_task is not None:
            self._progress.update(self._train_task, completed=state.global_step)
        self._stop()


@contextmanager
def library_bars_off():
    """Inside the block transformers' and datasets' own tqdm bars (loading weights, tokenizing, writing
    shards) stay quiet: the run's display says what phase it is in. Restored afterwards."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_was, ds_was = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if hf_was:
            hf_logging.enable_progress_bar()
        if ds_was:
            datasets.enable_progress_bars()


# ----------------------------------------------------------------------------- a run seen from outside

PROGRESS_NAME = "progress.json"
_WRITE_EVERY_S = 1.0


class ProgressFile(TrainerCallback):
    """Writes ``<out>/progress.json`` (step, steps, epoch, loss, seconds) at most once a second, so that a
    comparison (or a user in another terminal) can follow a run in another process."""

    def __init__(self, out_dir):
        from pathlib import Path

        self.path = Path(out_dir) / PROGRESS_NAME
        self._last = 0.0
        self._loss: float | None = None
        self._t0 = time.perf_counter()

    def _write(self, state, phase: str, force: bool = False) -> None:
        now = time.perf_counter()
        if not state.is_world_process_zero or (not force and now - self._last < _WRITE_EVERY_S):
            return
        self._last = now
        from tunelab.io import write_json

        write_json(self.path, {"phase": phase, "step": state.global_step, "max_steps": state.max_steps,
                               "epoch": state.epoch, "loss": self._loss, "elapsed_s": round(now - self._t0, 1)})

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()
        self._write(state, "training", force=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and isinstance(logs.get("loss"), int | float):
            self._loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        self._write(state, "training")

    def on_evaluate(self, args, state, control, **kwargs):
        self._write(state, "evaluating", force=True)

    def on_train_end(self, args, state, control, **kwargs):
        self._write(state, "finishing", force=True)


def read_progress(folder) -> dict[str, Any] | None:
    """The latest ``progress.json`` of a run folder, or ``None`` (not started, or being replaced)."""
    import json
    from pathlib import Path

    try:
        return json.loads((Path(folder) / PROGRESS_NAME).read_text())
    except (OSError, ValueError):
        return None


def mark_done(folder) -> None:
    """Say in ``progress.json`` that the run has finished (its record is written): it kept the phase of its last
    evaluation ("evaluating") for good."""
    from pathlib import Path

    from tunelab.io import write_json

    state = read_progress(folder)
    if state is not None:
        write_json(Path(folder) / PROGRESS_NAME, {**state, "phase": "done"})
