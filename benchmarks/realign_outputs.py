"""Put the per-example outputs of runs recorded before commit 6a8c329 back in their dataset's order.

Before that commit transformers 5 evaluated the validation and test splits through a ``LengthGroupedSampler``
drawn from each run's seed, so ``<run>/outputs/<split>.npz`` listed the examples in a seed-dependent order and
the runs of a comparison's seeds could not be paired example by example. The order is deterministic: this
script rebuilds each run's sampler (the split's lengths as tunelab tokenized them, the evaluation batch size,
the run's seed) and writes the outputs in the dataset's order to ``<run>/outputs/`` (the originals moved to
``<run>/outputs-seed-order/``). It checks its work: the realigned gold labels must equal the split's labels
exactly, or the run is reported and left as it was.

    .venv/bin/python benchmarks/realign_outputs.py benchmarks/results/verdict/*/runs/runs/*
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from tunelab.config import TrainConfig
from tunelab.models import load_tokenizer
from tunelab.run.outputs import ExampleOutputs
from tunelab.run.training import load_data, resolve_max_length, tokenize


@lru_cache(maxsize=8)
def _splits(config_json: str, split_seed: int):
    config = TrainConfig.from_dict(json.loads(config_json), where="run_config").replace(seed=split_seed)
    data = load_data(config)
    tokenizer = load_tokenizer(config.model)
    from transformers import AutoConfig

    from tunelab.models.loading import resolve_model

    max_length = resolve_max_length(config, data.task, AutoConfig.from_pretrained(resolve_model(config.model)), tokenizer)
    tokenized, _ = tokenize(data, tokenizer, max_length)
    return {s: (np.asarray(tokenized[s]["length"]), np.asarray(tokenized[s]["labels"])) for s in ("validation", "test")}


def realign(run: Path) -> str:
    record = json.loads((run / "metrics.json").read_text())
    config = dict(record["config"])
    seed, split_seed = config["seed"], record["run_info"].get("split_seed") or config["seed"]
    keep = {k: config[k] for k in ("model", "data", "task", "text_column", "label_column", "validation_fraction",
                                   "test_fraction", "max_train_samples", "max_eval_samples", "data_fraction",
                                   "max_length", "batch_size") if k in config}
    splits = _splits(json.dumps(keep, sort_keys=True), split_seed)
    original = run / "outputs-seed-order"
    if original.is_dir():
        return f"{run}: realigned earlier"
    aligned = {}
    for split, (lengths, labels) in splits.items():
        outputs = ExampleOutputs.load(run, split)
        sampler = LengthGroupedSampler(max(config["batch_size"], 64), lengths=lengths.tolist(),
                                       generator=torch.Generator().manual_seed(seed))
        order = np.asarray(list(iter(sampler)))
        aligned_labels = np.empty_like(outputs.labels)
        aligned_predictions = np.empty_like(outputs.predictions)
        aligned_labels[order], aligned_predictions[order] = outputs.labels, outputs.predictions
        if not np.array_equal(aligned_labels, labels):
            return f"{run}: {split} labels do not match after realigning: left as it was"
        aligned[split] = ExampleOutputs(labels=aligned_labels, predictions=aligned_predictions, loss_sums=None,
                                        token_counts=None, label_names=outputs.label_names)
    (run / "outputs").rename(original)
    for split, outputs in aligned.items():
        outputs.save(run, split)
    return f"{run}: realigned"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with metrics.json and outputs/)")
    for run in parser.parse_args(argv).runs:
        if (run / "metrics.json").exists() and (run / "outputs").is_dir():
            print(realign(run), flush=True)
        else:
            print(f"{run}: not a run folder with metrics.json and outputs/: skipped", flush=True)


if __name__ == "__main__":
    main()
