"""Does ``examples_to_separate`` name a number of examples at which the verdict's test has the power it promises?

    PYTHONPATH=src .venv/bin/python benchmarks/separation_power.py --sims 200   # a few minutes on a shared core

Two strategies of 3 seeds each (benchmarks/interval_coverage.py's balanced setup: a probit shift per seed, sd ``s``),
one ``g`` points of accuracy behind. A pilot of 100 sets at 250 examples gives the parts of the gap's variance as the verdict
measures them (means of ``examples_variance``, ``seeds_variance`` and ``seeds_examples_part``, the seeds' own example
noise in it; median ``seeds_df``); from them the number of examples three rules ask for at 80 % power: the normal
quantiles with the seeds' part held (before session 43), the verdict's Welch t with it held, and the Welch t with the
seeds' own example noise shrinking as 1/n (now). Then ``--sims`` fresh sets at each number: how often the verdict calls the second strategy worse (two
strategies: Holm changes nothing). The target is 0.80 at each side's own number.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from interval_coverage import draw_seeded, offset_for_gap
from scipy import stats as sps

from tunelab.advice.stats import indistinguishable_from_best
from tunelab.advice.verdict import _ratio_needed

RHO = 0.7  # examples share a difficulty (interval_coverage.draw_seeded's default); the rest is each seed's own


def verdict(n, sd, offset, rng, boot, seed):
    a, b = draw_seeded("balanced", n, (sd, sd), (0.0, offset), rng, rho=RHO)
    return indistinguishable_from_best({"a": a, "b": b}, "accuracy", test="bootstrap", n_boot=boot, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--pilot", type=int, default=100)
    parser.add_argument("--cases", default="0.03:0.05,0.05:0.06,0.1:0.08", help="seeds' probit sd:gap, comma-separated")
    args = parser.parse_args()
    rng = np.random.default_rng(20261207)
    print("| seeds' probit sd | gap | examples' var x n | seeds' var (own example noise; df) | normal: n, power "
          "| t, seeds' part held: n, power | t, own noise shrinking (now): n, power |")
    print("|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        sd, gap = (float(x) for x in case.split(":"))
        offset = offset_for_gap("balanced", sd, gap)
        pilot = [verdict(250, sd, offset, rng, args.boot, i) for i in range(args.pilot)]
        vs = [p.verdict("b") if p.best == "a" else p.verdict("a") for p in pilot]
        examples = float(np.mean([v.examples_variance for v in vs]))
        seeds = float(np.mean([v.seeds_variance for v in vs]))
        own = float(np.mean([v.seeds_examples_part for v in vs]))
        seeds_df = float(np.median([v.seeds_df for v in vs]))
        k = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
        allowed = (gap / k) ** 2
        sizes = [math.ceil(250 * examples / (allowed - seeds)) if allowed > seeds else None]
        for shrinking in (0.0, own):
            ratio = _ratio_needed(gap, examples, seeds, shrinking, seeds_df, 0.05, 0.8)
            sizes.append(math.ceil(250 * ratio) if ratio is not None else None)
        cells = []
        for n in sizes:
            if n is None or n > 20000:
                cells.append(f"{n}, -")
                continue
            hits = 0
            for i in range(args.sims):
                v = verdict(n, sd, offset, rng, args.boot, i)
                hits += v.best == "a" and v.verdict("b").reason == "worse"
            cells.append(f"{n:,}, {hits / args.sims:.3f}")
        print(f"| {sd:g} | {gap:g} | {250 * examples:.4f} | {seeds:.2e} ({own:.2e}; {seeds_df:.2f}) | {' | '.join(cells)} |",
              flush=True)


if __name__ == "__main__":
    main()
