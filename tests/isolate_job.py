"""A job for ``tests/test_isolate.py``: ``python -m isolate_job SPEC.json RESULT.json``.

The spec's ``action``: ``kill`` (SIGKILL itself), ``sleep`` (``seconds``), ``fail`` (raise), ``memory`` (import what
a job imports, then return the MiB of file pages, the libraries' code, resident here and in its parent); otherwise it
returns where it ran: its pid, its parent's, the ``ISOLATE_JOB_MARK`` variable and its working folder.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from tunelab.run.isolate import serve


def _handle(spec: dict) -> dict:
    print("isolate_job says hello", flush=True)
    action = spec.get("action")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "sleep":
        time.sleep(float(spec["seconds"]))
    if action == "fail":
        raise ValueError("the spec asked this job to fail")
    if action == "memory":
        import importlib

        from tunelab.run.isolate import WARM_MODULES

        for module in WARM_MODULES:
            importlib.import_module(module)
        return {"rss_file_mb": _rss_file_mb("self"), "parent_rss_file_mb": _rss_file_mb(os.getppid())}
    return {"pid": os.getpid(), "ppid": os.getppid(), "mark": os.environ.get("ISOLATE_JOB_MARK"), "cwd": os.getcwd(),
            "warnings": os.environ.get("PYTHONWARNINGS")}


def _rss_file_mb(pid) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:")) / 1024


def main(argv: list[str] | None = None) -> int:
    return serve(_handle, argv)


if __name__ == "__main__":
    sys.exit(main())
