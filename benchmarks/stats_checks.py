"""A statistician's checks of the verdict's numbers by simulation (numpy only, no training).

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stats_checks.py              # a few minutes
    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stats_checks.py --sims 100   # quicker, coarser
    ... --part coverage|verdict|power|curves                                                  # one part alone

Data: a 3-class problem (priors 0.5 / 0.3 / 0.2); every example has a difficulty ``z`` shared by all strategies and
seeds (correlation ``RHO`` of their latent errors: strategies on the same examples err on the same hard ones); a seed
is right where ``rho z + sqrt(1 - rho²) e < threshold + shift``, ``shift ~ N(0, sd²)`` per seed (sd 0.15 with 3
seeds, 0 with 1), thresholds set so the expected accuracy is the case's. Wrong answers pick another class at random.
The truth of each metric is its expectation over seeds on an infinite set (Monte Carlo on 400,000 examples x 200
seeds).

Parts:

- ``coverage``: :func:`tunelab.advice.stats.bootstrap_interval`'s 95 % interval (the method the verdict reports:
  :func:`interval_method`) for accuracy and macro-F1, n = 100 / 500 / 2,000, accuracy 0.6 / 0.8 / 0.95, 1 and 3 seeds;
  the share of intervals that hold the truth (target 0.95).
- ``verdict``: false "worse" among equal strategies: :func:`indistinguishable_from_best` (its own test: McNemar mid-p
  with single seeds, the paired bootstrap with Welch's t over 3 seeds; Holm over every pair) with k = 2 and 4 equal
  strategies, and one fixed pair's :func:`paired_bootstrap` p < 0.05 (no best picked). Target: at most 0.05.
- ``power``: two strategies, the second a few points behind. Each pilot set of 250 examples gives
  :func:`tunelab.advice.verdict.examples_to_separate` from its own measured variance parts (with the true gap, and with
  the gap it measured); one fresh set of that many examples then says whether the verdict calls the second worse. The
  share is the power delivered (target 0.80). ``benchmarks/separation_power.py`` checks the same number from the
  pilots' *mean* parts instead.
- ``curves``: :func:`tunelab.advice.curves.back_test`'s 80 % interval for one new measurement (fit on 4 or 5 fractions,
  predict the next doubling) and :func:`fit_power_law`'s 80 % interval of the curve at 2x the largest n, on curves
  ``0.9 - 1.2 n^-0.5`` (and ``0.85 - 3 n^-0.7``) with noise sd 0.004-0.01 per point (1 seed) or 3 seeds of sd 0.01.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from scipy.stats import norm

from tunelab.advice.curves import back_test, fit_power_law
from tunelab.advice.stats import (
    ExampleResults,
    bootstrap_interval,
    indistinguishable_from_best,
    interval_method,
    metric_value,
    paired_bootstrap,
)
from tunelab.advice.verdict import Versus, examples_to_separate

PRIOR = np.array([0.5, 0.3, 0.2])
RHO = 0.7
SEED_SD = 0.15


def draw(n: int, accs: list[float], seeds: int, rng: np.random.Generator, seed_sd: float = SEED_SD
         ) -> list[ExampleResults]:
    """One evaluation set of ``n`` examples and one :class:`ExampleResults` per accuracy in ``accs``."""
    k = PRIOR.size
    y = rng.choice(k, n, p=PRIOR)
    z = rng.standard_normal(n)
    sd = seed_sd if seeds > 1 else 0.0
    out = []
    for acc in accs:
        thr = norm.ppf(acc) * np.sqrt(1 + sd**2)  # P(N(0, 1 + sd²) < thr) = acc
        preds = []
        for _ in range(seeds):
            latent = RHO * z + np.sqrt(1 - RHO**2) * rng.standard_normal(n)
            right = latent < thr + rng.normal(0, sd)
            preds.append(np.where(right, y, (y + rng.integers(1, k, n)) % k))
        out.append(ExampleResults.classification(y, np.array(preds)))
    return out


def truth(acc: float, seeds: int, metric: str, rng: np.random.Generator) -> float:
    """The metric's expectation over seeds on an infinite set (Monte Carlo; accuracy is ``acc`` by construction)."""
    if metric == "accuracy":
        return acc
    vals = []
    for _ in range(100 if seeds > 1 else 3):
        (r,) = draw(200_000, [acc], 2 if seeds > 1 else 1, rng)  # 2: draw() then gives each seed its shift
        vals.append(metric_value(ExampleResults.classification(r.y_true, r.y_pred[:1]), metric))
    return float(np.mean(vals))


def coverage(sims: int, boot: int) -> None:
    print("## coverage of the 95 % interval (target 0.95)")
    print(f"{'metric':9} {'seeds':>5} {'acc':>5} {'n':>5} {'coverage':>9} {'mean width':>10}")
    rng = np.random.default_rng(1)
    for metric in ("accuracy", "f1_macro"):
        for seeds in (1, 3):
            for acc in (0.6, 0.8, 0.95):
                true = truth(acc, seeds, metric, rng)
                for n in (100, 500, 2000):
                    hits, widths = 0, []
                    for s in range(sims):
                        (r,) = draw(n, [acc], seeds, rng)
                        ci = bootstrap_interval(r, metric, n_boot=boot, method=interval_method(metric), seed=s)
                        hits += ci.contains(true)
                        widths.append(ci.width)
                    print(f"{metric:9} {seeds:5d} {acc:5.2f} {n:5d} {hits / sims:9.3f} {np.mean(widths):10.4f}",
                          flush=True)


