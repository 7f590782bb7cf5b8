"""The one-off passes over batches of every shape, timed with cuDNN's attention left out (tunelab's default on a GPU:
``tunelab.run.padding.one_pass_attention``) and allowed, alternating in one process (benchmarks/README, "Where the GPU
demo's time goes"). Two passes, as ``tunelab demo`` runs them before and at its first run:

- the advice's frozen features of minilm over ``--texts`` training texts (``tunelab.advice.features.frozen_features``);
- the frozen-layer cache's build in a ``head`` run over ``--texts`` training texts with its validation and test
  splits (``train_info.cache.build_s`` of a one-epoch screening run).

Each variant gets an empty ``TUNELAB_CACHE`` of its own, so nothing is read back. Usage (a GPU machine; on a CPU both
variants run the same code)::

    python benchmarks/gpu_passes.py [--rounds 2] [--texts 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time


def _features_s(texts: list[str], labels: list[str]) -> float:
    from tunelab.advice.features import frozen_features

    t0 = time.perf_counter()
    frozen_features("minilm", texts, labels)
    return time.perf_counter() - t0


def _cache_build_s(n: int, root: str) -> float:
    from tunelab.config import TrainConfig
    from tunelab.run.training import train

    record = train(TrainConfig(model="minilm", data="rotten-tomatoes", strategy="head", epochs=1, max_train_samples=n,
                               out=os.path.join(root, "run"), cache_dir=os.path.join(root, "cache"), forgetting=False,
                               screening=True), progress=False)
    return float(record["train_info"]["cache"]["build_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="each variant this many times, alternating")
    parser.add_argument("--texts", type=int, default=2000, help="training texts in each pass")
    args = parser.parse_args(argv)

    import torch

    import tunelab.run.padding as padding
    from tunelab.data import load_task_data

    data = load_task_data("rotten-tomatoes")
    texts, labels = list(data.train["text"][: args.texts]), data.label_names
    allowed = padding.one_pass_attention
    variants = {"cuDNN left out (default)": allowed, "cuDNN allowed": contextlib.nullcontext}
    times: dict[str, dict[str, list[float]]] = {v: {"features": [], "cache build": []} for v in variants}
    print(f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu (both variants the same)'}")
    with tempfile.TemporaryDirectory() as root:  # warm-up, not timed: loading, CUDA's start, the first kernels
        os.environ["TUNELAB_CACHE"] = os.path.join(root, "tunelab-cache")
        _features_s(texts[:64], labels)
        _cache_build_s(64, root)
    for r in range(args.rounds):
        order = list(variants.items())
        for name, context in order[::-1] if r % 2 else order:  # each variant first in every other round
            padding.one_pass_attention = context
            with tempfile.TemporaryDirectory() as root:
                os.environ["TUNELAB_CACHE"] = os.path.join(root, "tunelab-cache")
                times[name]["features"].append(_features_s(texts, labels))
                times[name]["cache build"].append(_cache_build_s(args.texts, root))
            print(f"round {r + 1} {name}: features {times[name]['features'][-1]:.2f} s, "
                  f"cache build {times[name]['cache build'][-1]:.2f} s", flush=True)
    padding.one_pass_attention = allowed
    print(f"\n{'variant':<26} {'features (median)':>18} {'cache build (median)':>21}")
    for name, t in times.items():
        print(f"{name:<26} {statistics.median(t['features']):>16.2f} s {statistics.median(t['cache build']):>19.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
