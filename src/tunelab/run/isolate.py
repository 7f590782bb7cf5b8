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

**Warm start.** A fresh interpreter spends about 5 s (on 2 cores) importing torch, transformers, datasets
and peft before a job's first step, and a comparison starts a process per run. On Linux the jobs are
therefore forked from a *warm server* (:mod:`multiprocessing`'s forkserver, started with the first job,
holding :data:`WARM_MODULES` imported and nothing else: no model, no tensor, no thread pool used): each job
is still a process of its own, with its own peak memory (``VmHWM`` starts at the server's, as a fresh
process's does once it has imported the same libraries: a fork copies only the anonymous memory into the job's resident
set, so the job first maps in the library pages the server has resident, :func:`tunelab.run.heap.adopt_resident_file_pages`,
about 0.1 s; without them its peak was some 100-140 MB below a fresh process's), its own crash, signals and exit code, and its
output in its log. It calls the module's ``main(argv)`` as ``python -m module`` would. Modules read some
environment variables when imported (and some set them: torch, scikit-learn), so this process imports the
same modules before it compares, and the server serves only jobs whose environment is the one it started with
(but for the variables tunelab sets while it runs, read later: ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``); any other job, or every job with ``TUNELAB_WARM_START=0``, starts ``python -m`` afresh. A forked
job's command line (in ``ps``) is the server's, not ``python -m module SPEC RESULT``. Ray's tasks start afresh
(:mod:`tunelab.compare.executors`).

    outcome = run_job("tunelab.run.worker", spec, Path("runs/lora"), result_name="metrics.json")
    outcome.result or outcome.error
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import FLAGS_ENV, as_flags
from tunelab.io import read_json, write_json

SPEC_NAME = "spec.json"
RESULT_NAME = "result.json"
LOG_NAME = "worker.log"
#: After Ctrl-C the child got the same signal: how long it may take to save a checkpoint and stop.
INTERRUPT_GRACE_S = 120.0
#: What a job's process imports before its first step anyway; the warm server imports them once.
WARM_MODULES = ("torch", "sklearn", "datasets", "transformers.trainer", "peft", "tunelab.run.training", "tunelab.run.worker",
                "tunelab.advice.estimate")
#: ``0`` starts every job as a fresh ``python -m`` process (see "Warm start" above).
WARM_START_ENV = "TUNELAB_WARM_START"


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
            on_wait: Callable[[], None] | None = None, stop_grace_s: float | None = None,
            warm: bool = True) -> JobOutcome:
    """Run ``python -m module SPEC RESULT`` in ``folder`` and read its result back (see the module docstring).

    ``what`` names the job in :attr:`JobOutcome.error` (``"the worker process was killed by SIGKILL ..."``).
    ``on_wait`` is called about twice a second while the job runs (a progress display). At ``timeout_s`` the
    child is killed; with ``stop_grace_s`` it is first sent SIGINT (a training run finishes its step, saves a
    checkpoint and records itself as interrupted) and killed only if still running that many seconds later.
    ``warm=False`` starts ``python -m module`` afresh rather than forking from the warm server.

    Ctrl-C in the parent reaches the child too: the child gets :data:`INTERRUPT_GRACE_S` to stop on
    its own (a training run saves a checkpoint), then the ``KeyboardInterrupt`` is raised here.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = folder / spec_name, folder / result_name, folder / log_name
    write_json(spec_path, spec)
    result_path.unlink(missing_ok=True)  # a stale result must not pass for this attempt's
    t0 = time.perf_counter()
    argv = [str(spec_path), str(result_path)]
    warm = warm and _import_warm_modules()
    env = child_environment()
    with open(log_path, "a", encoding="utf-8") as log:  # an earlier attempt's output (a resumed run's) is kept
        if log.tell():
            log.write(f"\n{AGAIN_MARK} at {time.strftime('%Y-%m-%d %H:%M:%S')}; the output above is an earlier "
                      "attempt's ---\n")
            log.flush()
        proc = _start_warm(module, argv, log_path, env) if warm else None
        if proc is None:
            proc = subprocess.Popen([sys.executable, "-m", module, *argv], stdout=log, stderr=subprocess.STDOUT, env=env)
        # the limit counts from the call, so starting the warm server (imports, seconds) spends it too: a
        # budget's deadline is a time on the clock, not an allowance for the job's own process
        left = None if timeout_s is None else max(0.0, timeout_s - (time.perf_counter() - t0))
        returncode = _wait(proc, left, on_wait, stop_grace_s)
    result = _read_result(result_path)
    error = None if result is not None else _why(what, returncode, timeout_s, log_path)
    return JobOutcome(result, returncode, error, log_path, time.perf_counter() - t0)


#: The line a job's log gets before each attempt after the first (a resumed run's): the log keeps every attempt.
AGAIN_MARK = "--- tunelab: this job again"

PARENT_ENV = "TUNELAB_JOB_PARENT"
"""A job's environment names the process that started it (:func:`stop_with_parent`)."""
PARENT_POLL_S = 2.0


