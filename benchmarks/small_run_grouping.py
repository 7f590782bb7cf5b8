"""Would length grouping make the demo's first round cheaper without changing what it measures?

transformers' ``group_by_length`` sorts examples by length only inside megabatches of
``min(n // (4 × batch), 50)`` batches, so under ``4 × batch`` examples (128 at batch 32) every megabatch is one
batch and nothing is grouped: a run on 222 examples pads each random batch to its longest text. This script
runs the demo's round-1 screening runs (minilm + rotten-tomatoes, 2,000 training examples, data fraction
0.0653 = 222 examples, 2 epochs, each strategy's default learning rate, validated once on 800 examples) twice
per seed, in this one process, one after another:

* ``plain``: tunelab as it is (transformers' grouping);
* ``grouped``: megabatches of at least 4 batches (``max(n // (4 × batch), 4)``, at most 50), so that a run of a few
  hundred examples is grouped as one of 512 already is;

and prints each run's training time and validation accuracy, and per strategy the mean difference.

    .venv/bin/python benchmarks/small_run_grouping.py [--seeds 42,1,2,3] [--strategies bitfit,lora,full,last-n]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def grouped_indices(original):
    """transformers' ``get_length_grouped_indices`` with megabatches of at least 4 batches."""

    def grouped(lengths, batch_size, mega_batch_mult=None, generator=None):
        if mega_batch_mult is None:
            mega_batch_mult = min(max(len(lengths) // (batch_size * 4), 4), 50)
        return original(lengths, batch_size, mega_batch_mult=mega_batch_mult, generator=generator)

    return grouped


def screening_run(strategy: str, seed: int, out: Path) -> dict:
    from tunelab.config import TrainConfig
    from tunelab.run.training import load_data, train

    config = TrainConfig(model="minilm", data="rotten-tomatoes", strategy=strategy, epochs=2.0, max_train_samples=2000,
                         max_eval_samples=800, max_length=128, batch_size=32, data_fraction=0.0653, screening=True,
                         seed=seed, out=str(out), overwrite=True, forgetting=False, cache_dir=str(out.parent / "cache"))
    data = load_data(config.replace(seed=42))  # the comparison's split: every seed trains on the same examples
    record = train(config, data=data, progress=False)
    return {"train_s": record["train_info"]["train_time_s"], "accuracy": record["metrics"]["validation"]["accuracy"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="42,1,2,3")
    p.add_argument("--strategies", default="bitfit,lora,full,last-n")
    args = p.parse_args()
    import transformers.trainer_pt_utils as pt_utils

    original = pt_utils.get_length_grouped_indices
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for variant in ("plain", "grouped"):
                pt_utils.get_length_grouped_indices = original if variant == "plain" else grouped_indices(original)
                for strategy in args.strategies.split(","):
                    r = screening_run(strategy, seed, Path(tmp) / f"{variant}-{strategy}-{seed}")
                    results.setdefault((strategy, variant), []).append(r)
                    print(f"{variant:8s} {strategy:7s} seed {seed:3d}: train {r['train_s']:6.2f} s, "
                          f"validation accuracy {r['accuracy']:.4f}", flush=True)
    pt_utils.get_length_grouped_indices = original
    print("\n| strategy | plain: train s / accuracy (mean) | grouped: train s / accuracy (mean) | accuracy, grouped − plain |")
    print("|---|---|---|---|")
    for strategy in args.strategies.split(","):
        plain, grouped = results[(strategy, "plain")], results[(strategy, "grouped")]
        mean = {k: {v: statistics.mean(r[v] for r in rows) for v in ("train_s", "accuracy")}
                for k, rows in (("plain", plain), ("grouped", grouped))}
        diffs = [100 * (g["accuracy"] - q["accuracy"]) for q, g in zip(plain, grouped)]
        print(f"| {strategy} | {mean['plain']['train_s']:.2f} / {mean['plain']['accuracy']:.4f} | "
              f"{mean['grouped']['train_s']:.2f} / {mean['grouped']['accuracy']:.4f} | "
              f"{statistics.mean(diffs):+.1f} points ({sum(d < 0 for d in diffs)} of {len(diffs)} lower) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
