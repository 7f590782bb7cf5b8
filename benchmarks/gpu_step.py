"""Where a training step's time goes: the same minilm steps as a bare PyTorch loop, a plain transformers ``Trainer``,
and tunelab, in one process (issue 16's speed on an accelerator; benchmarks/README, "gpu_step.py").

    python benchmarks/gpu_step.py --steps 100             # on a GPU: bf16 autocast over float32 weights
    python benchmarks/gpu_step.py --steps 8 --batch-size 8   # the same on a CPU (fp32), to check the script

All three train ``full`` on minilm (AutoModelForSequenceClassification, 2 labels) with AdamW at the same rate on the
same random batches of rotten-tomatoes' texts (dynamic padding, max length 128). Per case it prints the median and
90th percentile of the wall time from one step's start to the next's (the loop's whole cycle: data, forward,
backward, optimizer, callbacks), the number of cycles timed (the first ``--warmup`` are left out), and for the two
Trainers the rest of ``train()``'s wall time outside those cycles (evaluation, saving, set-up). The bare loop is the
floor: its time is the model's arithmetic and kernel launches; what a Trainer adds above it is the loop's overhead.
No network: minilm comes from the built-in package (or a folder given with ``--model``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepClock:
    """Records the wall time at each ``on_step_begin`` of any Trainer in this process (the Trainer's callback handler
    is wrapped, so tunelab's own Trainer set-up needs no change)."""

    def __init__(self):
        self.starts: list[float] = []

    def __enter__(self):
        from transformers.trainer_callback import CallbackHandler

        self._original = CallbackHandler.on_step_begin
        clock = self

        def on_step_begin(handler, args, state, control):
            clock.starts.append(time.perf_counter())
            return clock._original(handler, args, state, control)

        CallbackHandler.on_step_begin = on_step_begin
        return self

    def __exit__(self, *exc):
        from transformers.trainer_callback import CallbackHandler

        CallbackHandler.on_step_begin = self._original

    def cycles(self, warmup: int) -> list[float]:
        gaps = [b - a for a, b in zip(self.starts, self.starts[1:])]
        return gaps[warmup:]


def _row(name: str, cycles: list[float], total_s: float | None = None) -> dict:
    cycles_ms = sorted(c * 1000 for c in cycles)
    nan = float("nan")
    row = {"case": name, "cycles": len(cycles_ms), "median_ms": statistics.median(cycles_ms) if cycles_ms else nan,
           "p90_ms": cycles_ms[int(0.9 * (len(cycles_ms) - 1))] if cycles_ms else nan,
           "mean_ms": statistics.fmean(cycles_ms) if cycles_ms else nan}
    if total_s is not None:
        row["outside_cycles_s"] = total_s - sum(cycles)
        row["train_s"] = total_s
    return row


def _batches(tokenizer, texts, labels, batch: int, steps: int, seed: int, multiple: int | None = None):
    import torch
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        idx = torch.randint(len(texts), (batch,), generator=g).tolist()
        enc = [dict(tokenizer(texts[i], truncation=True, max_length=128), labels=labels[i]) for i in idx]
        out.append(collate(enc))
    return out


def bare_loop(model_path: str, texts, labels, batch: int, steps: int, warmup: int, lr: float, multiple: int | None,
              attention: str) -> dict:
    """forward, backward and AdamW by hand; batches collated before the clock starts, padded to their longest text
    or up to ``multiple``; ``attention``: ``default`` (PyTorch's choice of SDPA kernel) or ``no-cudnn`` (flash,
    memory-efficient or math only)."""
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2, dtype=torch.float32).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=cuda)
    data = [{k: v.to(device) for k, v in b.items()}
            for b in _batches(tokenizer, texts, labels, batch, steps + warmup, 0, multiple)]
    kernels = contextlib.nullcontext() if attention == "default" else sdpa_kernel(
        [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    times = []
    with kernels:
        for b in data:
            times.append(_bare_step(model, optimizer, b, device))
    shapes = len({tuple(b["input_ids"].shape) for b in data})
    return _row(f"bare loop, pad to {multiple or 'longest'}, {attention} attention ({shapes} shapes)", times[warmup:])


def _bare_step(model, optimizer, b, device) -> float:
    """One synchronised step: forward under bf16 autocast (on CUDA), backward, clipping, AdamW; its wall seconds."""
    import torch

    _sync()
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = model(**b).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync()
    return time.perf_counter() - t0


def plain_trainer(model_path: str, texts, labels, batch: int, steps: int, warmup: int, lr: float, work: Path,
                  multiple: int | None) -> dict:
    """transformers' Trainer with its defaults, the same rate and batch, no evaluation or saving."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2, dtype=torch.float32)
    ds = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"])
    args = TrainingArguments(output_dir=str(work / "plain"), per_device_train_batch_size=batch, learning_rate=lr,
                             max_steps=steps + warmup + 1, save_strategy="no", eval_strategy="no", report_to="none",
                             logging_steps=50, bf16=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available(),
                             disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple))
    with StepClock() as clock:
        t0 = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
    return _row(f"plain transformers Trainer, pad to {multiple or 'longest'}", clock.cycles(warmup), total)


def tunelab_run(model_path: str, n_train: int, batch: int, steps: int, warmup: int, work: Path, multiple: int) -> dict:
    """tunelab's ``train`` as the CLI runs it (``full``; evaluation each epoch and the test split at the end), with
    :data:`tunelab.run.padding.ACCELERATOR_PAD_MULTIPLE` set to ``multiple`` (1: batches padded to their longest)."""
    from tunelab import TrainConfig
    from tunelab.run import padding
    from tunelab.run.training import train

    padding.ACCELERATOR_PAD_MULTIPLE = multiple

    cycles = steps + warmup + 1
    config = TrainConfig(model=model_path, data="rotten-tomatoes", strategy="full", batch_size=batch,
                         max_train_samples=n_train, epochs=cycles * batch / n_train, max_eval_samples=256,
                         max_length=128, save_steps=10**6, out=str(work / "tunelab"), overwrite=True,
                         cache_dir=str(work / "cache"), forgetting=False)
    with StepClock() as clock:
        record = train(config, progress=False)
    ti = record["train_info"]
    row = _row(f"tunelab train (full, {ti['precision']}), pad multiple {multiple}", clock.cycles(warmup),
               ti["train_time_s"])
    row["eval_s"] = ti["eval_time_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing at the start")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", help="a minilm folder (default: the built-in)")
    parser.add_argument("--only", choices=("bare", "trainer", "tunelab"), action="append",
                        help="run only these cases (repeatable)")
    parser.add_argument("--pad-multiples", default="1,8", help="comma-separated: each case runs with batches padded "
                                                               "up to each multiple (1: to the longest text)")
    parser.add_argument("--attention", default="default", help="comma-separated, for the bare loop: default, no-cudnn")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from tunelab.data import load_task_data
    from tunelab.models import resolve_model
    from tunelab.run.isolate import quiet_libraries

    quiet_libraries()
    model_path = args.model or str(resolve_model("minilm"))
    data = load_task_data("rotten-tomatoes", seed=42)
    texts, labels = list(data.train["text"]), [int(x) for x in data.train["label"]]
    lr = 5e-5
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    print(f"gpu_step: minilm full, batch {args.batch_size}, {args.steps} timed steps after {args.warmup}, on {device}; "
          f"torch {torch.__version__}", flush=True)
    cases = args.only or ["bare", "trainer", "tunelab"]
    with tempfile.TemporaryDirectory(prefix="tunelab-gpu-step-") as tmp:
        work = Path(tmp)
        multiples = [int(m) for m in args.pad_multiples.split(",")]
        runs = []
        for case in cases:
            for m in multiples:
                kinds = args.attention.split(",") if case == "bare" else ["default"]
                runs += [(case, m if m > 1 else None, kind) for kind in kinds]
        for case, multiple, attention in runs:
            if case == "bare":
                row = bare_loop(model_path, texts, labels, args.batch_size, args.steps, args.warmup, lr, multiple, attention)
            elif case == "trainer":
                row = plain_trainer(model_path, texts, labels, args.batch_size, args.steps, args.warmup, lr, work, multiple)
            else:
                row = tunelab_run(model_path, len(texts), args.batch_size, args.steps, args.warmup, work, multiple or 1)
            extra = "".join(f", {k} {v:.2f}" for k, v in row.items() if k.endswith("_s"))
            print(f"{row['case']:<62} median {row['median_ms']:7.1f} ms  mean {row['mean_ms']:7.1f} ms  "
                  f"p90 {row['p90_ms']:7.1f} ms  "
                  f"({row['cycles']} cycles{extra})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