TRACKER_QUIET = "ignore::UserWarning:multiprocessing.resource_tracker"


def _tracker_quiet(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with :data:`TRACKER_QUIET` added to its ``PYTHONWARNINGS`` (once; the caller's filters kept)."""
    current = env.get("PYTHONWARNINGS", "")
    added = current if TRACKER_QUIET in current.split(",") else f"{current},{TRACKER_QUIET}" if current else TRACKER_QUIET
    return {**env, "PYTHONWARNINGS": added}


_environ_held = threading.Lock()


@contextlib.contextmanager
def _quiet_resource_tracker():
    """The tracker that multiprocessing starts beside the warm server reports, as it stops, the semaphores that jobs
    stopped by a budget or a kill could not release ("There appear to be 1 leaked semaphore objects"), and removes
    them itself: noise at the end of a comparison. Only its own warnings are ignored. It (and the server) read the
    filter from the environment they start with, which is this process's: the filter is in it while they start (this
    context) and taken out again after, so that the caller's process keeps the environment it had (a comparison left
    PYTHONWARNINGS set in a notebook's process, and in every process it started afterwards)."""
    with _environ_held:  # another thread's jobs start here too: one at a time, each restoring what it found
        before = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = _tracker_quiet(os.environ)["PYTHONWARNINGS"]
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("PYTHONWARNINGS", None)
            else:
                os.environ["PYTHONWARNINGS"] = before


STRATEGIES_ENV = "TUNELAB_STRATEGY_MODULES"
"""JSON ``{module: [folder, [class, ...]]}``: the modules of the strategy classes the parent registered outside
tunelab (plugins, a user's own module), each with the folder it imports from and the classes it holds; a job
imports them and registers those classes too (:func:`import_strategy_modules`)."""


def strategy_modules() -> dict[str, list]:
    """The modules of the registered strategies that are not tunelab's own, with the folder each imports from
    (``register_strategy`` in a module next to the user's script: the job's path lacks that folder) and the qualified
    names of the registered classes it defines. A class defined in the running script (``__main__``) has no module a
    job could import: :func:`unimportable`."""
    from tunelab.strategies import STRATEGIES

    out: dict[str, list] = {}
    for cls in STRATEGIES.values():
        name = cls.__module__
        module = sys.modules.get(name)
        if name.startswith("tunelab.") or name == "__main__" or module is None:
            continue
        file = getattr(module, "__file__", None)
        folder = str(Path(file).resolve().parents[name.count(".")]) if file else ""
        out.setdefault(name, [folder, []])[1].append(cls.__qualname__)
    return out


def unimportable(names: list[str]) -> list[str]:
    """Those of the strategies ``names`` that a job process cannot know: defined in the running script."""
    from tunelab.strategies import STRATEGIES

    return [n for n in names if n in STRATEGIES and STRATEGIES[n].__module__ == "__main__"]


def unimportable_problems(names: list[str], what: str, caller: str) -> list[str]:
    """One line for each of the strategies ``names`` that a job process cannot know (:func:`unimportable`), said before
    any work starts: their processes failed with "unknown strategy". ``what`` runs them ("the comparison"), ``caller``
    is the function whose ``isolate=False`` runs them in this process instead ("compare")."""
    return [f"strategy '{name}' is defined in the script that runs {what}, which its processes cannot import: move "
            "its class to a module (register_strategy there), declare it as a 'tunelab.strategies' entry point, or "
            f"{caller}(..., isolate=False)" for name in unimportable(names)]


def import_strategy_modules() -> None:
    """In a job: import the modules of the parent's strategies (:data:`STRATEGIES_ENV`) and register their classes,
    so that a strategy the caller registered at run time is known here too, also where its module does not register
    it on import (the example plugin's class, registered by a script with ``register_strategy``)."""
    from tunelab.strategies import register_strategy

    for name, (folder, classes) in json.loads(os.environ.get(STRATEGIES_ENV) or "{}").items():
        if folder and folder not in sys.path:
            sys.path.append(folder)
        module = importlib.import_module(name)
        for qualname in classes:
            if "<locals>" in qualname:  # defined in a function: only the module's own import can register it
                continue
            cls = module
            for part in qualname.split("."):
                cls = getattr(cls, part)
            register_strategy(cls)  # the same class again (the module registered it on import): harmless


def child_environment() -> dict[str, str]:
    """This process's environment, with this tunelab importable first (even when not installed), naming this
    process as the job's parent (:func:`stop_with_parent`) and the modules of its strategies
    (:func:`strategy_modules`), the resource tracker's warnings off (:func:`_quiet_resource_tracker`) and, under the
    ``tunelab`` command, its messages naming settings as flags (:data:`~tunelab.errors.FLAGS_ENV`)."""
    env = _tracker_quiet(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    modules = strategy_modules()
    if modules:
        env[STRATEGIES_ENV] = json.dumps(modules)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if as_flags():
        env[FLAGS_ENV] = "1"
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ----------------------------------------------------------------------------- warm start

_warm_env: dict[str, str] | None = None
"""The environment the warm server was started with (None: not started)."""
_forked = False


def forked() -> bool:
    """Whether this process is a job forked from the warm server."""
    return _forked


class _ForkedJob:
    """A job forked from the warm server, with the part of :class:`subprocess.Popen` that :func:`_wait` uses."""

    def __init__(self, process: Any):
        self.process = process

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("forked job", timeout)
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.process.pid, sig)

    def kill(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()


def _starts_afresh(env: Mapping[str, str]) -> bool:
    """Whether jobs of ``env`` start afresh whatever the server: not Linux, or ``TUNELAB_WARM_START=0``."""
    return sys.platform != "linux" or env.get(WARM_START_ENV, "1").strip() == "0"


def _import_warm_modules() -> bool:
    """Import :data:`WARM_MODULES` here too (once), before the environment is compared with the server's:
    importing them sets variables (torch: ``KMP_INIT_AT_FORK``, ``TORCHINDUCTOR_CACHE_DIR``, ...) that the
    server then has too. False where jobs start afresh (not Linux, switched off, a module that fails)."""
    if _starts_afresh(os.environ):
        return False
    try:
        for name in WARM_MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the job starts afresh and reports the problem itself
        return False
    return True


def _read_at_import(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the variables tunelab sets while it runs, which are read later than import
    (:data:`tunelab.run.heap.ENV_SET_BY_TUNELAB`): a forked job, given the whole ``env``, follows them."""
    from tunelab.run.heap import ENV_SET_BY_TUNELAB

    return {k: v for k, v in env.items() if k not in (*ENV_SET_BY_TUNELAB, STRATEGIES_ENV, FLAGS_ENV)}  # read by the job


def _warm_context(env: dict[str, str]) -> Any:
    """The forkserver context that serves jobs of ``env`` (started on first use); None when jobs start afresh."""
    global _warm_env
    if _starts_afresh(env) or (_warm_env is not None and _read_at_import(env) != _warm_env):
        return None
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    if _warm_env is None:
        context.set_forkserver_preload(list(WARM_MODULES))
        _warm_env = _read_at_import(env)
    return context


def warm_up() -> None:
    """Start the warm server now, in the background, so that its imports overlap other work (the first job
    otherwise waits for them). Does nothing where jobs start afresh; never fails."""
    if _starts_afresh(os.environ) or _warm_env is not None:
        return
    try:
        import multiprocessing
        from multiprocessing import forkserver

        multiprocessing.get_context("forkserver").set_forkserver_preload(list(WARM_MODULES))
        with _quiet_resource_tracker():
            forkserver.ensure_running()  # the server imports while this process does the same, below
        if _import_warm_modules():
            _warm_context(child_environment())
    except Exception:  # noqa: BLE001 - the first job starts it, or starts afresh
        pass


def stop_warm_server() -> None:
    """Stop the warm server (it frees its memory; the next job starts a new one, with the environment then)."""
    global _warm_env
    if _warm_env is None:
        return
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # noqa: SLF001 - the stdlib has no public stop
    if callable(stop):
        stop()
    _warm_env = None


def _start_warm(module: str, argv: list[str], log_path: Path, env: dict[str, str]) -> _ForkedJob | None:
    """Fork the job from the warm server; None when it cannot be (not Linux, switched off, another
    environment than the server's, the server failed to start)."""
    try:
        context = _warm_context(env)
        if context is None:
            return None
        process = context.Process(target=_forked_main, args=(module, argv, str(log_path), env), daemon=False,
                                  name=f"tunelab {module}")
        # multiprocessing has each job import the parent's __main__ first, as spawn does: a script that calls
        # tunelab without an `if __name__ == "__main__":` guard would run again in every job. A job needs none of it.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            with _quiet_resource_tracker():  # the first job starts the server and its tracker
                process.start()
        finally:
            sys.modules["__main__"] = main
    except Exception:  # noqa: BLE001 - a fresh process does the same job, only slower
        return None
    return _ForkedJob(process)


def _forked_main(module: str, argv: list[str], log_path: str, env: dict[str, str]) -> None:
    """In the forked job: the job's environment and log, then ``module.main(argv)`` (a module without ``main``
    runs as ``__main__``, as ``python -m`` would); exits with its code."""
    global _forked
    _forked = True
    from tunelab.run.heap import adopt_resident_file_pages

    adopt_resident_file_pages(os.getppid())  # its resident set starts where a fresh process's would (see there)
    os.environ.clear()
    os.environ.update(env)
    # the job's PYTHONPATH, as `python -m` would read it: the server's sys.path is the one of the process that
    # started it (a job module on a PYTHONPATH set after that, or set for this job only, was not found)
    for entry in reversed([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = [module, *argv]
    main = getattr(importlib.import_module(module), "main", None)
    if callable(main):
        code = main(argv)
    else:
        import runpy

        code = 0
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    sys.exit(code)


def _wait(proc: subprocess.Popen | _ForkedJob, timeout_s: float | None, on_wait: Callable[[], None] | None = None,
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
        # the interrupt may have reached this process alone (Kubernetes' SIGTERM, `kill PID`): ask the job to stop as
        # Ctrl-C would, which a job that got the terminal's Ctrl-C too takes as the same one (STOP_SIGNAL)
        with contextlib.suppress(OSError):
            proc.send_signal(STOP_SIGNAL)
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
    """The last non-empty lines of a log's last attempt (after its last :data:`AGAIN_MARK` line), joined with ``|``."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    attempt = text.rsplit(AGAIN_MARK, 1)[-1].splitlines()[1 if AGAIN_MARK in text else 0:]  # without the mark's line
    said = [line.strip() for line in attempt if line.strip()]
    return " | ".join(said[-lines:])


# ----------------------------------------------------------------------------- the child


_WATCHED: set[int] = set()
"""The parents a watch thread of this process already watches (one thread each, however many runs)."""


def terminate_as_interrupt() -> None:
    """SIGTERM, the way schedulers and service managers stop a job (SLURM's scancel signals every process of the
    job, Kubernetes and systemd the main one; ``kill``), is taken as Ctrl-C: a training run finishes its step, saves
    a checkpoint and says how to resume, a comparison stops its runs and releases its folder. It used to kill the
    process at once, with no message, losing the steps since the last periodic checkpoint."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: _as_ctrl_c(frame))


STOP_SIGNAL = signal.SIGUSR2
"""What a comparison sends its running job when it is interrupted itself: stop as Ctrl-C would (a training run
finishes its step and saves a checkpoint), unless this interrupt already reached the job (:func:`answer_stop`)."""

_interrupted = threading.Event()
"""Set in a job once an interrupt reached it: a stop request after it is the same interrupt, not a second one."""


def interrupt_seen() -> None:
    """Note, in a job, that an interrupt reached it (a training run's own Ctrl-C handler says so too): a stop request
    that follows is then the same interrupt, passed on by the comparison, and not taken as a second Ctrl-C, which
    stops a run at once, unsaved."""
    _interrupted.set()


def answer_stop() -> None:
    """In a job: the comparison's stop request (:data:`STOP_SIGNAL`) interrupts it as Ctrl-C would, once. An interrupt
    the job already got (Ctrl-C in a terminal reaches the comparison and its jobs alike, and CPython runs SIGINT's
    handler before this one's) makes the request a no-op: the job is stopping already."""

    def on_stop(signum, frame):
        if not _interrupted.is_set():
            _as_ctrl_c(frame)

    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # outside training: noted, then Python's
            signal.signal(signal.SIGINT, _noting_interrupts)
        signal.signal(STOP_SIGNAL, on_stop)


def _as_ctrl_c(frame) -> None:
    """What Ctrl-C does here: SIGINT's own handler (a training run's: finish the step, save, stop), or
    ``KeyboardInterrupt``."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
    else:
        _interrupted.set()
        raise KeyboardInterrupt


def _noting_interrupts(signum, frame):
    """A job's SIGINT handler outside training: Python's own, which notes the interrupt first."""
    _interrupted.set()
    raise KeyboardInterrupt


def answer_interrupts() -> None:
    """In a job: SIGINT raises ``KeyboardInterrupt`` (a training run's own handler makes it a checkpoint) even when the
    job inherited SIGINT ignored. A shell script's ``tunelab compare ... &`` (no job control) starts it that way, and
    every job after it: SIGINT is how tunelab stops its own jobs (the budget, the parent's Ctrl-C, the parent watch
    below), so such a job ran on after its comparison was killed, and outside training sat out the budget's stop
    until the grace period's kill."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_with_parent(poll_s: float = PARENT_POLL_S, parent: int | None = None,
                     on_gone: Callable[[], None] | None = None) -> None:
    """In a job: once the process that started it is gone (killed outright, SIGKILL or the out-of-memory killer, so
    that it could not stop its jobs), interrupt this job as Ctrl-C would: a training run finishes its step, saves a
    checkpoint and records itself as interrupted, instead of training on, orphaned, beside the run a resume starts.
    ``parent``: the process to watch (default: the one a comparison's job names in its environment; a process of a
    run over several passes its launcher, torchrun's agent), ``on_gone``: what to do then instead (default: SIGINT
    to this process)."""
    if parent is None:
        try:
            parent = int(os.environ.get(PARENT_ENV) or 0)
        except ValueError:
            return
    if parent <= 1 or parent == os.getpid() or parent in _WATCHED:
        return
    _WATCHED.add(parent)

    own = parent == os.getppid()  # our own parent: once it dies we are handed to another, even while it lingers

    def gone() -> bool:
        if own and os.getppid() != parent:  # a killed parent stays a zombie until its own parent reaps it
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's (the pid taken again): keep watching
            return False
        return False

    def watch() -> None:
        while not gone():
            time.sleep(poll_s)
        if on_gone is not None:
            on_gone()
        else:
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="tunelab-parent-watch", daemon=True).start()


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
    answer_interrupts()
    answer_stop()
    terminate_as_interrupt()
    stop_with_parent()
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
