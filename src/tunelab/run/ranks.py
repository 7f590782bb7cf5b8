"""One run over several processes: which process writes, which waits, what is gathered.

``tunelab train`` runs unchanged under ``torchrun --nproc_per_node N`` and ``accelerate launch`` (one
machine, or several with ``--nnodes`` and a rendezvous address). What each part does there:

- the ``Trainer`` (through accelerate) shards the training batches across the processes, averages the
  gradients, and gathers every process's predictions before computing the evaluation metrics, so the
  metrics are those of the whole validation / test split;
- tunelab's own side is here, on accelerate's :class:`~accelerate.PartialState`: the main process checks
  and prepares the output folder before the others start (:func:`main_first`), writes the checkpoints'
  shared files, the artifact, ``run_config.yaml`` and ``metrics.json`` (:func:`is_main`); the
  frozen-layer cache is built once per node by the node's main process while the others wait, then read
  from disk (:func:`local_main_first`); peak memory is gathered from every process (:func:`gather`).

In a single process (no ``WORLD_SIZE`` above 1 in the environment) every answer is the trivial one and
accelerate's state is not touched, so that ``TrainingArguments`` sets it up as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("tunelab")


def world_size() -> int:
    """How many processes share this run (``WORLD_SIZE``, set by torchrun and accelerate launch)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def distributed() -> bool:
    """Whether this process is one of several training one run together."""
    return world_size() > 1


def sharded() -> str | None:
    """``"FSDP"`` / ``"DeepSpeed"`` when ``accelerate launch`` was given such a config (weights sharded
    across processes), else ``None`` (plain data parallel, or one process)."""
    true = ("1", "true", "yes")
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in true:
        return "FSDP"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in true:
        return "DeepSpeed"
    return None


def sharding_problem() -> str | None:
    """Why this launch cannot train a tunelab run, when its config shards the weights themselves (FSDP,
    DeepSpeed ZeRO-3): tunelab writes the artifact from the main process's copy of the model, which there
    holds only a shard (gathering the full state dict on every process first is not done yet)."""
    how = sharded()
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
    if how == "FSDP" or (how == "DeepSpeed" and stage == "3"):
        what = "FSDP" if how == "FSDP" else "DeepSpeed ZeRO stage 3"
        return (f"{what} shards the weights across processes, and tunelab writes the model from the main "
                "process's copy, which then holds only a shard: not supported yet; use torchrun / plain "
                "accelerate launch (data parallel) or DeepSpeed ZeRO stage 1 or 2")
    return None


def state() -> Any:
    """accelerate's process state (set up on first use, on the device ``TrainingArguments`` will pick)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def rank() -> int:
    """This process's global index (0 in a single process)."""
    return state().process_index if distributed() else 0


def is_main() -> bool:
    """Whether this process writes the run's files (always, in a single process)."""
    return state().is_main_process if distributed() else True


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first; the others enter it once it is done. When the block
    fails on the main process the others never enter it: the main process reports the error and the
    launcher stops the rest."""
    if not distributed():
        yield
        return
    with state().main_process_first():
        yield


@contextlib.contextmanager
def local_main_first() -> Iterator[None]:
    """:func:`main_first` per node: each machine's first process runs the block before the others there."""
    if not distributed():
        yield
        return
    with state().local_main_process_first():
        yield


def wait_for_everyone() -> None:
    """A barrier across every process (nothing in a single process)."""
    if distributed():
        state().wait_for_everyone()


def gather(value: Any) -> list[Any]:
    """``value`` from every process, in rank order (``[value]`` in a single process)."""
    if not distributed():
        return [value]
    from accelerate.utils import gather_object

    return list(gather_object([value]))


def all_agree(flag: bool) -> bool:
    """Whether ``flag`` holds on every process (a decision all of them must take the same way)."""
    return all(gather(bool(flag)))


@contextlib.contextmanager
def quiet_unless_main() -> Iterator[None]:
    """Warnings from the main process only (each process would print the same ones)."""
    if is_main():
        yield
        return
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
