"""Micro-benchmark of tunelab.run.padding: random batches of 32 padded to their longest text, against the same
batches cut by ``split_by_padding`` into micro-batches sorted by length, each padded to its own longest (gradients
accumulated, each loss weighted by its share of the rows, as ``TunelabTrainer.training_step`` does).

minilm, full fine-tuning, CPU, 11 random batches of rotten-tomatoes' training texts (``max_length`` 128) after one
warm-up step; "whole" and "cut" run twice, in turn, to show the machine's drift.

    .venv/bin/python benchmarks/padding_split.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    warnings.filterwarnings("ignore")
    from transformers import DataCollatorWithPadding

    from tunelab.config import TrainConfig
    from tunelab.run.padding import split_by_padding
    from tunelab.run.training import load_data, prepare

    cfg = TrainConfig(model="minilm", data="rotten-tomatoes", strategy="full", max_length=128, max_train_samples=2000, cache=False)
    run = prepare(cfg, load_data(cfg))
    rows = run.tokenized["train"].remove_columns(["length"])
    collate = DataCollatorWithPadding(run.tokenizer)
    model = run.model
    model.train()
    rng = random.Random(0)
    batches = [collate([rows[i] for i in rng.sample(range(len(rows)), 32)]) for _ in range(12)]

    def step(inputs: dict, cut: bool) -> int:
        parts = (split_by_padding(dict(inputs)) if cut else None) or [(dict(inputs), 1.0)]
        for part, share in parts:
            (model(**part).loss * share).backward()
        model.zero_grad(set_to_none=True)
        return sum(part["input_ids"].numel() for part, _ in parts)

    for cut in (False, True, False, True):
        step(batches[0], cut)
        times, tokens = [], []
        for inputs in batches[1:]:
            start = time.perf_counter()
            tokens.append(step(inputs, cut))
            times.append(time.perf_counter() - start)
        print(f"{'cut  ' if cut else 'whole'}: median step {statistics.median(times):.3f} s, "
              f"mean padded tokens {statistics.fmean(tokens):.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
