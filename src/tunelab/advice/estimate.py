"""Predict a strategy's peak memory and time per epoch on this machine from a few real, timed steps.

Nothing is guessed from parameter counts: the model and strategy are built through tunelab's own path
(:func:`tunelab.run.training.prepare`, then the frozen-layer cache when the run would use it), and a few
optimizer steps run in the same ``TunelabTrainer`` that ``tunelab train`` uses. Then:

* **batch shapes** — training pads each batch to its longest text and groups texts of similar length
  (``group_by_length``). The estimator replays that grouping on the data's real token lengths, so it
  knows the epoch's step count, the longest batch (the sampler puts it first) and the mean padded
  length of the others. The first timed step runs at the longest length (it sets the peak memory, as
  in training); the rest run at the mean padded length. Without ``--data`` every example is
  ``max_length`` tokens long and the epoch is ``num_examples`` (1,000) examples.
  One more step at the longest length follows the timed ones, for memory only: in training, the heap peaks at
  a long batch that comes after shorter ones (measured on minilm, 800 texts of at most 64 tokens: 1,220 MB
  without that step, 1,437 MB with it, 1,593 MB for the whole run in a fresh process).
* **time** — ``time_per_epoch = first step + (steps - 1) × median step time`` after warm-up steps;
  ``train_time_s`` adds the trainer's start-up/tear-down and the other epochs, which is what
  ``tunelab train`` reports as ``train_time_s``. When the frozen-layer cache applies, its one-off build
  is timed on the sample and scaled to the data's token count (``cache_build_s``, reported apart as
  training does).
* **memory** — peak RSS (peak CUDA allocation on a GPU) of a fresh subprocess that only loads, prepares
  and steps this one strategy, so the number is the strategy's own (``isolate=False`` runs in-process:
  faster, but the peak then includes whatever this process held before).
* **large steps** — when ``probe_tokens`` is set and one batch would be more than that many
  token-parameters (parameters × batch × length), the steps run at two small batch sizes and time and
  memory are extrapolated linearly to the requested one (``probe`` says so in the result), never below the
  larger probe's: where the two contradict each other, a note says so (:func:`at_batch_size`).

    tunelab estimate --model minilm --strategy lora --data rotten-tomatoes --max-length 64
    tunelab estimate --model smollm2 --strategy full --batch-size 4 --max-length 256

>>> from tunelab.config import TrainConfig
>>> est = estimate(TrainConfig(model="minilm", strategy="lora", data="rotten-tomatoes"))  # doctest: +SKIP
>>> est["time_per_epoch_s"], est["peak_memory_mb"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config import TrainConfig, as_config, counts_below_one
from tunelab.errors import ConfigError, TrainingError
from tunelab.units import MEMORY_UNIT, format_mb

#: Examples per epoch assumed when no data is given.
DEFAULT_NUM_EXAMPLES = 1000


def step_problems(warmup_steps: int, timed_steps: int, num_examples: int | None = None, *,
                  caller: Any = None) -> list[str]:
    """What is wrong with the steps and examples :func:`estimate` times: each at least 1 (a median after no warm-up
    step read the last step alone), named as the caller spells it (``timed_steps`` is ``--steps``). ``caller``: the
    function whose defaults a step count left out takes (:func:`estimate` by default; ``recommend``'s differ), read
    from its signature. The command calls it before it reads anything; ``estimate`` and ``recommend`` before the data."""
    default = defaults_of(caller or estimate)
    return counts_below_one({"num_examples": (num_examples, "500", f"{DEFAULT_NUM_EXAMPLES}"),
                             "timed_steps": (timed_steps, "10", f"its default, {default['timed_steps']}"),
                             "warmup_steps": (warmup_steps, "1", f"its default, {default['warmup_steps']}")},
                            flags={"timed_steps": "steps"})


def defaults_of(function: Any) -> dict[str, Any]:
    """``function``'s keyword defaults, from its signature: what a message says leaving a setting out means, written
    once, where the default is.

    >>> defaults_of(step_problems)["num_examples"] is None
    True
    """
    import inspect

    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def estimate(
    config: TrainConfig | Mapping[str, Any],
    *,
    data: Any = None,
    use_data: bool = True,
    warmup_steps: int = 3,
    timed_steps: int = 5,
    num_examples: int | None = None,
    probe_tokens: float | None = None,
    isolate: bool = True,
    timeout_s: float | None = None,
    reuse: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Estimate time per epoch and peak memory of training ``config`` (a :class:`TrainConfig` or a dict of its
    settings; see the module docstring).

    ``data``: a :class:`~tunelab.data.TaskData`, or data in memory as :func:`~tunelab.run.training.train` takes it
    (a datasets Dataset / DatasetDict or a pandas DataFrame), to use instead of loading ``config.data``;
    ``use_data=False`` ignores ``config.data`` and times synthetic ``max_length`` examples.
    ``reuse``: return the stored measurement of the same model files, cost-relevant options, data and
    machine when there is one (``False`` measures again and stores the new one).
    ``progress``: called with a line saying what is timed, once the options and the data have been checked (a bad
    --data is then its error alone).
    Returns a dict with ``time_per_epoch_s``, ``train_time_s``, ``peak_memory_mb``, ``steps_per_epoch``,
    the measured step times and ``notes``.
    """
    config = as_config(config, "estimate(config)").replace()
    config.validate()
    problems = step_problems(warmup_steps, timed_steps, num_examples)
    if problems:
        raise ConfigError(problems)
    if isolate:  # before the data is read: the measuring process would fail with "unknown strategy"
        from tunelab.run.isolate import unimportable_problems

        problems = unimportable_problems([config.strategy], "the estimate", "estimate")
        if problems:
            raise ConfigError(problems)
    job = {
        "config": config.to_dict(),
        "use_data": use_data,
        "warmup_steps": warmup_steps,
        "timed_steps": timed_steps,
        "num_examples": num_examples,
        "probe_tokens": probe_tokens,
    }
    if data is None and use_data:
        from tunelab.run.training import load_data

        data = load_data(config)  # here, once: its fingerprint is part of the stored measurement's key
    elif data is not None:
        from tunelab.data import TaskData
        from tunelab.run.training import given_data

        if not isinstance(data, TaskData):  # a Dataset or DataFrame, read as train reads it (it failed on bool(data))
            config, data = given_data(config, data)
    if progress is not None:
        where = "in a fresh process" if isolate else "in this process"
        progress(f"timing {timed_steps} training steps of {config.strategy} on {config.model} {where} (after "
                 f"{warmup_steps} to warm up; a stored measurement is reused where there is one)")
    stored = _stored_path(job, data, isolate, config)
    if reuse and stored.is_file():
        return _for_epochs(_reused(stored), config)
    if not isolate:
        from tunelab.run.progress import library_bars_off
        from tunelab.run.training import callers_random_state

        # the measurement seeds every stream (set_seed), as a run does; not the caller's; and draws no library bar
        with callers_random_state(), library_bars_off():
            result = _measure(job, data)
        result["notes"].append("measured in-process: peak memory includes what this process held before")
    else:
        result = _run_isolated(job, data, timeout_s)
    result["reused"] = False
    _store(stored, result)
    return result


# --------------------------------------------------------------------------------------------------
# measurements kept: the same model files, options that change a step's cost, data and machine give the
# same steps, so `tunelab recommend`, `estimate` and compare's advice measure each strategy once

#: Options that do not change what a training step costs (where the run writes, what it reports, ...).
# options that change neither a step's time nor its memory; ``extra`` is not one of them: it holds the cache's dtype
# and a plugin strategy's own settings (its rank, its schedule), which change both (the keys neither reads: none)
_COST_FREE = ("out", "overwrite", "resume", "report_to", "forgetting", "reference_text", "merge", "save_steps")
#: Options that change how many steps run, or the numbers an optimizer step uses, but not what one step costs: the
#: timed steps are reused, and the training time is worked out again for them (:func:`_for_epochs`). They were part of
#: the key, and `recommend --epochs 2` after `--epochs 1` timed every strategy's steps again (minutes on smollm2).
_STEP_FREE = ("epochs", "lr", "head_lr", "weight_decay", "warmup_ratio", "layer_lr_decay")
_STORE_FORMAT = 4  # 2: memory from one more step at the longest length, after the timed ones; 3: the device is kept;
# 4: the forked measuring process counts the libraries' pages as a fresh one does (peak memory was 70-140 MB low)


def _machine() -> dict[str, Any]:
    import os
    import platform

    import torch
    import transformers

    from tunelab import __version__

    return {
        "machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "tunelab": __version__,
    }  # fmt: skip


def _stored_path(job: dict[str, Any], data: Any, isolate: bool, config: TrainConfig) -> Path:
    import hashlib
    import json

    from tunelab.models import cache_dir, model_identity

    cost = {k: v for k, v in job["config"].items() if k not in _COST_FREE + _STEP_FREE}
    cost["extra"] = config.extra_in_effect()  # a key the strategy does not read changes no step
    parts = {
        "format": _STORE_FORMAT, "job": {**job, "config": cost}, "isolated": isolate,
        "model": model_identity(job["config"]["model"]), "data": getattr(data, "fingerprint", None) if data is not None else None,
        "machine": _machine(),
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return cache_dir() / "estimates" / f"{key}.json"


def _reused(path: Path) -> dict[str, Any]:
    from tunelab.io import read_json

    result = read_json(path)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    result["notes"] = [*result.get("notes", []), f"reused the measurement of {when} (same model files, options, data "
                       "and machine); --remeasure (estimate, recommend) measures again"]
    result["reused"] = True
    measured = result.get("measured") or []
    figures = ("batch_size", *(src for _, src, _, _ in _AT_BATCH_SIZE))
    if len(measured) == 2 and isinstance(result.get("batch_size"), int) and all(
            isinstance(m.get(k), int | float) for m in measured for k in figures):
        # a probed measurement, summed up again with today's rule: one stored with a negative step time (a line
        # through two probes that fell with the batch size) was replayed until `--remeasure`
        result.update(at_batch_size(measured, result["batch_size"], result["notes"]))
    if isinstance(result.get("steps_per_epoch"), int | float) and isinstance(result.get("time_per_step_s"), int | float):
        result["time_per_epoch_s"] = _epoch_seconds(result["steps_per_epoch"], result["time_per_step_s"])  # older stores
    return result


_SAVES_NOTE = "checkpoint saves every {} steps are not included in the time"


def _training_time(cfg: TrainConfig, n_examples: int, steps_per_epoch: int, first_s: float, step_s: float,
                   overhead_s: float, notes: list[str]) -> tuple[float, float]:
    """``(epochs, training time)`` of ``cfg``'s run from its timed steps: the start-up and the first step once, then
    every other step of every epoch at the steady step time."""
    epochs = cfg.epochs_for(n_examples)
    total_steps = math.ceil(steps_per_epoch * epochs)
    notes[:] = [n for n in notes if n != _SAVES_NOTE.format(cfg.save_steps)]
    if total_steps >= cfg.save_steps:
        notes.append(_SAVES_NOTE.format(cfg.save_steps))
    return epochs, round(overhead_s + first_s + (total_steps - 1) * step_s, 3)


def _for_epochs(result: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """A stored measurement's epochs and training time for ``cfg`` (its epochs are not part of the key)."""
    keys = ("examples_per_epoch", "steps_per_epoch", "first_step_s", "time_per_step_s", "overhead_s")
    if all(isinstance(result.get(k), int | float) for k in keys):
        result["epochs"], result["train_time_s"] = _training_time(
            cfg, result["examples_per_epoch"], result["steps_per_epoch"], result["first_step_s"],
            result["time_per_step_s"], result["overhead_s"], result.setdefault("notes", []))
    return result


def _epoch_seconds(steps_per_epoch: float, step_s: float) -> float:
    """An epoch of steady steps (the first step's warm-up is counted once, in the training time)."""
    return round(steps_per_epoch * step_s, 3)


def _store(path: Path, result: dict[str, Any]) -> None:
    from tunelab.io import write_json

    try:
        write_json(path, result)
    except OSError as exc:  # a read-only cache costs the reuse, never the estimate
        result["notes"].append(f"could not keep this measurement for reuse ({exc.strerror}: {path.parent})")


# --------------------------------------------------------------------------------------------------
# the fresh process (tunelab.run.isolate)


def _run_isolated(job: dict[str, Any], data: Any, timeout_s: float | None) -> dict[str, Any]:
    from tunelab.run.isolate import log_tail, raise_child_error, run_job

    what = f"estimating {job['config']['strategy']}"
    with tempfile.TemporaryDirectory(prefix="tunelab-estimate-") as tmp:
        if data is not None:  # data given in memory travels as Arrow files beside the spec
            job = {**job, "data": _save_data(data, Path(tmp) / "data")}
        outcome = run_job("tunelab.advice.estimate", job, tmp, timeout_s=timeout_s, what=what, log_name="estimate.log")
        last_line = log_tail(outcome.log, 1) or "no output"
    if outcome.child_error is not None:
        raise_child_error(outcome.child_error)
    if outcome.result is not None:
        return outcome.result
    if outcome.returncode is None:
        raise TrainingError(f"{what} took over {timeout_s:.0f} s: lower --batch-size or --max-length")
    raise TrainingError(f"{what} failed (exit {outcome.returncode}): {last_line}")


def _save_data(data: Any, folder: Path) -> dict[str, Any]:
    from tunelab.run.progress import library_bars_off

    with library_bars_off():  # a hand-over between processes, not a step the user waits on
        for name, split in data.splits().items():
            split.save_to_disk(str(folder / name))
    return {"folder": str(folder), "task": data.task, "label_names": list(data.label_names), "source": data.source,
            "fingerprint": data.fingerprint, "warnings": list(data.warnings)}


def _load_data(spec: dict[str, Any]) -> Any:
    from datasets import load_from_disk

    from tunelab.data import TaskData

    folder = Path(spec["folder"])
    splits = {name: load_from_disk(str(folder / name)) for name in ("train", "validation", "test")}
    return TaskData(task=spec["task"], label_names=spec["label_names"], source=spec["source"],
                    fingerprint=spec["fingerprint"], warnings=spec["warnings"], **splits)


def _serve(job: dict[str, Any]) -> dict[str, Any]:
    """The measuring process: the strategies the caller registered (as a comparison's runs know them), the job's data
    read back, then :func:`_measure`."""
    from tunelab.run.isolate import import_strategy_modules

    import_strategy_modules()  # a strategy registered at run time, outside tunelab: "unknown strategy" here before
    data = _load_data(job["data"]) if job.get("data") else None
    return _measure(job, data)


# --------------------------------------------------------------------------------------------------
# measuring


def batch_plan(lengths: list[int], batch_size: int, seed: int = 42) -> list[int]:
    """Padded length of every batch of one epoch, in the order ``group_by_length`` sampling gives them
    (longest batch first). Replays transformers' own ``get_length_grouped_indices``."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    if not lengths:
        return []
    generator = torch.Generator().manual_seed(seed)
    order = get_length_grouped_indices(lengths, batch_size, generator=generator)
    return [max(lengths[i] for i in order[s : s + batch_size]) for s in range(0, len(order), batch_size)]


def _synthetic_data(config: TrainConfig, max_length: int):
    """TaskData of texts long enough to fill ``max_length`` tokens (every example is truncated to it)."""
    from datasets import Dataset

    from tunelab.data import TaskData

    task = config.task or "classification"
    words = "the quick brown fox jumps over the lazy dog while a news reader reads the evening report".split()
    text = " ".join(words[i % len(words)] for i in range(max_length * 2))
    rows = {"text": [text] * 16}
    if task == "classification":
        rows["label"] = [i % 2 for i in range(16)]
    ds = Dataset.from_dict(rows)
    names = ["a", "b"] if task == "classification" else []
    return TaskData(task=task, train=ds, validation=ds.select(range(2)), test=ds.select(range(2)), label_names=names, source="synthetic")


def _timing_rows(train_ds, task: str, lengths: list[int], rows_per_length: list[int], seed: int):
    """Examples of exactly the given token lengths, cut from the training split's own token stream."""
    import random

    from datasets import Dataset

    rng = random.Random(seed)
    columns = [c for c in ("input_ids", "token_type_ids", "attention_mask") if c in train_ds.column_names]
    order = list(range(len(train_ds)))
    rng.shuffle(order)
    stream: list[int] = []
    labels_pool = train_ds["labels"] if task == "classification" else None
    need = sum(n * length for n, length in zip(rows_per_length, lengths))
    while len(stream) < need:
        for i in order:
            stream.extend(train_ds[i]["input_ids"])
            if len(stream) >= need:
                break
    out: dict[str, list] = {c: [] for c in columns + ["labels", "length"]}
    pos = 0
    for n, length in zip(rows_per_length, lengths):
        for _ in range(n):
            ids = stream[pos : pos + length]
            pos += length
            out["input_ids"].append(ids)
            if "token_type_ids" in out:
                out["token_type_ids"].append([0] * length)
            if "attention_mask" in out:
                out["attention_mask"].append([1] * length)
            out["labels"].append(rng.choice(labels_pool) if labels_pool is not None else list(ids))
            out["length"].append(length)
    return Dataset.from_dict(out)


@dataclass
class _EpochShape:
    """An epoch as ``group_by_length`` batches it: how many steps, the longest and the mean padded length."""

    n_examples: int
    lengths: list[int]
    micro_steps: int
    steps_per_epoch: int
    longest: int
    mean_len: int


def _epoch_shape(run, num_examples: int | None) -> _EpochShape:
    cfg = run.config
    if run.data.source == "synthetic":
        n_examples = num_examples or DEFAULT_NUM_EXAMPLES
        lengths = [run.max_length] * n_examples
    else:
        lengths = [int(n) for n in run.tokenized["train"]["length"]]
        n_examples = len(lengths)
    plan_lengths = batch_plan(lengths, cfg.batch_size, cfg.seed)  # one forward/backward per batch
    rest = plan_lengths[1:] or plan_lengths
    return _EpochShape(
        n_examples=n_examples,
        lengths=lengths,
        micro_steps=len(plan_lengths),
        steps_per_epoch=max(1, math.ceil(n_examples / (cfg.batch_size * cfg.gradient_accumulation_steps))),
        longest=plan_lengths[0],
        mean_len=max(1, round(statistics.fmean(rest))),
    )


def _probe_sizes(bs: int, total: int, longest: int, probe_tokens: float | None, notes: list[str]) -> tuple[list[int], dict | None]:
    """The batch sizes to time: the requested one, or two small probes when one step would be too big."""
    if probe_tokens and total * bs * longest > probe_tokens:
        b2 = max(2, min(bs - 1, int(probe_tokens // (total * longest))))
        b1 = max(1, b2 // 2)
        if b2 < bs:
            notes.append(f"timed at batch sizes {b1} and {b2}, extrapolated linearly to {bs}")
            return [b1, b2], {"batch_sizes": [b1, b2], "requested": bs}
    return [bs], None


def _clock():
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Step-end timestamps of the training loop."""

        def __init__(self):
            self.begin = 0.0
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    return Clock()


def _time_steps(setup, model, train_ds, collator, batch_size: int, n_steps: int) -> dict[str, Any]:
    """Run ``n_steps`` optimizer steps in the trainer ``train()`` builds (:class:`~tunelab.run.training.TrainerSetup`:
    same arguments, optimizer groups, precision and attention recomputation); return step-end times and overheads."""
    from tunelab.run.training import peak_memory_mb

    clock = _clock()
    trainer = setup.trainer(
        train_ds, None, collator, model=model, callbacks=[clock],
        per_device_train_batch_size=batch_size, max_steps=n_steps, eval_strategy="no", save_strategy="no",
        logging_strategy="no", train_sampling_strategy="sequential",  # rows are already in the order we want to time them
    )  # fmt: skip
    t_call = time.perf_counter()
    with setup.attention() as recomputed:
        trainer.train()
    t_done = time.perf_counter()
    ends = clock.ends
    if len(ends) < n_steps:
        raise TrainingError(f"the timing run made {len(ends)} of {n_steps} steps: give more data or lower --batch-size")
    return {
        "overhead_s": (clock.begin - t_call) + (t_done - ends[-1]),
        "first_step_s": ends[0] - clock.begin,
        "step_s": [b - a for a, b in zip(ends, ends[1:])],
        "peak_memory_mb": peak_memory_mb(),
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        "attention_recomputed": recomputed,
        "device": device_text(trainer.args.device),
    }


def device_text(device) -> str:
    """Where the steps ran, as the estimate says it: ``"CPU, 2 threads"`` or the GPU's name."""
    import torch

    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return f"{device.type.upper()}, {threads} thread{'s' * (threads != 1)}" if device.type == "cpu" else device.type


def _time_batch(setup, shape: _EpochShape, batch_size: int, n_steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time ``n_steps`` at ``batch_size`` (first at the longest length, then at the mean), through the
    frozen-layer cache when the run would use it. Returns the timing and the cache's facts."""
    from tunelab.run import cache as frozen_cache

    run, cfg = setup.run, setup.run.config
    gas = cfg.gradient_accumulation_steps
    # one step more than timed, at the longest length again: a long batch after shorter ones is where training's
    # heap peaks (the smaller blocks the shorter steps freed do not fit it), and memory is what that step is for
    rows = [batch_size * gas, (n_steps - 1) * batch_size * gas, batch_size * gas]
    lengths = [shape.longest, shape.mean_len, shape.longest]
    timing_ds = _timing_rows(run.tokenized["train"], run.data.task, lengths, rows, cfg.seed)
    model, ds, collator, cache_info = run.model, timing_ds, setup.collator(), {"used": False}
    plan = frozen_cache.plan(run) if cfg.cache else None
    if plan is not None:
        val, test = run.tokenized["validation"], run.tokenized["test"]
        t0 = time.perf_counter()
        ds, _, _, collator, cache_info = frozen_cache.apply(plan, run, (timing_ds, val.select(range(1)), test.select(range(1))), collator)
        built = time.perf_counter() - t0
        model = cache_info.get("model", model)
        sample_tokens = sum(timing_ds["length"]) + 2 * shape.longest
        all_tokens = sum(shape.lengths) + sum(val["length"]) + sum(test["length"])
        cache_info = {k: v for k, v in cache_info.items() if k != "model"}
        cache_info["build_s_estimated"] = built * all_tokens / max(sample_tokens, 1)
    try:
        timing = _time_steps(setup, model, ds, collator, batch_size, n_steps + 1)
        timing["step_s"] = timing["step_s"][:-1]  # the memory step is not a step of the mean length
    finally:
        if plan is not None:
            frozen_cache.restore(plan, run)
    timing["batch_size"] = batch_size
    return timing, cache_info


def _measured_data(cfg: TrainConfig, data: Any, use_data: bool, num_examples: int | None, notes: list[str]) -> Any:
    from tunelab.run.training import DEFAULT_MAX_LENGTH, load_data

    if data is None and not use_data:
        limit = cfg.max_length or DEFAULT_MAX_LENGTH[cfg.task or "classification"]
        notes.append(f"no data: every example is {limit} tokens (max length), {num_examples or DEFAULT_NUM_EXAMPLES} examples per epoch")
        return _synthetic_data(cfg, limit)
    return data if data is not None else load_data(cfg)


def _measure(job: dict[str, Any], data: Any) -> dict[str, Any]:
    """Prepare the run as ``train()`` does, time its steps at each batch size, and sum up (see the module docstring)."""
    import psutil
    from transformers.trainer_utils import set_seed

    from tunelab.run.training import TrainerSetup, limit_onednn_for, prepare
    from tunelab.strategies import trainable_parameters

    cfg = TrainConfig.from_dict(job["config"])
    limit_onednn_for(cfg)  # the same oneDNN setting as the run it predicts, before the probe's first multiply
    set_seed(cfg.seed)
    notes: list[str] = []
    run = prepare(cfg, _measured_data(cfg, data, job["use_data"], job["num_examples"], notes))
    # a schedule that unfreezes over time is measured at its widest trainable set: memory's peak
    if run.strategy.widen(run.model, run.layout, cfg):
        notes.append(
            f"{cfg.strategy} trains more weights as its schedule goes on: measured with its widest trainable set "
            "(the last stage), so memory is the peak and time an upper bound"
        )
    shape = _epoch_shape(run, job["num_examples"])
    trainable, total = trainable_parameters(run.model)
    batch_sizes, probe = _probe_sizes(cfg.batch_size, total, shape.longest, job["probe_tokens"], notes)
    n_steps = job["warmup_steps"] + job["timed_steps"]
    with tempfile.TemporaryDirectory(prefix="tunelab-estimate-run-") as tmp:
        # what train() holds besides the model (InitialWeights: samples, and a copy as train() keeps it) is held here too
        setup = TrainerSetup(run, Path(tmp))
        baseline_mb = psutil.Process().memory_info().rss / 2**20
        timed = [_time_batch(setup, shape, b, n_steps) for b in batch_sizes]
        setup.initial.discard()
    measured = [t for t, _ in timed]
    cache_info = timed[-1][1]
    result = _summary(cfg, measured, batch_sizes, shape, job["warmup_steps"], notes)
    if cfg.cache and not cache_info.get("used"):
        notes.append("frozen-layer cache: not used for this strategy (or not available), uncached steps timed")
    return {
        "model": cfg.model, "strategy": cfg.strategy, "task": run.data.task, "batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps, "max_length": run.max_length,
        "epochs": cfg.epochs_for(shape.n_examples),
        "precision": measured[-1]["precision"], "attention_recomputed": measured[-1]["attention_recomputed"],
        "device": measured[-1]["device"],
        "examples_per_epoch": shape.n_examples, "steps_per_epoch": shape.steps_per_epoch,
        "micro_batches_per_epoch": shape.micro_steps, "longest_batch_length": shape.longest,
        "mean_batch_length": shape.mean_len, **result, "cache": cache_info,
        "cache_build_s": round(float(cache_info.get("build_s_estimated", 0.0)), 3),
        "baseline_memory_mb": round(baseline_mb, 1), "trainable_params": int(trainable), "total_params": int(total),
        "warmup_steps": job["warmup_steps"], "timed_steps": job["timed_steps"],
        "measured": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k != "step_s"} for m in measured],
        "probe": probe, "notes": notes,
    }  # fmt: skip


def _summary(cfg: TrainConfig, measured: list[dict], batch_sizes: list[int], shape: _EpochShape, warmup_steps: int,
             notes: list[str]) -> dict[str, Any]:
    """Step time, epoch time, training time and peak memory at the requested batch size."""
    import torch

    for m in measured:
        m["median_step_s"] = statistics.median(m["step_s"][warmup_steps - 1 :])
    at = at_batch_size(measured, cfg.batch_size, notes)
    step_s, first_s = at["time_per_step_s"], at["first_step_s"]
    overhead_s = statistics.fmean(m["overhead_s"] for m in measured)
    _, train_time_s = _training_time(cfg, shape.n_examples, shape.steps_per_epoch, first_s, step_s, overhead_s, notes)
    return {
        "first_step_s": first_s,
        "time_per_step_s": step_s,
        "overhead_s": round(overhead_s, 3),
        # an epoch of steady steps; the training time adds the start-up and the first step's warm-up once, so that
        # "s / epoch" x epochs + those = the training time (the first step in every epoch made 13.6 s / epoch of a run
        # estimated at 65 s for 6 epochs)
        "time_per_epoch_s": _epoch_seconds(shape.steps_per_epoch, step_s),
        "train_time_s": train_time_s,
        "peak_memory_mb": at["peak_memory_mb"],
        "memory_kind": "cuda" if torch.cuda.is_available() else "rss",
    }


#: What :func:`at_batch_size` works out, from which figure of each timed batch size, and what it is called in a note.
_AT_BATCH_SIZE = (("time_per_step_s", "median_step_s", "step time", 4), ("first_step_s", "first_step_s", "first step", 4),
                  ("peak_memory_mb", "peak_memory_mb", "peak memory", 1))


def at_batch_size(measured: list[dict[str, Any]], batch_size: int, notes: list[str]) -> dict[str, float]:
    """``time_per_step_s``, ``first_step_s`` and ``peak_memory_mb`` at ``batch_size`` from the steps timed at one
    batch size (its own figures) or at two smaller probes (``batch_size``, ``median_step_s``, ``first_step_s``,
    ``peak_memory_mb`` each): on the line through the two, extrapolated to ``batch_size``.

    A larger batch does not cost less than a smaller one, so a line that falls with the batch size (the larger probe
    timed faster: the machine's load changed between them) is not followed: it made lora on smollm2 -92 s a step and
    -5,792 s an epoch. Then the two timings contradict each other, a note says so, and the larger probe's figure is
    scaled instead: a step's time in proportion to its rows on a CPU, where a step costs about what its tokens cost
    (:mod:`tunelab.run.padding`: minilm 0.56, 1.04 and 2.16 s at 1,024, 2,048 and 4,096 tokens, smollm2 LoRA 1.62,
    3.14 and 6.55 s at 512, 1,024 and 2,048), and kept as it is on an accelerator, where a step costs its kernel
    launches rather than its tokens (a lower bound); peak memory is kept as it is (the weights and optimizer state,
    most of it, do not grow with the batch). Either way the figure is at least the larger probe's, never below."""
    out: dict[str, float] = {}
    if len(measured) == 1:
        out = {key: round(float(measured[0][src]), digits) for key, src, _, digits in _AT_BATCH_SIZE}
    else:
        small, large = sorted(measured[:2], key=lambda m: m["batch_size"])
        b1, b2 = small["batch_size"], large["batch_size"]
        per_row = str(large.get("device") or "CPU").startswith("CPU")
        for key, src, what, digits in _AT_BATCH_SIZE:
            v1, v2 = float(small[src]), float(large[src])
            slope = (v2 - v1) / (b2 - b1)
            if slope >= 0:
                out[key] = round(v2 + slope * (batch_size - b2), digits)
                continue
            scaled = per_row and key != "peak_memory_mb"
            out[key] = round(v2 * batch_size / b2 if scaled else v2, digits)
            unit = MEMORY_UNIT if key == "peak_memory_mb" else "s"
            note = (f"{what}: batch size {b2} measured less than batch size {b1} ({v2:.{digits}f} vs {v1:.{digits}f} "
                    f"{unit}: the machine's load changed between them?); instead of the falling line through them, "
                    + (f"batch size {b2}'s {what} scaled to {batch_size} rows (on a CPU a step costs about what its "
                       "tokens cost)" if scaled else
                       f"batch size {b2}'s {what} is kept for {batch_size} (a lower bound: a larger batch costs no less)"))
            if note not in notes:
                notes.append(note)
    out["first_step_s"] = max(out["first_step_s"], out["time_per_step_s"])
    return out


def seconds_text(seconds: float) -> str:
    """``12.3``, ``1.2``, ``0.041``: one decimal from a second up, two significant digits below (an epoch of a tiny
    model read "0.0 s"); whole seconds with separators from 1,000 up (``19,666``, not ``19666.4``)."""
    if seconds >= 1000:
        return f"{seconds:,.0f}"
    return f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2g}"


def _long(seconds: float) -> str:
    """`` (5.5 h)`` / `` (12 min)`` after a figure in seconds of an hour / ten minutes or more, else nothing."""
    if seconds >= 3600:
        return f" ({seconds / 3600:.1f} h)"
    return f" ({seconds / 60:.0f} min)" if seconds >= 600 else ""


def format_estimate(est: dict[str, Any]) -> list[str]:
    """Human-readable lines for one estimate (used by ``tunelab estimate``)."""
    lines = [
        f"estimated from {est['timed_steps']} timed steps (nothing was trained to the end): {est['strategy']} on "
        f"{est['model']}" + (f" ({est['device']})" if est.get("device") else "")
        + f", batch {est['batch_size']} × ~{est['mean_batch_length']} tokens (longest batch "
        f"{est['longest_batch_length']}" + (f", max length {est['max_length']}" if est.get("max_length") else "")
        + f"), {est['steps_per_epoch']} steps per epoch ({est['examples_per_epoch']:,} examples)",
        f"time per step      {est['time_per_step_s']:.3f} s (median of {est['timed_steps']} after {est['warmup_steps']} warm-up; "
        f"{est.get('precision', 'fp32')})",
        f"time per epoch     {seconds_text(est['time_per_epoch_s'])} s{_long(est['time_per_epoch_s'])} (steady steps; the "
        "first step's warm-up counts once, below)",
        f"training time      ~{seconds_text(est['train_time_s'])} s{_long(est['train_time_s'])} for {est['epochs']:g} "
        f"epoch(s), incl. {est['overhead_s']:.1f} s start-up",
        f"peak memory        ~{format_mb(est['peak_memory_mb'])} ({est['memory_kind']}; {format_mb(est['baseline_memory_mb'])} after loading)",
        f"trainable params   {est['trainable_params']:,} of {est['total_params']:,}",
    ]
    if est.get("cache_build_s"):
        lines.append(f"cache build        {est['cache_build_s']:.1f} s (once, before training)")
    lines += [f"note: {n}" for n in est.get("notes", [])]
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m tunelab.advice.estimate JOB.json RESULT.json`` (started by :func:`_run_isolated`)."""
    from tunelab.run.isolate import serve

    return serve(_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
