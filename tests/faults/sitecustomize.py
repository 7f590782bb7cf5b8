"""Test-only faults for tunelab subprocesses: put this folder first on the subprocess's PYTHONPATH.

Python imports ``sitecustomize`` at start-up; when one of these variables is set, this one patches
:func:`tunelab.run.resilience.save_checkpoint_atomically` (production code has no fault hooks):

``TUNELAB_FAULT_KILL_IN_SAVE_AT_STEP=N``
    SIGKILL the process in the middle of writing the checkpoint of optimizer step N: after the
    Trainer wrote its files, before the completion marker and the rename.
``TUNELAB_FAULT_PAUSE_AFTER_SAVE_AT_STEP=N:SECONDS``
    Pause right after checkpoint N is complete (until Ctrl-C or SECONDS), so a test can kill or
    interrupt the run there.
``TUNELAB_STACKS_ON_SIGUSR1=1``
    Print every thread's Python stack to stderr on SIGUSR1 (:mod:`faulthandler`): a test whose launch outlives its
    time asks each process where it stands before killing it.
``TUNELAB_PROBE_GROUP_AT_EXIT=1``
    Print, as the very last thing at exit, whether torch.distributed's default process group still stands, and how
    many of gloo's threads are still alive; and, when the group is destroyed, how many DistributedDataParallel
    wrappers are still in memory (reachable or not): one freed after the group frees it with the GIL held.
"""

from __future__ import annotations

import os

KILL_IN_SAVE_ENV = "TUNELAB_FAULT_KILL_IN_SAVE_AT_STEP"
PAUSE_AFTER_SAVE_ENV = "TUNELAB_FAULT_PAUSE_AFTER_SAVE_AT_STEP"
GROUP_AT_EXIT_ENV = "TUNELAB_PROBE_GROUP_AT_EXIT"
STACKS_ENV = "TUNELAB_STACKS_ON_SIGUSR1"


def _install() -> None:
    import signal
    import time

    from tunelab.run import resilience

    original = resilience.save_checkpoint_atomically
    kill_at = os.environ.get(KILL_IN_SAVE_ENV)
    pause_at, _, pause_s = os.environ.get(PAUSE_AFTER_SAVE_ENV, "").partition(":")

    def save_checkpoint_atomically(trainer, save):
        step = str(trainer.state.global_step)

        def save_then_die():
            save()
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        target = original(trainer, save_then_die)
        if step == pause_at:
            deadline = time.monotonic() + float(pause_s)
            while time.monotonic() < deadline and not resilience._interrupt_requested.is_set():
                time.sleep(0.02)
        return target

    resilience.save_checkpoint_atomically = save_checkpoint_atomically


if os.environ.get(KILL_IN_SAVE_ENV) or os.environ.get(PAUSE_AFTER_SAVE_ENV):
    _install()


def _report_group_at_exit() -> None:
    """Registered first, so it runs last at exit: print whether torch.distributed's default group still stands
    (in the processes a launcher started, not in the launcher)."""
    import atexit

    if "LOCAL_RANK" not in os.environ:
        return

    import torch.distributed as dist

    destroy = dist.destroy_process_group

    def counting_destroy(*args, **kwargs):
        import gc

        from torch.nn.parallel import DistributedDataParallel

        alive = sum(1 for o in gc.get_objects() if isinstance(o, DistributedDataParallel))
        print(f"DDP wrappers at the group's destruction: {alive}", flush=True)
        return destroy(*args, **kwargs)

    dist.destroy_process_group = counting_destroy

    def report() -> None:
        import sys

        dist = sys.modules.get("torch.distributed")
        print(f"process group at exit: {'standing' if dist and dist.is_initialized() else 'destroyed'}", flush=True)
        # gloo's own threads (named by PyTorch on Linux): the group's destructor joins them
        tasks = f"/proc/{os.getpid()}/task"
        names = []
        for t in os.listdir(tasks) if os.path.isdir(tasks) else []:
            try:
                names.append(open(f"{tasks}/{t}/comm").read().strip())
            except OSError:  # a thread that ended between the listing and the read: not alive
                continue
        print(f"gloo threads at exit: {sum(n.startswith(('pt_gloo', 'gloo_')) for n in names)}", flush=True)

    atexit.register(report)


if os.environ.get(GROUP_AT_EXIT_ENV):
    _report_group_at_exit()


if os.environ.get(STACKS_ENV):
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)
