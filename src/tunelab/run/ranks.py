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

Under an accelerate config that shards the weights (FSDP 2, DeepSpeed ZeRO-3) the main process's model
holds only a shard: the artifact is written from the state dict gathered from every process
(:func:`gathered_state_dict`), and what cannot be written that way is refused up front
(:func:`sharding_problem`). accelerate applies FSDP and DeepSpeed only on an accelerator; on CPU such a
config trains plain data parallel, which :func:`sharding_ignored` puts in the run's notes.

In a single process (no ``WORLD_SIZE`` above 1 in the environment, nor MPI's under mpirun: :data:`WORLD_SIZE_FROM`) every answer is the trivial one and
accelerate's state is not touched, so that ``TrainingArguments`` sets it up as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tunelab")


# Where a process reads its place in a launch, before any process group exists: accelerate's own lists
# (accelerate.utils.get_cpu_distributed_information, which PartialState reads for a launch over CPUs), the first one set
# winning: torchrun's variables, then those mpirun sets under accelerate launch's MPI launch (Intel MPI / MPICH,
# Open MPI, MVAPICH2). Mirrored, not called: importing accelerate imports torch, seconds on every command's error path;
# tests/test_distributed.py checks them against accelerate's source.
RANK_FROM = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_SIZE_FROM = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_FROM = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
LOCAL_WORLD_SIZE_FROM = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
LAUNCH_VARIABLES = RANK_FROM + WORLD_SIZE_FROM + LOCAL_RANK_FROM + LOCAL_WORLD_SIZE_FROM


def _from_launch(names: tuple[str, ...]) -> int | None:
    """accelerate's ``get_int_from_env``: the first of ``names`` set to a whole number from 0 up (a value that is not a
    number is passed over, where accelerate raises), else ``None``."""
    for name in names:
        try:
            value = int(os.environ.get(name, "-1"))
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


def world_size() -> int:
    """How many processes share this run (``WORLD_SIZE``, set by torchrun and accelerate launch, or an MPI
    implementation's own under mpirun: :data:`WORLD_SIZE_FROM`)."""
    return max(1, _from_launch(WORLD_SIZE_FROM) or 1)


def local_world_size() -> int:
    """How many of them run on this machine (``LOCAL_WORLD_SIZE`` or MPI's; all of them when no variable says)."""
    return max(1, _from_launch(LOCAL_WORLD_SIZE_FROM) or world_size())


def distributed() -> bool:
    """Whether this process is one of several training one run together."""
    return world_size() > 1


LAUNCHERS = (("accelerate launch", "ACCELERATE_MIXED_PRECISION"), ("torchrun", "TORCHELASTIC_RUN_ID"))
"""A launcher, and the variable it sets in every process it starts and nothing else sets: accelerate launch sets its
on every path (its own torchrun, mpirun, or one process), so it is read before torchrun's (which its
``--multi_gpu`` launch also sets); an MPI launch is known by its world size (:data:`WORLD_SIZE_FROM`)."""


def launcher() -> str | None:
    """The launcher that started this process's run: ``"accelerate launch"``, ``"torchrun"``, ``"mpirun"`` (an MPI
    implementation's variables, without accelerate's), or ``None`` for another one, or a single process."""
    if not distributed():
        return None
    for name, variable in LAUNCHERS:
        if os.environ.get(variable) is not None:
            return name
    # WORLD_SIZE is no sign: accelerate sets it in an MPI launch's processes once the process group exists
    return "mpirun" if _from_launch(WORLD_SIZE_FROM[1:]) is not None else None


def launcher_options() -> str:
    """The options of this process's ``accelerate launch`` that chose the launcher which started its processes, as a
    resume must give them again: without them accelerate's single-process launcher starts one process whatever
    ``--num_processes`` says (:func:`processes_ignored`), and the resume is refused for its process count. ``--multi_gpu``
    for a launch through torchrun (``--multi_gpu``, or a config that asks for it: on CPU too, over gloo), unless FSDP,
    DeepSpeed or Megatron-LM asked for it (their config or flag chooses the launcher: ``--multi_gpu`` would turn them
    off); ``--cpu`` for an MPI launch that had it (``ACCELERATE_USE_CPU``, which that launcher sets); else ``""``."""
    if launcher() != "accelerate launch":
        return ""
    env, true = os.environ, ("1", "true", "yes")
    if env.get(dict(LAUNCHERS)["torchrun"]) is not None:
        own = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_MEGATRON_LM")
        return "" if any(env.get(name, "").lower() in true for name in own) else "--multi_gpu"
    return "--cpu" if env.get("ACCELERATE_USE_CPU", "").lower() in true else ""


@dataclass(frozen=True)
class Launch:
    """How a run was launched: its processes, how many of them on each machine, its launcher (:func:`launcher`) and
    the launcher's options that chose how it started them (:func:`launcher_options`). Each checkpoint keeps its run's
    (``resilience.checkpoint_launch``), so that a later process can say how to go on."""

    processes: int = 1
    per_machine: int = 1
    launcher: str | None = None
    options: str = ""

    @classmethod
    def current(cls) -> Launch:
        """This process's launch (one process, no launcher, outside one)."""
        return cls(world_size(), local_world_size(), launcher(), launcher_options())

    def command(self, arguments: str) -> str:
        """The command that runs ``tunelab <arguments>`` as this launch ran: under its launcher, with as many processes
        (one process instead of two would halve each optimizer step's batch). The launch's options tunelab cannot know
        are named in angle brackets; a launcher it does not know is described.

        >>> Launch().command("train --config r.yaml --resume")
        'tunelab train --config r.yaml --resume'
        >>> Launch(2, 2, "torchrun").command("train --config r.yaml --resume")
        'torchrun --nproc_per_node 2 -m tunelab.cli.main train --config r.yaml --resume'
        >>> Launch(2, 2, "accelerate launch", "--multi_gpu").command("train --config r.yaml --resume")
        "accelerate launch --multi_gpu --num_processes 2 <the launch's other options> -m tunelab.cli.main train --config r.yaml --resume"
        """
        world, local = self.processes, min(self.per_machine, self.processes)
        if world <= 1:
            return f"tunelab {arguments}"
        if self.launcher == "torchrun" and local >= world:
            return f"torchrun --nproc_per_node {world} -m tunelab.cli.main {arguments}"
        if self.launcher == "torchrun":
            return (f"torchrun --nnodes {world // local} --nproc_per_node {local} <the launch's rendezvous options> "
                    f"-m tunelab.cli.main {arguments}")
        if self.launcher == "accelerate launch":
            options = f"{self.options} " if self.options else ""
            return (f"accelerate launch {options}--num_processes {world} <the launch's other options> "
                    f"-m tunelab.cli.main {arguments}")
        if self.launcher == "mpirun":
            return f"mpirun -n {world} <the launch's other options> python -m tunelab.cli.main {arguments}"
        return f"the launch that started it, {world} processes, running python -m tunelab.cli.main {arguments}"


def sharding_requested() -> str | None:
    """``"FSDP"`` / ``"DeepSpeed"`` when ``accelerate launch`` was given such a config, else ``None``."""
    true = ("1", "true", "yes")
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in true:
        return "FSDP"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in true:
        return "DeepSpeed"
    return None


def sharded() -> str | None:
    """``"FSDP"`` / ``"DeepSpeed"`` when this run trains under it, else ``None`` (plain data parallel, or one
    process). accelerate applies either only on an accelerator: on CPU (``TrainingArguments(use_cpu=True)``,
    which tunelab sets without CUDA) its ``AcceleratorState`` keeps them off and trains plain data parallel."""
    import torch

    return sharding_requested() if torch.cuda.is_available() else None


def sharding_ignored() -> str | None:
    """The note for a run whose accelerate config asked for FSDP / DeepSpeed on a machine where accelerate
    leaves them off (no GPU), else ``None``."""
    how = sharding_requested()
    if how is None or sharded():
        return None
    return (f"the accelerate config asks for {how}, which accelerate applies only on GPUs: this run trained as plain "
            "data parallel (each process a whole copy of the model)")


def processes_ignored() -> str | None:
    """The note for a process that ``accelerate launch --num_processes N`` started alone, else ``None``.

    accelerate starts several processes only with ``--multi_gpu`` (through torchrun; on a machine without GPUs too,
    over gloo), a config that asks for them, more than one GPU, or mpirun: otherwise, with ``--cpu`` or without it on
    a machine with fewer than 2 GPUs, its single-process launcher starts one process whatever ``--num_processes``
    says, and the run trained there at ``--batch-size``, not at N times it, with nothing said. That launcher sets
    ``MASTER_ADDR`` only when asked for more than one process or machine, and sets no ``WORLD_SIZE``; mpirun's
    launches have their own."""
    env = os.environ
    if distributed() or env.get(dict(LAUNCHERS)["accelerate launch"]) is None:
        return None
    if not env.get("MASTER_ADDR") or any(env.get(k) for k in WORLD_SIZE_FROM[1:]):  # an MPI launch
        return None
    return ("accelerate launch started this process alone whatever --num_processes says (its single-process launcher: "
            "--cpu, or no --multi_gpu on a machine with fewer than 2 GPUs): this run trained in one process, at "
            "--batch-size, not processes times it; for several processes on CPU use accelerate launch --multi_gpu "
            "--num_processes N (gloo) or torchrun --nproc_per_node N")


def zero_stage() -> int | None:
    """The DeepSpeed ZeRO stage of this launch (``None`` without DeepSpeed or when the config does not say)."""
    if sharding_requested() != "DeepSpeed":
        return None
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") or _deepspeed_file().get("zero_optimization", {}).get("stage")
    try:
        return int(stage)
    except (TypeError, ValueError):
        return None


def _deepspeed_file() -> dict[str, Any]:
    """The DeepSpeed JSON config an accelerate config may point to (``deepspeed_config_file``), or ``{}``."""
    import json

    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if not path or not os.path.isfile(path):
        return {}
    try:
        return json.loads(open(path).read())
    except (OSError, ValueError):
        return {}


def shards_weights() -> bool:
    """Whether each process holds only a shard of the weights while training (FSDP, DeepSpeed ZeRO-3): the
    artifact must then be written from the state dict gathered from all of them (:func:`gathered_state_dict`)."""
    return sharded() == "FSDP" or (sharded() == "DeepSpeed" and zero_stage() == 3)


def sharding_problem(strategy: Any, *, merge: bool) -> str | None:
    """Why this launch cannot train a run of ``strategy`` (with ``--merge`` or not), or ``None`` when it can.

    Under FSDP 2 and DeepSpeed ZeRO-3 the main process writes the artifact from the whole state dict gathered
    from every process; what cannot be written that way is refused: FSDP 1 (tunelab gathers FSDP 2's
    ``fully_shard`` state), ZeRO-3 without ``zero3_save_16bit_model`` (no gathered weights), ``--merge``
    (folding an adapter changes the weights in the model, which there holds a shard), and a strategy whose
    own save does not take the gathered state dict (``Strategy.unshardable`` says why)."""
    if not shards_weights():
        return None
    what = "FSDP" if sharded() == "FSDP" else "DeepSpeed ZeRO stage 3"
    if sharded() == "FSDP" and os.environ.get("FSDP_VERSION", "1") != "2":
        return ("FSDP 1 is not supported: tunelab writes the model from FSDP 2's gathered state dict; set "
                "fsdp_version: 2 in the accelerate config's fsdp_config")
    if sharded() == "DeepSpeed" and not _gathers_16bit_weights():
        return ("DeepSpeed ZeRO stage 3 without gathered weights on save: set zero3_save_16bit_model: true in the "
                "accelerate config's deepspeed_config (stage3_gather_16bit_weights_on_model_save in a DeepSpeed JSON)")
    if merge:
        return f"--merge under {what}: folding the adapter changes weights each process holds only a shard of; drop --merge"
    if strategy.unshardable:
        return (f"strategy '{strategy.name}' cannot run under {what}: {strategy.unshardable}; use plain data parallel "
                "(torchrun, or accelerate without FSDP / ZeRO-3)")
    return None


def _gathers_16bit_weights() -> bool:
    env = os.environ.get("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL", "").lower() in ("1", "true", "yes")
    own = _deepspeed_file().get("zero_optimization", {}).get("stage3_gather_16bit_weights_on_model_save")
    return bool(own) if own is not None else env


def gathered_state_dict(trainer: Any) -> dict[str, Any] | None:
    """The whole state dict of the trained model, gathered from every process under FSDP / ZeRO-3 (call it on
    every process: it is a collective; the main process gets the weights, the others an empty dict), or
    ``None`` when every process holds whole weights and the model can be written as it is."""
    if not shards_weights():
        return None
    # accelerate's get_state_dict: FSDP 2's full state dict (offloaded to CPU on rank 0), or DeepSpeed's
    # consolidated 16-bit weights (it needs the engine: the Trainer's model_wrapped)
    return trainer.accelerator.get_state_dict(trainer.model_wrapped)


def state() -> Any:
    """accelerate's process state (set up on first use, on the device ``TrainingArguments`` will pick)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


_shut_down_registered = False


def shut_down_at_exit() -> None:
    """Destroy the process group when this process exits, while Python is still whole (a process of a run over
    several; nothing otherwise), and let its threads go. At exit, not at once: a script may train again.

    Destroying the group is what PyTorch asks of every training process, but it only unregisters it: gloo's worker
    threads (``pt_gloo_runloop``) live on until the group's C++ object is freed, and a worker that is still letting go
    of its last collective (which holds tensors Python made) needs the GIL. When that happens after the interpreter
    began to finalize, the thread is ended mid-destructor and the process dies of SIGABRT ("terminate called without
    an active exception"), failing a launch whose run succeeded (4 in 30 and 1 in 30 runs in two loops under load on 2 cores).
    So the group must be freed here, and by the right owner. The finished run's objects (the DDP wrapper, the Trainer)
    are unreachable by now but in reference cycles, and DDP's C++ ``Reducer`` holds the group too. Freed by the
    Reducer, the group's destructor runs with the GIL held and waits for its threads, which may be waiting for the
    GIL: the process hangs after its run succeeded (seen in a CI run and under ``accelerate launch``, in gdb: the exit
    hook's ``gc.collect()`` → the Reducer → ``~ProcessGroupGloo`` waiting on a mutex). So the cycles are collected
    *first*, while the group is still registered (the Reducer lets go of a group others still hold), and only then
    is the group destroyed: its last owner is then torch's own Python handle, which releases the GIL before freeing
    it and joining its threads. A second collection frees what held the group's handle in a cycle (a group still
    referenced by a caller's own live objects keeps it). Objects a caller froze (``gc.freeze()``) are let back into
    the collection first: the process is ending, and frozen, they would keep the group."""
    global _shut_down_registered
    if _shut_down_registered or not distributed():
        return
    import atexit

    def destroy() -> None:
        import gc

        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            gc.unfreeze()  # a script that froze the finished run's objects (gc.freeze, before forking, say) would keep them
            gc.collect()  # the run's DDP wrapper and its Reducer go while the group stands: none of them is its last owner
            state().destroy_process_group()
            gc.collect()

    atexit.register(destroy)
    _shut_down_registered = True


def launch_rank() -> int:
    """This process's global index as its launcher set it (``RANK`` or MPI's, :data:`RANK_FROM`; 0 in a single
    process), read from the environment: known before the process group exists, and without joining it (:func:`rank`
    does)."""
    return (_from_launch(RANK_FROM) or 0) if distributed() else 0


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK`` or MPI's, :data:`LOCAL_RANK_FROM`; 0 in a single process),
    read from the environment like :func:`launch_rank`."""
    return (_from_launch(LOCAL_RANK_FROM) or 0) if distributed() else 0


def tell_the_launcher(line: str) -> None:
    """Leave the error ``line`` this process says where torchrun's agent reads why a worker failed
    (``TORCHELASTIC_ERROR_FILE``, which torchrun, and accelerate launch through it, set for each worker; nothing
    without one). The agent ends every failed launch with its own traceback and failure summary whatever the worker
    does; with the file, that summary's root cause is tunelab's line instead of "To enable traceback see:
    https://pytorch.org/docs/stable/elastic/errors.html". The form is the one torch's ``ErrorHandler.record_exception``
    writes, without the traceback (the summary shows ``message`` when there is no ``py_callstack``)."""
    import json
    import time

    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w") as f:
            json.dump({"message": {"message": line, "extraInfo": {"timestamp": str(int(time.time()))}}}, f)
    except OSError:  # the line is said on stderr anyway
        pass


FIRST_SAYS_IT_S = 20.0
"""How long a process other than its machine's first waits, on an error every process of the launch meets, for that
first process to say it (:func:`leave_it_to_the_first`)."""


def leave_it_to_the_first() -> bool:
    """Whether this process should keep quiet about an error that every process of the launch meets alike (a bad
    flag or option, ``tunelab compare`` under a launcher): each machine's first process says it, once.

    ``False`` on that first process (and in a single process), which says it at once. Another waits up to
    :data:`FIRST_SAYS_IT_S` first: exiting at once, it could be the first to fail, and the launcher would then stop the
    first process (SIGTERM) before it had said anything. The first one's exit makes the launcher stop this one, which
    then keeps quiet (``True``); still running after the wait (the error was this process's alone, or no launcher
    stops it), it says it itself (``False``)."""
    import time

    if local_rank() == 0:
        return False
    try:
        time.sleep(FIRST_SAYS_IT_S)
    except KeyboardInterrupt:  # SIGTERM from the launcher (tunelab takes it as Ctrl-C)
        return True
    return False


def say_once(line: str) -> None:
    """Say ``line``, an error that every process of the launch meets alike (:func:`leave_it_to_the_first`), on stderr
    once, and leave it for the launcher's failure summary (:func:`tell_the_launcher`) from each process: from one that
    leaves it to the first only after that one has said it. The summary's root cause is the earliest line left there,
    and showed "[rank 1] ..." beside the first's line on stderr when the second process met the error first."""
    import sys

    quiet = leave_it_to_the_first()
    tell_the_launcher(line)
    if not quiet:
        print(line, file=sys.stderr)


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
