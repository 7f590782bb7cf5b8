"""How fast tunelab's bootstrap interval is against the plain loop it replaces, in the same process.

    PYTHONPATH=src .venv/bin/python benchmarks/bootstrap_speed.py [--examples 2000] [--resamples 10000] [--repeats 3]

Both sides draw the same number of resamples of the same examples (accuracy of a binary classifier): tunelab's
``bootstrap_interval`` (vectorised replicates over counts) and a loop that draws each resample's indices and scores it
with scikit-learn's ``accuracy_score``, as a hand-written bootstrap would. Prints each side's best time of
``--repeats`` and their ratio. Replaces a timed unit test (session 43): speed is measured here, not asserted in
``make test``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import accuracy_score

from tunelab.advice.stats import ExampleResults, bootstrap_interval


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, args.examples)
    pred = np.where(rng.random(args.examples) < 0.8, y, 1 - y)
    results = ExampleResults.classification(y, pred)

    def loop() -> None:
        draw = np.random.default_rng(0)
        values = [accuracy_score(y[i], pred[i]) for i in (draw.integers(0, args.examples, args.examples)
                                                            for _ in range(args.resamples))]
        np.quantile(values, [0.025, 0.975])

    fast = best_of(args.repeats, lambda: bootstrap_interval(results, "accuracy", n_boot=args.resamples))
    slow = best_of(max(1, args.repeats - 2), loop)
    print(f"{args.resamples:,} resamples of {args.examples:,} examples, best of {args.repeats} (loop: best of "
          f"{max(1, args.repeats - 2)})")
    print(f"  tunelab bootstrap_interval: {fast:.3f} s")
    print(f"  per-resample loop (sklearn accuracy_score): {slow:.3f} s")
    print(f"  speed-up: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
