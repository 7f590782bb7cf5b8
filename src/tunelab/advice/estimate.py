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
  memory are extrapolated linearly to the requested one (``probe`` says so in the result).

    tunelab estimate --model minilm --strategy lora --data rotten-tomatoes --max-length 64
    tunelab estimate --model smollm2 --strategy full --batch-size 4 --max-length 256

>>> from tunelab.config import TrainConfig
>>> est = estimate(TrainConfig(model="minilm", strategy="lora", data="rotten-tomatoes"))  # doctest: +SKIP
>>> est["time_per_epoch_s"], est["peak_memory_mb"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tunelab.config import TrainConfig
from tunelab.errors import TrainingError, TunelabError

#: Examples per epoch assumed when no data is given.
DEFAULT_NUM_EXAMPLES = 1000


def estimate(
    config: TrainConfig,
    *,
    data: Any = None,
    use_data: bool = True,
    warmup_steps: int = 3,
    timed_steps: int = 5,
    num_examples: int | None = None,
    probe_tokens: float | None = None,
    isolate: bool = True,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Estimate time per epoch and peak memory of training ``config`` (see the module docstring).

    ``data``: a :class:`~tunelab.data.TaskData` to use instead of loading ``config.data``;
    ``use_data=False`` ignores ``config.data`` and times synthetic ``max_length`` examples.
    Returns a dict with ``time_per_epoch_s``, ``train_time_s``, ``peak_memory_mb``, ``steps_per_epoch``,
    the measured step times and ``notes``.
    """
    config = config.replace()
    config.validate()
    if warmup_steps < 1 or timed_steps < 1:
        raise TunelabError("estimate needs at least 1 warm-up step and 1 timed step: raise --warmup-steps / --steps")
    job = {
        "config": config.to_dict(),
        "data": data,
        "use_data": use_data,
        "warmup_steps": warmup_steps,
        "timed_steps": timed_steps,
        "num_examples": num_examples,
        "probe_tokens": probe_tokens,
    }
    if not isolate:
        result = _measure(**job)
        result["notes"].append("measured in-process: peak memory includes what this process held before")
        return result
    return _run_isolated(job, timeout_s)


# --------------------------------------------------------------------------------------------------
# the subprocess


def _run_isolated(job: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tunelab-estimate-") as tmp:
        job_path, out_path = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl"
        with open(job_path, "wb") as f:
            pickle.dump(job, f)
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        cmd = [sys.executable, "-m", "tunelab.advice.estimate", str(job_path), str(out_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired as exc:
            raise TrainingError(
                f"estimating {job['config']['strategy']} took over {timeout_s:.0f} s: lower --batch-size or --max-length"
            ) from exc
        if not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TrainingError(f"estimating {job['config']['strategy']} failed (exit {proc.returncode}): {tail[0]}")
        with open(out_path, "rb") as f:
            outcome = pickle.load(f)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _worker(job_path: str, out_path: str) -> None:
    """Entry point of the measuring subprocess: read the job, measure, write the result (or the error)."""
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    try:
        outcome: Any = _measure(**job)
    except TunelabError as exc:
        outcome = exc
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        outcome = TrainingError(f"estimate failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f)
    os.replace(tmp, out_path)


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


def _time_steps(run, model, train_ds, collator, batch_size: int, n_steps: int, lr: float, out_dir: str) -> dict[str, Any]:
    """Run ``n_steps`` optimizer steps in the real trainer; return step-end timestamps and overheads."""
    import torch
    from transformers import TrainerCallback, TrainingArguments

    from tunelab.run.training import make_trainer_class, peak_memory_mb

    config = run.config

    class Clock(TrainerCallback):
        def __init__(self):
            self.begin = 0.0
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    args = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_steps=n_steps,
        learning_rate=lr,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        seed=config.seed,
        train_sampling_strategy="sequential",  # rows are already in the order we want to time them
        length_column_name="length",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
    )
    clock = Clock()
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        data_collator=collator,
        callbacks=run.strategy.callbacks(run.model, run.layout, config) + [clock],
    )
    trainer.tunelab_param_groups = run.strategy.param_groups(run.model, lr, config)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    t_call = time.perf_counter()
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
    }


def _measure(
    config: dict[str, Any],
    data: Any,
    use_data: bool,
    warmup_steps: int,
    timed_steps: int,
    num_examples: int | None,
    probe_tokens: float | None,
) -> dict[str, Any]:
    import psutil
    import torch
    from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding
    from transformers.trainer_utils import set_seed

    from tunelab.run import cache as frozen_cache
    from tunelab.run.training import DEFAULT_MAX_LENGTH, limit_onednn_for, load_data, prepare
    from tunelab.strategies import trainable_parameters

    cfg = TrainConfig.from_dict(config)
    limit_onednn_for(cfg)  # the same oneDNN setting as the run it predicts, before the probe's first multiply
    set_seed(cfg.seed)
    notes: list[str] = []
    if data is None and not use_data:
        limit = cfg.max_length or DEFAULT_MAX_LENGTH[cfg.task or "classification"]
        data = _synthetic_data(cfg, limit)
        notes.append(f"no data: every example is {limit} tokens (max length), {num_examples or DEFAULT_NUM_EXAMPLES} examples per epoch")
    elif data is None:
        data = load_data(cfg)
    run = prepare(cfg, data)
    # a schedule that unfreezes over time is measured at its widest trainable set: memory's peak
    widened = run.strategy.widen(run.model, run.layout, cfg)
    task = run.data.task
    bs, gas = cfg.batch_size, cfg.gradient_accumulation_steps
    micro = bs  # one forward/backward
    train_tok = run.tokenized["train"]
    if run.data.source == "synthetic":
        n_examples = num_examples or DEFAULT_NUM_EXAMPLES
        lengths = [run.max_length] * n_examples
    else:
        lengths = [int(n) for n in train_tok["length"]]
        n_examples = len(lengths)
    plan_lengths = batch_plan(lengths, micro, cfg.seed)
    micro_steps = len(plan_lengths)
    steps_per_epoch = max(1, math.ceil(n_examples / (bs * gas)))
    longest = plan_lengths[0]
    rest = plan_lengths[1:] or plan_lengths
    mean_len = max(1, round(statistics.fmean(rest)))

    trainable, total = trainable_parameters(run.model)
    lr = cfg.lr if cfg.lr is not None else run.strategy.default_lr
    if task == "classification":
        collator = DataCollatorWithPadding(run.tokenizer)
    else:
        collator = DataCollatorForLanguageModeling(run.tokenizer, mlm=False)

    # batch sizes to time: the requested one, or two small probes when one step would be too big
    probe = None
    batch_sizes = [bs]
    if probe_tokens and total * bs * longest > probe_tokens:
        b2 = max(2, min(bs - 1, int(probe_tokens // (total * longest))))
        b1 = max(1, b2 // 2)
        if b2 < bs:
            batch_sizes = [b1, b2]
            probe = {"batch_sizes": [b1, b2], "requested": bs}
            notes.append(f"timed at batch sizes {b1} and {b2}, extrapolated linearly to {bs}")

    # train() keeps a copy of the trainable weights to check afterwards that training changed them: hold one too
    before = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad}
    baseline_mb = psutil.Process().memory_info().rss / 2**20
    measured = []
    cache_info: dict[str, Any] = {"used": False}
    for b in batch_sizes:
        n_steps = warmup_steps + timed_steps
        rows = [b * gas, (n_steps - 1) * b * gas]
        timing_ds = _timing_rows(train_tok, task, [longest, mean_len], rows, cfg.seed)
        model, ds, coll = run.model, timing_ds, collator
        plan = frozen_cache.plan(run) if cfg.cache else None
        if plan is not None:
            val, test = run.tokenized["validation"], run.tokenized["test"]
            t0 = time.perf_counter()
            ds, _, _, coll, cache_info = frozen_cache.apply(
                plan, run, (timing_ds, val.select(range(1)), test.select(range(1))), collator
            )
            built = time.perf_counter() - t0
            model = cache_info.get("model", model)
            sample_tokens = sum(timing_ds["length"]) + 2 * longest
            all_tokens = sum(lengths) + sum(val["length"]) + sum(test["length"])
            cache_info = {k: v for k, v in cache_info.items() if k != "model"}
            cache_info["build_s_estimated"] = built * all_tokens / max(sample_tokens, 1)
        with tempfile.TemporaryDirectory(prefix="tunelab-estimate-run-") as tmp:
            timing = _time_steps(run, model, ds, coll, b, n_steps, lr, tmp)
        if plan is not None:
            frozen_cache.restore(plan, run)
        timing["batch_size"] = b
        measured.append(timing)

    del before

    def at_bs(key: str) -> float:
        values = [m[key] for m in measured]
        if len(values) == 1:
            return values[0]
        (b1, v1), (b2, v2) = zip(batch_sizes, values)
        return v2 + (v2 - v1) / (b2 - b1) * (bs - b2)

    for m in measured:
        timed = m["step_s"][warmup_steps - 1 :]
        m["median_step_s"] = statistics.median(timed)
    step_s = at_bs("median_step_s")
    first_s = max(at_bs("first_step_s"), step_s)
    overhead_s = statistics.fmean(m["overhead_s"] for m in measured)
    peak = at_bs("peak_memory_mb")
    time_per_epoch = first_s + (steps_per_epoch - 1) * step_s
    total_steps = math.ceil(steps_per_epoch * cfg.epochs)
    train_time = overhead_s + first_s + (total_steps - 1) * step_s
    if widened:
        notes.append(
            f"{cfg.strategy} trains more weights as its schedule goes on: measured with its widest trainable set "
            "(the last stage), so memory is the peak and time an upper bound"
        )
    if total_steps >= cfg.save_steps:
        notes.append(f"checkpoint saves every {cfg.save_steps} steps are not included in the time")
    if cfg.cache and not cache_info.get("used"):
        notes.append("frozen-layer cache: not used for this strategy (or not available), uncached steps timed")
    return {
        "model": cfg.model,
        "strategy": cfg.strategy,
        "task": task,
        "batch_size": bs,
        "gradient_accumulation_steps": gas,
        "max_length": run.max_length,
        "epochs": cfg.epochs,
        "examples_per_epoch": n_examples,
        "steps_per_epoch": steps_per_epoch,
        "micro_batches_per_epoch": micro_steps,
        "longest_batch_length": longest,
        "mean_batch_length": mean_len,
        "first_step_s": round(first_s, 4),
        "time_per_step_s": round(step_s, 4),
        "overhead_s": round(overhead_s, 3),
        "time_per_epoch_s": round(time_per_epoch, 3),
        "train_time_s": round(train_time, 3),
        "cache": cache_info,
        "cache_build_s": round(float(cache_info.get("build_s_estimated", 0.0)), 3),
        "peak_memory_mb": round(peak, 1),
        "baseline_memory_mb": round(baseline_mb, 1),
        "memory_kind": "cuda" if torch.cuda.is_available() else "rss",
        "trainable_params": int(trainable),
        "total_params": int(total),
        "warmup_steps": warmup_steps,
        "timed_steps": timed_steps,
        "measured": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k != "step_s"} for m in measured],
        "probe": probe,
        "notes": notes,
    }


def format_estimate(est: dict[str, Any]) -> list[str]:
    """Human-readable lines for one estimate (used by ``tunelab estimate``)."""
    lines = [
        f"{est['strategy']} on {est['model']}: batch {est['batch_size']} × ~{est['mean_batch_length']} tokens "
        f"(longest batch {est['longest_batch_length']}), {est['steps_per_epoch']} steps per epoch "
        f"({est['examples_per_epoch']:,} examples)",
        f"time per step      {est['time_per_step_s']:.3f} s (median of {est['timed_steps']} after {est['warmup_steps']} warm-up)",
        f"time per epoch     {est['time_per_epoch_s']:.1f} s",
        f"training time      {est['train_time_s']:.1f} s for {est['epochs']:g} epoch(s), incl. {est['overhead_s']:.1f} s start-up",
        f"peak memory        {est['peak_memory_mb']:.0f} MB ({est['memory_kind']}; {est['baseline_memory_mb']:.0f} MB after loading)",
        f"trainable params   {est['trainable_params']:,} of {est['total_params']:,}",
    ]
    if est.get("cache_build_s"):
        lines.append(f"cache build        {est['cache_build_s']:.1f} s (once, before training)")
    lines += [f"note: {n}" for n in est.get("notes", [])]
    return lines


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
