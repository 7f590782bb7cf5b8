"""Run a job in a fresh Python process, so that its peak memory is its own and a crash takes down only it.

Used by ``compare`` (one process per run: :mod:`tunelab.run.worker`) and by the estimate's probes
(:mod:`tunelab.advice.estimate`). The protocol, both sides in this module:

* the parent (:func:`run_job`) writes the job's spec as JSON into a folder, starts
  ``python -m MODULE SPEC.json RESULT.json`` with its output going to a log file there, and waits
  (with an optional timeout);
* the child's ``__main__`` calls :func:`serve` with a handler: it reads the spec, calls the handler and
  writes what it returns as JSON (atomically) to ``RESULT.json``; a :class:`~tunelab.errors.TunelabError`
  (or any other exception) is written as ``{"error": {"type": ..., "message": ...}}`` instead;
* the parent reads the result back. When there is none, :attr:`JobOutcome.error` says why in one line:
  the timeout, the signal that killed the process (SIGKILL: usually the out-of-memory killer) or the
  exit code, with the last lines of the log.

    outcome = run_job("tunelab.run.worker", spec, Path("runs/lora"), result_name="metrics.json")
    outcome.result or outcome.error
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.io import read_json, write_json

SPEC_NAME = "spec.json"
RESULT_NAME = "result.json"
LOG_NAME = "worker.log"
#: After Ctrl-C the child got the same signal: how long it may take to save a checkpoint and stop.
INTERRUPT_GRACE_S = 120.0


@dataclass
class JobOutcome:
    """What a job in a fresh process left behind."""

    result: Any
    """The JSON the child wrote (``None`` when it wrote nothing readable)."""
    returncode: int | None
    """The exit code (negative: killed by that signal); ``None`` when stopped after the timeout."""
    error: str | None
    """Why there is no result, in one line (``None`` when there is one)."""
    log: Path
    seconds: float

    @property
    def child_error(self) -> dict[str, str] | None:
        """``{"type", "message"}`` when the child reported an exception instead of a result."""
        if isinstance(self.result, dict) and isinstance(self.result.get("error"), dict) and len(self.result) == 1:
            return self.result["error"]
        return None


_TICK_S = 0.5


def run_job(module: str, spec: Any, folder: str | Path, *, timeout_s: float | None = None, what: str = "the job",
            spec_name: str = SPEC_NAME, result_name: str = RESULT_NAME, log_name: str = LOG_NAME,
            on_wait: Callable[[], None] | None = None, stop_grace_s: float | None = None) -> JobOutcome:
    """Run ``python -m module SPEC RESULT`` in ``folder`` and read its result back (see the module docstring).

    ``what`` names the job in :attr:`JobOutcome.error` (``"the worker process was killed by SIGKILL ..."``).
    ``on_wait`` is called about twice a second while the job runs (a progress display). At ``timeout_s`` the
    child is killed; with ``stop_grace_s`` it is first sent SIGINT (a training run finishes its step, saves a
    checkpoint and records itself as interrupted) and killed only if still running that many seconds later.

    Ctrl-C in the parent reaches the child too: the child gets :data:`INTERRUPT_GRACE_S` to stop on
    its own (a training run saves a checkpoint), then the ``KeyboardInterrupt`` is raised here.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = folder / spec_name, folder / result_name, folder / log_name
    write_json(spec_path, spec)
    result_path.unlink(missing_ok=True)  # a stale result must not pass for this attempt's
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, str(spec_path), str(result_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=child_environment())
        returncode = _wait(proc, timeout_s, on_wait, stop_grace_s)
    result = _read_result(result_path)
    error = None if result is not None else _why(what, returncode, timeout_s, log_path)
    return JobOutcome(result, returncode, error, log_path, time.perf_counter() - t0)


def child_environment() -> dict[str, str]:
    """This process's environment, with this tunelab importable first (even when not installed)."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _wait(proc: subprocess.Popen, timeout_s: float | None, on_wait: Callable[[], None] | None = None,
          stop_grace_s: float | None = None) -> int | None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return proc.wait(timeout=left if on_wait is None else min(_TICK_S, left if left is not None else _TICK_S))
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                if on_wait is not None:
                    on_wait()
    except subprocess.TimeoutExpired:
        if stop_grace_s is not None and stop_grace_s > 0:
            proc.send_signal(signal.SIGINT)  # finish the step, save a checkpoint, record the interruption
            try:
                proc.wait(timeout=stop_grace_s)
                return None
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
        proc.wait()
        return None
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=INTERRUPT_GRACE_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        raise


def _read_result(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _why(what: str, returncode: int | None, timeout_s: float | None, log_path: Path) -> str:
    if returncode is None:
        why = f"{what} took longer than {timeout_s:g} s and was stopped"
    elif returncode < 0:
        name = signal_name(returncode)
        why = f"{what} was killed by {name}" + (
            " (on Linux usually the out-of-memory killer: use a smaller --batch-size or --max-length)" if name == "SIGKILL" else ""
        )
    else:
        why = f"{what} exited with code {returncode} without writing its result"
    tail = log_tail(log_path)
    return why + (f"; last output: {tail}" if tail else "") + f" (log: {log_path})"


def signal_name(returncode: int) -> str:
    """``SIGKILL`` for a return code of ``-9``."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def log_tail(log_path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log, joined with `` | ``."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


# ----------------------------------------------------------------------------- the child


def serve(handler: Callable[[Any], Any], argv: list[str] | None = None, *,
          exit_code: Callable[[Any], int] = lambda _result: 0) -> int:
    """The child's ``main``: read the spec (``argv[0]``), write ``handler(spec)`` to ``argv[1]``.

    An exception becomes the result ``{"error": {"type": ..., "message": ...}}`` (exit code 1); Ctrl-C
    writes nothing and exits 130. ``exit_code(result)`` is the exit code of a result.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m MODULE SPEC.json RESULT.json", file=sys.stderr)
        return 2
    quiet_libraries()
    spec = read_json(argv[0])
    try:
        result = handler(spec)
        code = exit_code(result)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - reported to the parent as its result
        import traceback

        traceback.print_exc(file=sys.stderr)
        result, code = {"error": describe_exception(exc)}, 1
    write_json(argv[1], result)
    return code


def describe_exception(exc: BaseException) -> dict[str, str]:
    """``{"type", "message"}`` of an exception; one that is not tunelab's gets its class in the message."""
    from tunelab.errors import TunelabError

    text = " ".join(str(exc).split())
    if isinstance(exc, TunelabError):
        return {"type": type(exc).__name__, "message": text}
    return {"type": "TrainingError", "message": f"{type(exc).__name__}: {text}" if text else type(exc).__name__}


def raise_child_error(error: dict[str, str]) -> None:
    """Raise the tunelab error a child reported (its own class when tunelab has it, else ``TrainingError``)."""
    from tunelab import errors

    cls = getattr(errors, str(error.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.TunelabError)):
        cls = errors.TrainingError
    raise cls(error.get("message") or "failed")


def quiet_libraries() -> None:
    """Warnings as ``tunelab: warning: ...`` lines; no progress bars or library chatter in the log."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="tunelab: warning: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
