"""Never lose a run: atomic checkpoints, resume, Ctrl-C, and guards that stop a run going wrong.

What tunelab guarantees about the files it writes:

- A checkpoint is written into a temporary folder beside its target (``checkpoints/.tmp-checkpoint-N-*``),
  flushed, given a completion marker (``.tunelab-complete``) and renamed into place; only then is the
  previous checkpoint removed. A kill at any moment leaves the last complete checkpoint intact, and
  ``--resume`` only ever picks a checkpoint with the marker. Leftover temporaries are removed on the
  next run.
- Ctrl-C (SIGINT) finishes the current optimizer step, saves a checkpoint and raises
  :class:`RunInterrupted` (the CLI prints how to resume and exits with 130). A second Ctrl-C stops at once.
- A non-finite loss or gradient stops the run naming the step, the parameter and the likely cause.
- Out of memory: the batch is halved and gradient accumulation doubled (same effective batch).
- Weights tunelab writes are safetensors; a pickled weight file is loaded only if
  ``torch.load(weights_only=True)`` accepts it.

>>> from tunelab.run.resilience import last_complete_checkpoint
>>> last_complete_checkpoint("runs/minilm-rotten-tomatoes-full/checkpoints")  # doctest: +SKIP
PosixPath('runs/minilm-rotten-tomatoes-full/checkpoints/checkpoint-400')
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tunelab.errors import ModelError, TrainingError, TunelabError, first_line, setting
from tunelab.io import MARKER, TMP, atomic_dir, remove_quietly, remove_tree
from tunelab.run.isolate import interrupt_seen
from tunelab.run.ranks import Launch

CHECKPOINTS = "checkpoints"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
log = logging.getLogger("tunelab")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


_interrupt_requested = threading.Event()


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after saving a checkpoint; ``str()`` says how to resume."""

    def __init__(self, message: str, checkpoint: Path | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


# ----------------------------------------------------------------------------- checkpoints on disk


def checkpoint_step(path: Path) -> int | None:
    match = _CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def complete_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoints in ``folder`` that carry the completion marker, oldest (lowest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and checkpoint_step(p) is not None and (p / MARKER).is_file()
    ]
    return sorted(found, key=checkpoint_step)


def last_complete_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint that was completely written, or ``None``."""
    done = complete_checkpoints(folder)
    return done[-1] if done else None


def clean_checkpoint_temporaries(folder: str | Path) -> list[Path]:
    """Remove what an interrupted save left in tunelab's own checkpoints folder: ``.tmp-*`` folders
    and ``checkpoint-N`` folders without the completion marker. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        partial = checkpoint_step(p) is not None and not (p / MARKER).is_file()
        if p.name.startswith(TMP) or partial:
            remove_quietly(p)
            removed.append(p)
    return removed


TIME_FILE = "tunelab_time.json"
"""In each checkpoint: the run's training seconds up to it (periodic evaluations out), which a resumed run adds."""


def write_train_seconds(checkpoint: str | Path, seconds: float, launch: Launch | None = None, data: str | None = None) -> None:
    """Beside the training seconds, how the checkpoint was launched (a :class:`~tunelab.run.ranks.Launch`: processes,
    processes per machine, launcher and its options) and on which data (the run's data fingerprint): a resume must take as many
    processes, and the same data, and its command is said from the launch."""
    launch = launch or Launch()
    facts = {"train_seconds": round(float(seconds), 3), "world_size": int(launch.processes),
             "local_world_size": int(launch.per_machine), "launcher": launch.launcher,
             "launcher_options": launch.options, "data_fingerprint": data}
    (Path(checkpoint) / TIME_FILE).write_text(json.dumps(facts) + "\n")


def checkpoint_launch(checkpoint: str | Path) -> Launch | None:
    """How ``checkpoint``'s run was launched (a :class:`~tunelab.run.ranks.Launch`; its launcher ``None`` for one saved
    before tunelab kept it), or None for a checkpoint that does not say (saved before tunelab kept its process count)."""
    try:
        facts = json.loads((Path(checkpoint) / TIME_FILE).read_text())
        world, local, launcher = facts.get("world_size"), facts.get("local_world_size", facts.get("world_size")), facts.get("launcher")
        options = facts.get("launcher_options")  # None in a checkpoint saved before tunelab kept them
    except (OSError, ValueError, AttributeError):
        return None
    if not (isinstance(world, int) and world > 0):
        return None
    return Launch(world, local if isinstance(local, int) and local > 0 else world,
                  launcher if isinstance(launcher, str) else None, options if isinstance(options, str) else "")


def checkpoint_data(checkpoint: str | Path) -> str | None:
    """The fingerprint of the data ``checkpoint`` was trained on (None for one saved before tunelab kept it)."""
    try:
        value = json.loads((Path(checkpoint) / TIME_FILE).read_text()).get("data_fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def checkpoint_train_seconds(checkpoint: str | Path) -> float:
    """The training seconds a run had spent when it saved ``checkpoint`` (0 for one saved before tunelab kept them)."""
    try:
        value = json.loads((Path(checkpoint) / TIME_FILE).read_text()).get("train_seconds")
    except (OSError, ValueError, AttributeError):
        return 0.0
    return float(value) if isinstance(value, int | float) and value >= 0 else 0.0


def checkpoint_batch_size(checkpoint: str | Path) -> int | None:
    """The per-device batch size a checkpoint was trained with (it may have been lowered on OOM)."""
    state = Path(checkpoint) / "trainer_state.json"
    if not state.is_file():
        return None
    return json.loads(state.read_text()).get("train_batch_size")


def run_is_complete(out: str | Path) -> bool:
    """True when ``out`` holds a successful run (its ``metrics.json`` is written last, atomically)."""
    record = Path(out) / "metrics.json"
    if not record.is_file() or complete_checkpoints(Path(out) / CHECKPOINTS):
        return False
    try:
        return json.loads(record.read_text()).get("run_info", {}).get("status") == "success"
    except (OSError, ValueError, AttributeError):
        return False


def resume_point(out: str | Path) -> Path | None:
    """The checkpoint ``--resume`` continues from (checked for unsafe pickles), or ``None`` to start
    from the beginning. A finished run has nothing to resume: that is an error naming ``--overwrite``."""
    out = Path(out)
    checkpoint = last_complete_checkpoint(out / CHECKPOINTS)
    if checkpoint is not None:
        check_weight_files(checkpoint, headers=True)
        return checkpoint
    if run_is_complete(out):
        raise TunelabError(
            f"the run in {out} already finished (metrics.json is there, no checkpoint left): nothing to resume; "
            f"pass {setting('overwrite', True)} to train it again"
        )
    log.warning("no complete checkpoint in %s: %s starts from the beginning", out / CHECKPOINTS, setting("resume", True))
    return None


def save_checkpoint_atomically(trainer: Any, save: Callable[[], None]) -> Path:
    """Run the Trainer's own checkpoint ``save`` into a temporary folder beside the target, then mark
    it complete, flush it and rename it into place (:func:`tunelab.io.atomic_dir`); only then drop
    older checkpoints.

    ``trainer`` must route its output folder through ``trainer._tunelab_staging`` (see
    :func:`tunelab.run.training.make_trainer_class`).
    """
    from tunelab.run import ranks

    root = Path(trainer.args.output_dir)
    name = f"checkpoint-{trainer.state.global_step}"
    target = root / name
    if ranks.distributed():
        return _save_shared_checkpoint(trainer, save, root, name)
    # an existing target (the same step saved twice, e.g. Ctrl-C on a save step) is replaced by the new one
    with atomic_dir(target) as staging:
        trainer._tunelab_staging = str(staging)
        try:
            save()  # writes staging/checkpoint-N (weights, optimizer, scheduler, RNG, trainer state)
        except (RuntimeError, OSError) as exc:
            raise write_failure(exc, target) from exc
        finally:
            trainer._tunelab_staging = None
        _lift(staging / name)
        # the Trainer also pickles its TrainingArguments; tunelab never reads it, and keeping only files
        # that torch.load(weights_only=True) accepts lets --resume refuse any other pickle
        (staging / "training_args.bin").unlink(missing_ok=True)
    keep = max(1, trainer.args.save_total_limit or 1)
    for stale in complete_checkpoints(root)[:-keep]:
        remove_tree(stale)
    return target


def _save_shared_checkpoint(trainer: Any, save: Callable[[], None], root: Path, name: str) -> Path:
    """:func:`save_checkpoint_atomically` for a run over several processes: they all write into one
    staging folder (the main process the weights, optimizer and trainer state; each its own RNG state),
    then the main process marks it complete and renames it into place while the others wait."""
    from tunelab.run import ranks

    staging, target = root / f"{TMP}{name}-shared", root / name
    if ranks.is_main():
        remove_quietly(staging)  # left by a run killed while saving
        staging.mkdir(parents=True)
    ranks.wait_for_everyone()
    staging.mkdir(parents=True, exist_ok=True)  # another node's own disk, when out/ is not shared
    trainer._tunelab_staging = str(staging)
    try:
        save()
    except (RuntimeError, OSError) as exc:
        raise write_failure(exc, root / name) from exc
    finally:
        trainer._tunelab_staging = None
    ranks.wait_for_everyone()
    if ranks.is_main():
        _lift(staging / name)
        (staging / "training_args.bin").unlink(missing_ok=True)
        with atomic_dir(target) as tmp:  # marker, flush and rename, as for a single process
            tmp.rmdir()
            os.replace(staging, tmp)
        keep = max(1, trainer.args.save_total_limit or 1)
        for stale in complete_checkpoints(root)[:-keep]:
            remove_tree(stale)
    ranks.wait_for_everyone()
    return target


def write_failure(exc: BaseException, target: Path) -> BaseException:
    """A checkpoint's save that failed for want of room or rights, as the :class:`OSError` the command line reports
    in one line: torch's writer says only "unexpected pos" or "file write failed" (a RuntimeError; ``ulimit -f``
    makes it EFBIG), safetensors' "I/O error". Any other failure is returned unchanged (a bug to see whole)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc
    text = str(exc)
    if not any(sign in text for sign in ("unexpected pos", "file write failed", "I/O error", "No space left", "os error")):
        return exc
    return OSError(errno.EIO, f"writing the checkpoint failed ({_short_text(first_line(exc))}; is the disk full?)", str(target))


def _lift(inner: Path) -> None:
    """Move what the Trainer wrote into ``staging/checkpoint-N`` up into ``staging`` itself."""
    for p in list(inner.iterdir()):
        os.replace(p, inner.parent / p.name)
    inner.rmdir()


# ----------------------------------------------------------------------------- pickles


def check_weight_files(folder: str | Path, *, headers: bool = False) -> None:
    """Refuse pickled weight files that need arbitrary code to load, and damaged ones (with ``headers``, also
    safetensors files whose header the file does not cover: a checkpoint cut short by a full disk).

    tunelab writes safetensors only; a ``.bin`` / ``.pt`` / ``.pth`` file from elsewhere is accepted
    only when ``torch.load(weights_only=True)`` can read it (plain tensors and containers).
    """
    from transformers.trainer_pt_utils import safe_globals  # numpy arrays (RNG state) are plain data

    folder = Path(folder)
    if not folder.is_dir():
        return
    import pickle

    from safetensors import safe_open

    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors" and headers:
                with safe_open(path, framework="pt"):  # its header: a truncated file does not cover it
                    pass
            elif path.suffix in PICKLE_SUFFIXES:
                with safe_globals():
                    torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:  # a global that weights_only forbids
            raise ModelError(
                f"refusing to load {path}: it is a pickle that torch.load(weights_only=True) rejects "
                f"({type(exc).__name__}), so it could run code; convert it to safetensors from a trusted source"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - a truncated or damaged file (a disk that filled, a copy cut short)
            said = first_line(exc)
            raise ModelError(f"{path} is damaged ({_short_text(said)}), so {folder.name} cannot be loaded: "
                             f"{_damaged_remedy(folder)}") from exc


def _short_text(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _damaged_remedy(folder: Path) -> str:
    """What to do about a damaged file in ``folder``: a run's checkpoint can be deleted (the run then resumes from
    an earlier one, or starts again); any other folder must be replaced."""
    if folder.parent.name == CHECKPOINTS:
        return (f"delete {folder} and run again with {setting('resume', True)} (from an earlier checkpoint, or from the "
                f"start), or start again with {setting('overwrite', True)}")
    return "replace it with an undamaged copy"


# ----------------------------------------------------------------------------- callbacks


def interrupt_handler() -> Any:
    """The Ctrl-C handler as a ``TrainerCallback`` (the non-finite gradient guard lives in the trainer:
    it reads the gradient norm ``Trainer`` computes at every step)."""
    from transformers import TrainerCallback

    class InterruptHandler(TrainerCallback):
        """First Ctrl-C: finish this optimizer step, save a checkpoint, stop. Second: stop at once."""

        def __init__(self) -> None:
            self.interrupted = False
            self.saved_at: int | None = None  # the step whose end Ctrl-C saved
            self._previous: Any = None

        def install(self) -> None:
            _interrupt_requested.clear()
            if threading.current_thread() is threading.main_thread():
                self._previous = signal.signal(signal.SIGINT, self._on_signal)

        def uninstall(self) -> None:
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None

        def stopped_unfinished(self, state) -> bool:
            """Whether Ctrl-C stopped training before its last step: the run is not over (a resume finishes it)."""
            return self.interrupted and state.global_step < state.max_steps

        def _on_signal(self, signum, frame) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            _interrupt_requested.set()
            interrupt_seen()  # the comparison's stop request that follows is this interrupt, not a second one

        def on_step_end(self, args, state, control, **kwargs):
            if self.interrupted:
                control.should_save = True
                control.should_training_stop = True
                control.should_evaluate = False
                self.saved_at = state.global_step
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.interrupted:  # don't spend an evaluation on the way out: the resumed run makes it (missed_evaluation)
                control.should_evaluate = False
                # Ctrl-C after the epoch's last step had ended: stop here too, saved, instead of one step into the next
                control.should_save = self.saved_at != state.global_step
                control.should_training_stop = True
            return control

    return InterruptHandler()


def missed_evaluation(trainer) -> Any:
    """A ``TrainerCallback`` that, when a run resumes at a step whose evaluation the schedule asks for and the
    checkpoint's history lacks (saved at an epoch's last step, before that epoch's evaluation; or at a step whose
    evaluation Ctrl-C skipped), evaluates once before training goes on: the resumed run's history is the
    uninterrupted one's. (Evaluation leaves the random state alone: the trainer evaluates on a fork of it.)"""
    from transformers import TrainerCallback

    class MissedEvaluation(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            step = state.global_step
            if not step or train_dataloader is None:
                return control
            per_epoch = max(1, len(train_dataloader) // max(1, args.gradient_accumulation_steps))
            due = ((args.eval_strategy == "epoch" and step % per_epoch == 0)
                   or (args.eval_strategy == "steps" and step % int(args.eval_steps) == 0))
            done = any(entry.get("step") == step and "eval_loss" in entry for entry in state.log_history)
            if due and not done:
                trainer.evaluate()
            return control

    return MissedEvaluation()


def interrupted_error(out: Path, step: int, max_steps: int) -> RunInterrupted:
    checkpoint = last_complete_checkpoint(out / CHECKPOINTS)
    saved = f"checkpoint saved in {checkpoint}" if checkpoint else "no checkpoint was saved"
    return RunInterrupted(f"training stopped at step {step} of {max_steps}; {saved}. Resume with: {resume_command(out)}",
                          checkpoint)


def resume_command(out: Path, launch: Launch | None = None) -> str:
    """The command that resumes the run in ``out`` as ``launch`` (a :class:`~tunelab.run.ranks.Launch`; this process's
    own by default) ran it: under its launcher and over as many processes (one process resuming a run of two would
    halve its batch from the checkpoint on)."""
    return _as_launched(f"train --config {Path(out) / 'run_config.yaml'} --resume", launch)


def repeat_command(out: Path, launch: Launch | None = None) -> str:
    """The command that repeats the run in ``out`` from the start, as ``launch`` ran it (:func:`resume_command`)."""
    return _as_launched(f"train --config {Path(out) / 'run_config.yaml'} --overwrite", launch)


def _as_launched(arguments: str, launch: Launch | None) -> str:
    return (launch or Launch.current()).command(arguments)


def with_checkpoint_note(exc: TrainingError, out: Path) -> TrainingError:
    """The same error, saying which checkpoint was kept."""
    checkpoint = last_complete_checkpoint(out / CHECKPOINTS)
    if checkpoint is None:
        return exc
    return TrainingError(
        f"{exc}; the last good checkpoint is kept in {checkpoint} (--resume continues from it)"
    )


# ----------------------------------------------------------------------------- out of memory


def run_with_batch_search(
    attempt: Callable[[int, int], Any],
    *,
    batch_size: int,
    accumulation: int,
    enabled: bool,
    notes: list[str],
) -> Any:
    """Call ``attempt(batch_size, accumulation)``; on an out-of-memory error halve the batch and
    double the accumulation (the effective batch stays ``batch_size * accumulation``) and retry,
    with accelerate's ``find_executable_batch_size``. Each change is appended to ``notes``."""
    from accelerate.utils import find_executable_batch_size

    effective = batch_size * accumulation
    current = batch_size

    def halve() -> int:
        nonlocal current
        lower = current // 2
        if lower >= 1:
            notes.append(
                f"out of memory at batch size {current}: retried with batch size {lower} and "
                f"gradient accumulation {max(1, round(effective / lower))} (effective batch {effective})"
            )
        current = lower
        return lower

    if not enabled:
        return attempt(batch_size, accumulation)

    def run(size: int) -> Any:
        return attempt(size, max(1, round(effective / size)))

    try:
        return find_executable_batch_size(run, starting_batch_size=batch_size, reduce_batch_size_fn=halve)()
    except RuntimeError as exc:
        if "No executable batch size found" in str(exc):
            raise TrainingError(
                "out of memory even at batch size 1: lower --max-length, pick a strategy that trains fewer "
                "weights, or use a machine with more memory"
            ) from exc
        raise


# ----------------------------------------------------------------------------- data order


def epoch_seeded(sampler: Any, seed: int) -> Any:
    """Make a ``LengthGroupedSampler`` draw each epoch's order from ``seed + epoch`` instead of the
    global RNG, so that a run resumed in the middle of any epoch sees exactly the same batches."""
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    if not isinstance(sampler, LengthGroupedSampler):
        return sampler

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self, base: LengthGroupedSampler) -> None:
            self.__dict__.update(base.__dict__)
            # a datasets Column reads one row per index: a plain list makes each epoch's sort ~100x cheaper
            self.lengths = [int(n) for n in base.lengths]
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __iter__(self):
            generator = torch.Generator()
            generator.manual_seed(seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    return EpochSeededLengthGroupedSampler(sampler)