def verdict_fpr(sims: int, boot: int) -> None:
    print("## false 'worse' among equal strategies (target <= 0.05)")
    print(f"{'seeds':>5} {'k':>2} {'acc':>5} {'n':>5} {'any worse (verdict)':>20} {'pair p<0.05 (paired_bootstrap)':>31}")
    rng = np.random.default_rng(2)
    for seeds in (1, 3):
        for k in (2, 4):
            for acc in (0.6, 0.9):
                for n in (100, 500, 2000):
                    worse = pair = 0
                    for s in range(sims):
                        rs = draw(n, [acc] * k, seeds, rng)
                        v = indistinguishable_from_best({f"s{i}": r for i, r in enumerate(rs)}, "accuracy",
                                                        n_boot=boot, seed=s)
                        worse += any(x.reason == "worse" for x in v.verdicts)
                        if k == 2:
                            pair += paired_bootstrap(rs[0], rs[1], "accuracy", n_boot=boot, seed=s).p_value < 0.05
                    pair_s = f"{pair / sims:31.3f}" if k == 2 else f"{'':>31}"
                    print(f"{seeds:5d} {k:2d} {acc:5.2f} {n:5d} {worse / sims:20.3f} {pair_s}", flush=True)


def power(sims: int, boot: int) -> None:
    print("## power at examples_to_separate's number (target 0.80)")
    print("per pilot set of 250: examples_to_separate from its own variance parts, with the true gap ('true gap') or")
    print("the gap it measured ('as read', pilots where the leader leads); then one fresh set of that many examples:")
    print("the share where the verdict calls the lagging strategy worse is the power delivered. 'numbers': pilots")
    print("that got a number (the rest: none, or over 20,000).")
    print(f"{'seeds':>5} {'seed sd':>7} {'accs':>12} | {'numbers':>7} {'median n':>8} {'power':>6} | "
          f"{'numbers':>7} {'median n':>8} {'power':>6}")
    rng = np.random.default_rng(3)
    for seeds, seed_sd in ((1, 0.0), (3, 0.03)):
        for accs in ((0.80, 0.77), (0.90, 0.88), (0.65, 0.60)):
            true_gap, asked, read = accs[0] - accs[1], [], []
            for s in range(sims):
                v = indistinguishable_from_best(dict(zip("ab", draw(250, list(accs), seeds, rng, seed_sd))),
                                                "accuracy", n_boot=boot, seed=s)
                sv = v.verdict("b" if v.best == "a" else "a")
                vs = Versus(sv.strategy, sv.value, sv.reason, sv.gap, sv.gap_upper, sv.p_value, sv.gap.estimate,
                            sv.p_raw, sv.seeds_variance, sv.examples_variance, sv.seeds_df, sv.seeds_examples_part)
                if v.best == "a":
                    read.append(examples_to_separate(vs, 250, 0.05))
                forced = replace(vs, gap=replace(sv.gap, estimate=true_gap), point_gap=true_gap)
                asked.append(examples_to_separate(forced, 250, 0.05))
            cells = []
            for numbers in (asked, read):
                got = [x for x in numbers if x is not None and x <= 20_000]
                shown = 0
                for s, n in enumerate(got):
                    v = indistinguishable_from_best(dict(zip("ab", draw(n, list(accs), seeds, rng, seed_sd))),
                                                    "accuracy", n_boot=boot, seed=s)
                    shown += v.best == "a" and v.verdict("b").reason == "worse"
                median = f"{int(np.median(got)):8d}" if got else f"{'-':>8}"
                cells.append(f"{len(got):3d}/{len(numbers):<3d} {median} {shown / max(len(got), 1):6.3f}")
            print(f"{seeds:5d} {seed_sd:7.2f} {str(accs):>12} | {cells[0]} | {cells[1]}", flush=True)


def curves(sims: int) -> None:
    print("## learning curve: 80 % intervals (target 0.80)")
    print(f"{'law':>16} {'points':>6} {'seeds':>5} {'sd':>6} {'back_test obs':>13} {'curve at 2x':>11}")
    rng = np.random.default_rng(4)
    laws = {"0.9-1.2n^-0.5": (0.9, 1.2, 0.5), "0.85-3n^-0.7": (0.85, 3.0, 0.7)}
    for name, (a, b, c) in laws.items():
        f = lambda n, a=a, b=b, c=c: a - b * n**-c  # noqa: E731
        for points in (4, 5):
            n = 250 * 2.0 ** np.arange(points + 1)  # the last is the held-out one (back_test)
            for seeds, sd in ((1, 0.004), (1, 0.01), (3, 0.01)):
                obs = curve = tried = 0
                for s in range(sims):
                    y = [f(x) + rng.normal(0, sd, seeds) for x in n]
                    bt = back_test(n, y, "accuracy", level=0.8, n_boot=400, seed=s)
                    if bt.covered is None:
                        continue
                    tried += 1
                    obs += bt.covered
                    fit = fit_power_law(n[:-1], y[:-1], "accuracy", level=0.8, n_boot=400, seed=s, horizons=())
                    curve += fit.interval(n[-1]).contains(f(n[-1]))
                print(f"{name:>16} {points:6d} {seeds:5d} {sd:6.3f} {obs / max(tried, 1):13.3f} "
                      f"{curve / max(tried, 1):11.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--part", choices=("coverage", "verdict", "power", "curves", "all"), default="all")
    args = parser.parse_args()
    t0 = time.time()
    if args.part in ("coverage", "all"):
        coverage(args.sims, args.boot)
    if args.part in ("verdict", "all"):
        verdict_fpr(args.sims, args.boot)
    if args.part in ("power", "all"):
        power(args.sims, args.boot)
    if args.part in ("curves", "all"):
        curves(args.sims)
    print(f"({time.time() - t0:.0f} s, sims={args.sims}, boot={args.boot})")


if __name__ == "__main__":
    main()
