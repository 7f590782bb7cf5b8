"""How often tunelab's 95 % bootstrap intervals contain the truth, percentile against BCa (no training).

    .venv/bin/python benchmarks/interval_coverage.py            # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/interval_coverage.py --sims 100 # quicker, coarser

For each case a large population of examples stands for the truth; evaluation sets of ``n`` examples are drawn from
it again and again, each gets its interval (:func:`tunelab.advice.stats.bootstrap_interval`), and the share of
intervals holding the population's value is the coverage (the target: 0.95). Cases:

- ``accuracy``: a binary classifier right 80 % of the time (a mean of per-example values: the percentile interval's
  home ground);
- ``f1_macro``: 20 classes with priors from 30 % down to 0.15 % and per-class recall from 0.85 down to 0.40 (the
  imbalanced topics a user walk-through found the percentile interval low on);
- ``perplexity``: per-text losses from a gamma distribution, weighted by token counts from 5 to 400 (exp of a ratio:
  skewed).

One seed per evaluation set. The printed table is what benchmarks/README.md ("Session 32") records.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tunelab.advice.stats import ExampleResults, bootstrap_interval, metric_value

K = 20
PRIOR = np.array([0.3, 0.15, 0.1, 0.08, 0.07, 0.05, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.015, 0.015, 0.01, 0.01,
                  0.008, 0.007, 0.0035, 0.0015])
PRIOR = PRIOR / PRIOR.sum()
RECALL = np.linspace(0.85, 0.40, K)


def draw(case: str, m: int, rng: np.random.Generator) -> ExampleResults:
    if case == "accuracy":
        y = rng.integers(0, 2, m)
        return ExampleResults.classification(y, np.where(rng.random(m) < 0.8, y, 1 - y))
    if case == "f1_macro":
        y = rng.choice(K, m, p=PRIOR)
        return ExampleResults.classification(y, np.where(rng.random(m) < RECALL[y], y, rng.choice(K, m, p=PRIOR)))
    tokens = rng.integers(5, 400, m)
    return ExampleResults.causal_lm(rng.gamma(3.0, 1.2, m) / np.sqrt(tokens / 50), tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--sizes", default="300,1000")
    args = parser.parse_args()
    rng = np.random.default_rng(20261206)
    print("| metric | n | sets | truth | mean estimate | percentile: coverage (truth below / above) | "
          "BCa: coverage (truth below / above) |")
    print("|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for case in ("accuracy", "f1_macro", "perplexity"):
        truth = metric_value(draw(case, 2_000_000, rng), case)
        for n in (int(s) for s in args.sizes.split(",")):
            tally = {m: [0, 0, 0] for m in ("percentile", "bca")}
            estimates = []
            for i in range(args.sims):
                sample = draw(case, n, rng)
                for method, t in tally.items():
                    ci = bootstrap_interval(sample, case, n_boot=args.boot, seed=i, method=method)
                    t[0] += ci.low <= truth <= ci.high
                    t[1] += truth < ci.low
                    t[2] += truth > ci.high
                estimates.append(ci.estimate)
            cells = [f"{t[0] / args.sims:.3f} ({t[1] / args.sims:.3f} / {t[2] / args.sims:.3f})" for t in tally.values()]
            print(f"| {case} | {n} | {args.sims} | {truth:.4g} | {np.mean(estimates):.4g} | {cells[0]} | {cells[1]} |",
                  flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
