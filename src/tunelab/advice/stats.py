"""Uncertainty and paired comparison of strategies from per-example results.

Every comparison tunelab makes is on one fixed evaluation set, so the natural unit of sampling is the
*example*: each strategy's metric is a function of per-example quantities, and two strategies evaluated
on the same examples are paired. This module turns per-example results into intervals and tests.

**Per-example results** (:class:`ExampleResults`)

* classification: the true labels and each seed's predicted labels (``accuracy``, ``f1_macro``);
* causal LM: each example's mean per-token loss and its token count (``loss``, ``perplexity``). The
  corpus loss is the token-weighted mean ``sum(tokens * loss) / sum(tokens)`` and perplexity is
  ``exp`` of it, as in training; the bootstrap resamples *examples* (texts), carrying their token
  weights, because tokens of one text are not independent.

**Bootstrap** (:func:`bootstrap_interval`). Each metric is written as a function of additive
per-example sums (accuracy: correct and count; macro-F1: per-class true positives, predicted and true
counts, averaged over the split's gold classes as :func:`tunelab.metrics.macro_classes`; loss: weighted loss and tokens), so a resample is a vector of example *counts* and its sums
are one matrix product. 10,000 resamples of 2,000 examples take a fraction of a second. Intervals
are percentile intervals by default; ``method="bca"`` gives the bias-corrected and accelerated interval
(Efron 1987), whose acceleration comes from the exact jackknife (cheap here: leaving one example out is
subtracting its row from the sums; with several seeds, averaged over them). tunelab reports BCa intervals for
macro-F1 (:data:`BCA_METRICS`, :func:`interval_method`), measured to cover better with rare classes.

**Several seeds** — examples by the bootstrap, seeds by Student's t. Seeds of one strategy are evaluated on the
*same* examples, so the two sources of variation are crossed, not nested: each replicate draws one example resample
shared by all seeds and averages the per-seed metric over them (tunelab reports the mean over seeds); drawing
examples separately for each seed would treat the shared test set as several independent ones. The seeds' part of
the variance is the sample variance of the seeds' metrics over their number (:func:`seed_variance`), known from
``S - 1`` degrees of freedom only (2 with 3 seeds). Each side of the examples' interval is widened by it on the
Welch-Satterthwaite degrees of freedom (:func:`satterthwaite_df`, :func:`_with_seeds`): Student's t, between
``t(S - 1)`` where the seeds' spread dominates and the normal where the examples' does. Resampling the seeds as well
(the crossed bootstrap tunelab used before) takes their spread as known and shrinks it by ``(S - 1) / S``: with 3
seeds whose probit shift has sd 0.15, its 95 % intervals held the truth 85-87 % of the time at 1,000 examples, and
among four equally good strategies one was called worse in up to 28 % of simulated sets (now: at most 4 %;
benchmarks/README.md, "Session 42"). With one seed nothing changes.

**Paired comparison** (:func:`paired_bootstrap`, :func:`mcnemar`). Strategies A and B share each
replicate's example resample, so the interval of ``metric(A) - metric(B)`` reflects the pairing. The
two-sided p-value inverts the percentile interval: ``p = 2 min(P*(Δ* <= 0), P*(Δ* >= 0))`` with the
``(1 + count) / (1 + B)`` correction, so ``p < alpha`` exactly when the ``1 - alpha`` percentile interval
excludes 0 (up to Monte Carlo error; resolution ``2 / (B + 1)``). Where a strategy has several seeds, the test is
Welch's t on the examples' variance (the paired replicates') plus each strategy's seeds' part, on the Satterthwaite
degrees of freedom (:func:`_gap_p`), and the gap's interval is widened as above. For accuracy of single runs the exact
McNemar test uses only the discordant examples; the mid-p version (Fagerland, Lydersen & Laake 2013) is
the default as it keeps the nominal level more closely than the conservative exact test.

**Which strategies are as good as the best** (:func:`indistinguishable_from_best`). The best is the
strategy with the best point estimate. Every other one is compared with it, paired, and gets a reason:

* ``"within_tolerance"`` — non-inferiority is shown: the one-sided ``1 - alpha`` upper bound of its gap
  to the best is at most ``tolerance`` (absolute for accuracy-like metrics, relative for perplexity and
  loss, as in :mod:`tunelab.advice.choose`);
* ``"not_distinguishable"`` — the test of equality with the best is not rejected at ``alpha`` (Holm-
  adjusted by default: each "worse" is a claim, and Holm controls the chance of any false one; over all
  ``k (k - 1) / 2`` pairs, not the ``k - 1`` comparisons made, because the best is picked from the same
  data, :func:`holm_against_best`);
* ``"worse"`` — neither.

The best is picked on the same data, so its lead is slightly optimistic (winner's curse); the tests
do not re-pick it in every replicate, and the adjustment counts every pair it could have been compared in. Verdicts compare with the best only, not with each other.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> lora = np.where(rng.random(2000) < 0.85, y, 1 - y)
>>> head = np.where(rng.random(2000) < 0.75, y, 1 - y)
>>> ci = bootstrap_interval(ExampleResults.classification(y, lora), "accuracy", seed=0)
>>> print(f"{ci.estimate:.3f} [{ci.low:.3f}, {ci.high:.3f}]")
0.854 [0.838, 0.869]
>>> verdict = indistinguishable_from_best(
...     {"lora": ExampleResults.classification(y, lora), "head": ExampleResults.classification(y, head)},
...     "accuracy")
>>> verdict.best, verdict.kept, verdict.verdict("head").reason
('lora', ('lora',), 'worse')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from tunelab.metrics import higher_is_better, in_range, macro_classes

#: Elements of the (resamples x examples) count matrix built at once: bounds memory at ~16 MB.
_CHUNK_ELEMENTS = 2_000_000

IntervalMethod = Literal["percentile", "bca"]
#: The metrics whose intervals tunelab reports as BCa (:func:`interval_method`): macro-F1 with rare classes is biased
#: low in small sets, and a percentile interval carries that bias twice (its replicates are biased again). On 20
#: classes with priors down to 0.15 % (``benchmarks/interval_coverage.py``), the 95 % percentile interval held the
#: truth in 71 % of 300-example sets and 80 % of 1,000-example ones, the BCa interval in 81 % and 85 % (session 32);
#: with macro-F1 over the split's gold classes (session 43) 83 % and 83 %, BCa 82 % and 87 %. Accuracy and
#: perplexity cover at about 95 % either way, and keep the percentile interval.
BCA_METRICS = ("f1_macro",)
Reason = Literal["best", "within_tolerance", "not_distinguishable", "worse"]


# ----------------------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval.

    ``n`` is the number of units resampled (examples, or curve points); ``n_seeds`` the seeds combined.
    ``low``/``high`` may be infinite when the quantity is unbounded (e.g. a crossover that may never
    happen)."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int
    n_seeds: int = 1

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class PairedComparison:
    """``metric(a) - metric(b)`` on the same examples, with its interval and a two-sided p-value of
    "no difference" from ``test``."""

    metric: str
    a_value: float
    b_value: float
    difference: Interval
    p_value: float
    test: str


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness: ``a_only`` examples only A got right, ``b_only`` only B."""

    a_only: int
    b_only: int
    n: int
    p_value: float
    method: Literal["exact", "mid-p"]

    @property
    def difference(self) -> float:
        """Accuracy of A minus accuracy of B."""
        return (self.a_only - self.b_only) / self.n


@dataclass(frozen=True)
class StrategyVerdict:
    """How one strategy compares with the best.

    ``gap`` is how much worse than the best it is (>= 0 means worse): ``best - value`` for accuracy-like
    metrics, ``value / best - 1`` (relative) for perplexity and loss; its interval is two-sided at
    ``1 - alpha``. ``gap_upper`` is the one-sided ``1 - alpha`` upper bound that the tolerance is checked
    against. ``p_value`` tests equality with the best (adjusted as the set says; ``p_raw`` is unadjusted).
    All four are ``None`` for the best itself. ``examples_variance`` and ``seeds_variance``: the two parts of the
    gap's variance that the interval and the test are built from (the paired replicates' variance, and both
    strategies' :func:`seed_variance` on the gap's scale; 0 with one seed); ``seeds_df`` the seeds' part's own
    Welch-Satterthwaite degrees of freedom (:func:`satterthwaite_df` of it alone; infinite with one seed), from which the
    test's degrees of freedom at any examples' part follow (:func:`tunelab.advice.verdict.examples_to_separate`);
    ``seeds_examples_part`` how much of ``seeds_variance`` is the seeds' own example noise, which more examples shrink
    (:func:`seeds_own_example_noise`)."""

    strategy: str
    value: float
    reason: Reason
    gap: Interval | None = None
    gap_upper: float | None = None
    p_value: float | None = None
    p_raw: float | None = None
    examples_variance: float | None = None
    seeds_variance: float = 0.0
    seeds_df: float = math.inf
    seeds_examples_part: float = 0.0

    @property
    def as_good_as_best(self) -> bool:
        return self.reason != "worse"


@dataclass(frozen=True)
class BestSet:
    """The verdict of :func:`indistinguishable_from_best`: one :class:`StrategyVerdict` per strategy,
    best first, then in the order given."""

    metric: str
    best: str
    alpha: float
    tolerance: float | None
    test: str
    adjust: str
    verdicts: tuple[StrategyVerdict, ...]

    @property
    def kept(self) -> tuple[str, ...]:
        """The strategies not shown to be worse than the best (the best included)."""
        return tuple(v.strategy for v in self.verdicts if v.as_good_as_best)

    def verdict(self, strategy: str) -> StrategyVerdict:
        for v in self.verdicts:
            if v.strategy == strategy:
                return v
        raise KeyError(strategy)


# ------------------------------------------------------------------------------------ per-example input


@dataclass(frozen=True, eq=False)
class ExampleResults:
    """Per-example results of one strategy on one evaluation set, for one or more seeds.

    Build it with :meth:`classification` or :meth:`causal_lm`. Arrays are stored with a leading seed
    axis: ``y_pred`` and ``loss`` are ``(n_seeds, n_examples)``; ``y_true`` and ``tokens`` are shared by
    all seeds (same examples, same tokenizer)."""

    task: Literal["classification", "causal_lm"]
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    loss: np.ndarray | None = None
    tokens: np.ndarray | None = None

    @classmethod
    def classification(cls, y_true: np.ndarray, y_pred: np.ndarray) -> ExampleResults:
        """``y_true`` of shape ``(n,)``; ``y_pred`` of shape ``(n,)`` or ``(n_seeds, n)``. Labels may be
        any hashable values numpy can sort (ints or strings)."""
        y_true = np.asarray(y_true)
        y_pred = np.atleast_2d(np.asarray(y_pred))
        if y_true.ndim != 1 or y_pred.ndim != 2 or y_pred.shape[1] != y_true.shape[0]:
            raise ValueError(f"y_pred {y_pred.shape} does not match y_true {y_true.shape}")
        if y_true.size == 0:
            raise ValueError("no examples")
        return cls("classification", y_true=y_true, y_pred=y_pred)

    @classmethod
    def causal_lm(cls, loss: np.ndarray, tokens: np.ndarray | None = None) -> ExampleResults:
        """``loss``: each example's mean per-token loss (nats), ``(n,)`` or ``(n_seeds, n)``;
        ``tokens``: each example's number of predicted tokens ``(n,)`` (all 1 when omitted)."""
        loss = np.atleast_2d(np.asarray(loss, dtype=np.float64))
        n = loss.shape[1]
        tokens = np.ones(n) if tokens is None else np.asarray(tokens, dtype=np.float64)
        if loss.ndim != 2 or tokens.shape != (n,):
            raise ValueError(f"tokens {tokens.shape} does not match loss {loss.shape}")
        if n == 0:
            raise ValueError("no examples")
        if not (np.all(np.isfinite(loss)) and np.all(tokens >= 0) and tokens.sum() > 0):
            raise ValueError("losses must be finite and token counts non-negative, with some tokens")
        return cls("causal_lm", loss=loss, tokens=tokens)

    @property
    def n_examples(self) -> int:
        return int((self.y_pred if self.task == "classification" else self.loss).shape[1])

    @property
    def n_seeds(self) -> int:
        return int((self.y_pred if self.task == "classification" else self.loss).shape[0])


# A metric as (per-example additive features X of shape (seeds, n, k), g: sums (..., k) -> value (...)).
_Additive = tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]


def _additive(results: ExampleResults, metric: str) -> _Additive:
    """Write ``metric`` as ``g(sum_i X_i)``: what makes resampling one matrix product and the jackknife
    one subtraction."""
    higher_is_better(metric)
    if results.task == "classification":
        if metric not in ("accuracy", "f1_macro"):
            raise ValueError(f"{metric!r} is not a classification metric")
        y_true, y_pred = results.y_true, results.y_pred
        assert y_true is not None and y_pred is not None
        if metric == "accuracy":
            correct = (y_pred == y_true[None, :]).astype(np.float64)
            X = np.stack([correct, np.ones_like(correct)], axis=-1)
            return X, lambda s: s[..., 0] / s[..., 1]
        classes, inverse = np.unique(np.concatenate([y_true, y_pred.ravel()]), return_inverse=True)
        k = classes.size
        t = inverse[: y_true.size]
        p = inverse[y_true.size :].reshape(y_pred.shape)
        eye = np.eye(k)
        true_1h = np.broadcast_to(eye[t], p.shape + (k,))
        pred_1h = eye[p]
        X = np.concatenate([pred_1h * true_1h, pred_1h, true_1h], axis=-1)
        # tunelab.metrics.macro_classes of the whole split: its gold classes, the same for every seed and strategy
        averaged = np.isin(classes, macro_classes(y_true))  # (k,)

        def f1_macro(s: np.ndarray) -> np.ndarray:
            # As tunelab.metrics.classification_scores on the whole split, over its gold classes, fixed for every
            # resample. A rare class that a resample happens to leave out counts 0 (it was never predicted right), as
            # it does in the whole split; dropping it instead lifted the resample to the other classes' mean, and a
            # model that never found a class of 2 got an upper bound of 1.000.
            tp, pred_n, true_n = s[..., :k], s[..., k : 2 * k], s[..., 2 * k :]
            denom = pred_n + true_n
            f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
            return (f1 * averaged).sum(-1) / max(int(averaged.sum()), 1)

        return X, f1_macro
    if metric not in ("loss", "perplexity"):
        raise ValueError(f"{metric!r} is not a causal-LM metric")
    loss, tokens = results.loss, results.tokens
    assert loss is not None and tokens is not None
    # A text with no predicted tokens weighs nothing in the loss, and is left out of the units resampled: kept, a
    # resample of such texts alone had no loss (0 / 0), and one such replicate in 10,000 made the interval nan.
    loss, tokens = loss[:, tokens > 0], tokens[tokens > 0]
    w = np.broadcast_to(tokens, loss.shape)
    X = np.stack([w * loss, w], axis=-1)
    if metric == "loss":
        return X, lambda s: s[..., 0] / s[..., 1]
    # Capped as in training (exp(min(loss, 50))) so that a diverged run stays finite.
    return X, lambda s: np.exp(np.minimum(s[..., 0] / s[..., 1], 50.0))


def _point(add: _Additive) -> float:
    X, g = add
    return float(np.mean(g(X.sum(axis=1))))


def _counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` bootstrap resamples of ``n`` units as a ``(size, n)`` matrix of counts (each row sums to
    ``n``): ``bincount`` of the drawn indices offset per row, which is much faster than ``multinomial``."""
    idx = rng.integers(0, n, size=(size, n))
    idx += n * np.arange(size)[:, None]
    return np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def _replicates(adds: list[_Additive], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates ``(n_boot, len(adds))`` of each metric over the examples; all share one example resample
    per replicate (pairing). Seeds are held and averaged: these are the examples' part alone, and the seeds' part is
    added by Student's t (:func:`_with_seeds`, :func:`seed_replicates`)."""
    n = adds[0][0].shape[1]
    out = np.empty((n_boot, len(adds)))
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        W = _counts(rng, n, size)
        for j, (X, g) in enumerate(adds):
            s, _, k = X.shape
            sums = (W @ X.transpose(1, 0, 2).reshape(n, s * k)).reshape(size, s, k)
            per_seed = g(sums)
            out[start : start + size, j] = per_seed.mean(axis=1)
    return out


def _jackknife(add: _Additive) -> np.ndarray:
    """Leave-one-example-out values of the metric, averaged over seeds (each seed without that example): BCa's
    acceleration over the examples. With several seeds the seeds' part of the variance has no jackknife here; the
    bias correction comes from the examples' replicates, and the seeds' part is added after (:func:`_with_seeds`)."""
    return _jackknife_per_seed(add).mean(axis=1)


def _jackknife_per_seed(add: _Additive) -> np.ndarray:
    """Leave-one-example-out values of the metric, ``(examples, seeds)``: each seed without that example."""
    X, g = add
    seeds, n, k = X.shape
    whole = X.sum(axis=1)[None, :, :]
    chunk = max(1, _CHUNK_ELEMENTS // (seeds * k))  # memory bounded like the replicates' (100 classes, 50,000 examples)
    return np.concatenate([g(whole - X[:, i : i + chunk].transpose(1, 0, 2))  # (examples, seeds, sums)
                           for i in range(0, n, chunk)])


def _interval_from(
    reps: np.ndarray, estimate: float, level: float, method: IntervalMethod, jack: np.ndarray | None
) -> tuple[float, float]:
    alpha = 1.0 - level
    if method == "percentile":
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        return float(lo), float(hi)
    if method != "bca":
        raise ValueError(f"unknown interval method {method!r}")
    if jack is None:
        raise ValueError("BCa needs the jackknife values of the metric")
    if np.ptp(reps) == 0:
        return float(reps[0]), float(reps[0])
    b = reps.size
    # Mid-rank proportion: metrics such as accuracy are discrete, and ties at the estimate are common.
    below = (np.sum(reps < estimate) + 0.5 * np.sum(reps == estimate)) / b
    z0 = sps.norm.ppf(np.clip(below, 1 / (b + 1), b / (b + 1)))
    d = jack.mean() - jack
    denom = 6.0 * np.sum(d**2) ** 1.5
    acc = float(np.sum(d**3) / denom) if denom > 0 else 0.0
    z = sps.norm.ppf([alpha / 2, 1 - alpha / 2])
    q = sps.norm.cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))
    lo, hi = np.quantile(reps, q)
    return float(lo), float(hi)


def seed_variance(results: ExampleResults, metric: str) -> tuple[float, int]:
    """The seeds' part of the variance of a strategy's mean over seeds, and its degrees of freedom: the sample variance
    of the seeds' metrics over their number, on ``n_seeds - 1`` degrees of freedom ``(0.0, 0)`` with one seed). It holds
    a little example noise too (each seed's own errors on the same examples), so added to the examples' part it errs
    on the wide side."""
    return variance_over_seeds(seed_values(results, metric))


def seeds_own_example_noise(results: ExampleResults, metric: str) -> float:
    """The part of :func:`seed_variance` that is each seed's own example noise, and so shrinks as ``1 / n`` with more
    examples: seeds err on different examples as well as by different amounts, and on a finite set that spreads their
    metrics too. Each seed's deviation from the seeds' mean has a jackknife variance over the examples of
    ``tau² (S - 1) / S`` (``tau²``: one seed's own example noise; what the seeds share cancels); ``tau² / S`` of it is
    in the variance of the mean over seeds. Not capped at the seed variance (whose estimate, on ``S - 1`` degrees of
    freedom, is often below it): capping each strategy's biased it low (65 % of the truth with 3 seeds); the gap's sum
    is capped (:attr:`StrategyVerdict.seeds_examples_part`). 0 with one seed."""
    if results.n_seeds < 2:
        return 0.0
    seeds = results.n_seeds
    jack = _jackknife_per_seed(_additive(results, metric))
    own = jack - jack.mean(axis=1, keepdims=True)
    n = own.shape[0]
    per_seed = (n - 1) / n * np.sum((own - own.mean(axis=0)) ** 2, axis=0)
    return float(per_seed.mean() / (seeds - 1))


def variance_over_seeds(values: Any) -> tuple[float, int]:
    """:func:`seed_variance` from the seeds' values of any quantity (e.g. a learning curve's point): their sample
    variance over their number and ``len(values) - 1`` degrees of freedom; ``(0.0, 0)`` with one value.

    >>> variance_over_seeds([0.7, 0.8, 0.9])[1], round(variance_over_seeds([0.7, 0.8, 0.9])[0], 6)
    (2, 0.003333)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        return 0.0, 0
    return float(np.var(values, ddof=1) / values.size), int(values.size - 1)


def seed_replicates(parts: list[tuple[float, int]], size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws ``(size, len(parts))`` of the seeds' parts of several means over seeds (e.g. a learning curve's points),
    for replicates that carry the examples' part already (a fitted curve's bootstrap, :mod:`tunelab.advice.curves`).
    ``parts``: each mean's :func:`seed_variance` pair ``(variance, df)``. Part ``i`` is ``sqrt(variance_i) * N`` and
    each row shares one ``sqrt(nu / chi2(nu))`` with ``nu`` the parts' Welch-Satterthwaite degrees of freedom
    (:func:`satterthwaite_df`): any sum of the parts is then ``sqrt(its variance) * t(nu)``, the verdict's treatment
    (:func:`_with_seeds`), drawn instead of added to an interval's sides, so that statistics that are no one
    interval's quantile (a curve's asymptote, a crossover's ``n``) carry it too. One part: ``sqrt(variance) * t(df)``.
    Zeros where no part has a spread. Resampling the seeds instead took their spread as known and shrank it by
    ``(S - 1) / S`` (module doc). Independent t's per part would not pool the parts' degrees of freedom: the 95 %
    interval of a 5-point curve with 3 seeds a point then held the truth 98.5 % of the time (``tests/test_curves.py``).
    """
    variances = np.array([max(0.0, v) for v, _ in parts], dtype=np.float64)
    if not parts or not np.any(variances > 0):
        return np.zeros((size, len(parts)))
    nu = satterthwaite_df(0.0, list(parts))
    draws = rng.standard_normal((size, len(parts))) * np.sqrt(variances)
    if math.isfinite(nu):
        draws *= np.sqrt(nu / rng.chisquare(nu, size=(size, 1)))
    return draws


def satterthwaite_df(examples_variance: float, seed_parts: list[tuple[float, int]]) -> float:
    """Welch-Satterthwaite degrees of freedom of ``examples_variance + sum(seed variances)``: the examples' part is
    estimated from many examples (infinite degrees of freedom), each seed part from ``df`` of its own. Between the
    smallest seed ``df`` (the seeds' spread dominates) and infinity (the examples' does).

    >>> satterthwaite_df(0.0, [(1.0, 2)]), satterthwaite_df(1.0, [(1.0, 2)]), satterthwaite_df(1.0, [])
    (2.0, 8.0, inf)
    """
    total = examples_variance + sum(v for v, _ in seed_parts)
    denom = sum(v * v / df for v, df in seed_parts if v > 0 and df > 0)
    return float(total * total / denom) if denom > 0 else math.inf


def _with_seeds(estimate: float, low: float, high: float, level: float, seeds: float, df: float,
                one_sided: bool = False) -> tuple[float, float]:
    """An interval over the examples (``low``, ``high`` at ``level``) widened by the seeds' variance ``seeds``: each
    side's half-width ``h`` becomes ``t(df) / z * sqrt(h² + z² seeds)`` (``z``, ``t``: the normal and Student quantiles
    of the level; one-sided: of ``level`` itself). With a normal examples' part this is the Satterthwaite t interval of
    ``examples + seeds``; the examples' side-to-side asymmetry (BCa, a skewed perplexity) is kept. The seeds' part is
    estimated from a few seeds (2 degrees of freedom with 3): used as if known, with the normal quantile, the 95 %
    intervals held the truth 81-89 % of the time at 1,000 examples (benchmarks/README.md, "Session 42")."""
    if seeds <= 0:
        return low, high
    q = level if one_sided else (1 + level) / 2
    z, t = float(sps.norm.ppf(q)), float(sps.t.ppf(q, df)) if math.isfinite(df) else float(sps.norm.ppf(q))
    return (estimate - t / z * math.sqrt((estimate - low) ** 2 + z * z * seeds),
            estimate + t / z * math.sqrt((high - estimate) ** 2 + z * z * seeds))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


# ---------------------------------------------------------------------------------------- public API


def interval_method(metric: str) -> IntervalMethod:
    """The interval tunelab reports for ``metric``: BCa for :data:`BCA_METRICS`, the percentile interval otherwise."""
    return "bca" if metric in BCA_METRICS else "percentile"


def metric_value(results: ExampleResults, metric: str) -> float:
    """The metric on the whole set, averaged over seeds (what tunelab reports)."""
    return _point(_additive(results, metric))


def seed_values(results: ExampleResults, metric: str) -> np.ndarray:
    """``metric`` of each seed on the whole set, ``(n_seeds,)``: their mean is :func:`metric_value`."""
    X, g = _additive(results, metric)
    return np.asarray(g(X.sum(axis=1)), dtype=np.float64)


def bootstrap_interval(
    results: ExampleResults,
    metric: str,
    *,
    level: float = 0.95,
    n_boot: int = 10_000,
    method: IntervalMethod = "percentile",
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of ``metric`` over the examples; with several seeds, widened by Student's t on their spread
    (see module doc)."""
    _check_level(level)
    add = _additive(results, metric)
    estimate = _point(add)
    reps = _replicates([add], n_boot, np.random.default_rng(seed))[:, 0]
    jack = _jackknife(add) if method == "bca" else None
    lo, hi = _interval_from(reps, estimate, level, method, jack)
    seeds, df = seed_variance(results, metric)
    if seeds > 0:
        lo, hi = _with_seeds(estimate, lo, hi, level, seeds, satterthwaite_df(float(np.var(reps)), [(seeds, df)]))
        name = f"{method} bootstrap over examples, t over seeds"
    else:
        name = f"{method} bootstrap"
    # Student's t on a few seeds' spread can reach past the metric's range (accuracy above 1): the truth is inside it
    return Interval(estimate, in_range(lo, metric), in_range(hi, metric), level, name, results.n_examples,
                    results.n_seeds)


def joint_replicates(results: list[ExampleResults], metric: str, *, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates ``(n_boot, len(results))`` of ``metric`` for each of ``results`` (e.g. one strategy's runs
    at several data fractions) over the examples, each seed's value averaged (the examples' part; the seeds' is the
    caller's, :func:`seed_replicates`): drawn with one example resample per replicate when all were evaluated on the
    same examples (their noise is then shared, as it is in the measurements), independently otherwise.

    >>> y = np.array([0, 0, 0, 1])
    >>> joint_replicates([ExampleResults.classification(y, np.zeros(4, int))] * 2, "accuracy", n_boot=5).shape
    (5, 2)
    """
    if not results:
        raise ValueError("no results to resample")
    rng = np.random.default_rng(seed)
    first = results[0]
    try:
        for other in results[1:]:
            _check_paired(first, other)
    except ValueError:
        return np.column_stack([_replicates([_additive(r, metric)], n_boot, rng)[:, 0] for r in results])
    return _replicates([_additive(r, metric) for r in results], n_boot, rng)


def _check_paired(a: ExampleResults, b: ExampleResults) -> None:
    if a.task != b.task or a.n_examples != b.n_examples:
        raise ValueError("paired comparison needs results of the same task on the same examples")
    same = np.array_equal(a.y_true, b.y_true) if a.task == "classification" else np.array_equal(a.tokens, b.tokens)
    if not same:
        raise ValueError("paired comparison needs the same examples (labels / token counts differ)")


def sign_flip_floor(n_examples: int | None) -> float:
    """The smallest two-sided p an exact sign-flip test on ``n`` paired examples can give, ``2 ** (1 - n)`` (every
    difference on one side; 1 for no examples); 0 when ``n`` is unknown. Every paired p-value here is kept at or above
    it.

    >>> sign_flip_floor(4), sign_flip_floor(0), sign_flip_floor(None)
    (0.125, 1.0, 0.0)
    """
    return 0.0 if n_examples is None else 2.0 ** (1 - max(1, int(n_examples)))


def _two_sided_p(diff_reps: np.ndarray, n_examples: int) -> float:
    """The bootstrap's two-sided p-value of no difference, never below ``2 ** (1 - n)``: the smallest p an exact
    sign-flip test on ``n`` paired examples can give (every example on one side). The bootstrap alone is sure where
    the data cannot be: on one example every replicate is that example's difference, and p was 2 / (B + 1).

    >>> _two_sided_p(np.full(999, 0.002), 1), _two_sided_p(np.full(999, 0.002), 5), _two_sided_p(np.full(999, 0.002), 40)
    (1.0, 0.0625, 0.002)
    """
    b = diff_reps.size
    le = (1 + np.sum(diff_reps <= 0)) / (b + 1)
    ge = (1 + np.sum(diff_reps >= 0)) / (b + 1)
    return float(min(1.0, max(2 * min(le, ge), sign_flip_floor(n_examples))))


def _gap_seed_parts(a: tuple[float, tuple[float, int]], b: tuple[float, tuple[float, int]], hib: bool | None
                    ) -> list[tuple[float, int]]:
    """The seeds' parts of the variance of a gap between ``a`` and ``b`` (each ``(value, seed_variance)``): of
    ``a - b`` (``hib=None``), of :func:`_worse_by` ``(a, b)`` otherwise (relative for perplexity and loss: the delta
    method). The two strategies' seeds are separate runs, so their parts add."""
    (va, (sa, dfa)), (vb, (sb, dfb)) = a, b
    if hib is False:
        return [(sa / vb**2, dfa), (sb * va**2 / vb**4, dfb)]
    return [(sa, dfa), (sb, dfb)]


def _gap_p(diff_reps: np.ndarray, gap: float, seed_parts: list[tuple[float, int]], n_examples: int) -> float:
    """The two-sided p-value of no difference: the bootstrap's (:func:`_two_sided_p`) when no strategy has a seed
    spread; else Welch's t on the examples' variance (the replicates') plus the seeds' parts, on the Satterthwaite
    degrees of freedom, never below the sign-flip floor ``2 ** (1 - n)``."""
    seeds = sum(v for v, _ in seed_parts)
    if seeds <= 0:
        return _two_sided_p(diff_reps, n_examples)
    examples = float(np.var(diff_reps))
    se = math.sqrt(examples + seeds)
    p = float(2 * sps.t.sf(abs(gap) / se, satterthwaite_df(examples, seed_parts)))
    return float(min(1.0, max(p, sign_flip_floor(n_examples))))


def paired_bootstrap(
    a: ExampleResults,
    b: ExampleResults,
    metric: str,
    *,
    level: float = 0.95,
    n_boot: int = 10_000,
    method: IntervalMethod = "percentile",
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap of ``metric(a) - metric(b)``: interval and two-sided p-value of no difference."""
    _check_level(level)
    _check_paired(a, b)
    add_a, add_b = _additive(a, metric), _additive(b, metric)
    va, vb = _point(add_a), _point(add_b)
    reps = _replicates([add_a, add_b], n_boot, np.random.default_rng(seed))
    diff = reps[:, 0] - reps[:, 1]
    jack = None
    if method == "bca":
        jack = _jackknife(add_a) - _jackknife(add_b)
    lo, hi = _interval_from(diff, va - vb, level, method, jack)
    parts = _gap_seed_parts((va, seed_variance(a, metric)), (vb, seed_variance(b, metric)), None)
    lo, hi = _with_seeds(va - vb, lo, hi, level, sum(v for v, _ in parts),
                         satterthwaite_df(float(np.var(diff)), parts))
    ci = Interval(va - vb, lo, hi, level, f"paired {method} bootstrap", a.n_examples, max(a.n_seeds, b.n_seeds))
    return PairedComparison(metric, va, vb, ci, _gap_p(diff, va - vb, parts, a.n_examples), "paired bootstrap")


def mcnemar(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, method: Literal["exact", "mid-p"] = "mid-p"
) -> McNemarResult:
    """McNemar's test that A and B have the same accuracy, from single-run predictions on the same
    examples: binomial test of the discordant pairs (``a_only`` ~ Bin(a_only + b_only, 1/2)).
    Exact: ``2 P(X <= min)``; mid-p: that minus ``P(X = min)``; both capped at 1."""
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y_true.ndim == 1 and pred_a.shape == y_true.shape == pred_b.shape):
        raise ValueError("mcnemar needs one prediction per example for each strategy (single seeds)")
    ca, cb = pred_a == y_true, pred_b == y_true
    a_only, b_only = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    m, k = a_only + b_only, min(a_only, b_only)
    if m == 0:
        p = 1.0
    else:
        p = 2 * sps.binom.cdf(k, m, 0.5)
        if method == "mid-p":
            p -= sps.binom.pmf(k, m, 0.5)
        elif method != "exact":
            raise ValueError(f"unknown McNemar method {method!r}")
    return McNemarResult(a_only, b_only, int(y_true.size), float(min(1.0, p)), method)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error control, any dependence)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


def holm_against_best(p_to_best: np.ndarray, p_other_pairs: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of the comparisons with the best, adjusted over *every pair* of the ``k`` strategies.

    ``p_to_best``: the ``k - 1`` raw p-values of the best against each other strategy; ``p_other_pairs``: the raw
    p-values of the ``(k - 1)(k - 2) / 2`` pairs without the best. The best is the one with the best estimate on
    these same examples, so "best against each other" is not a family fixed in advance: when all ``k`` are equal, its
    largest gap is the range of ``k`` estimates, and Holm over the ``k - 1`` comparisons said "worse" falsely in 9 %
    of the sets at ``k = 5`` and 13 % at ``k = 8`` (``alpha = 0.05``). Holm over all ``k (k - 1) / 2`` pairs controls
    the chance of any false "worse" whichever pair the data make the best's, for any dependence.

    >>> holm_against_best(np.array([0.004]), np.array([0.3, 0.5]))
    array([0.012])
    """
    p_to_best = np.asarray(p_to_best, dtype=np.float64)
    return holm(np.concatenate([p_to_best, np.asarray(p_other_pairs, dtype=np.float64)]))[: p_to_best.size]


def _check_best_args(results: Mapping[str, ExampleResults], alpha: float, tolerance: float | None, test: str,
                     adjust: str) -> None:
    if not results:
        raise ValueError("no strategies")
    _check_level(1 - alpha)
    if tolerance is not None and tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    if adjust not in ("holm", "none"):
        raise ValueError(f"unknown adjustment {adjust!r}")
    if test not in ("auto", "bootstrap", "mcnemar"):
        raise ValueError(f"unknown test {test!r}")


def _worse_by(value: Any, other: Any, hib: bool) -> Any:
    """How much worse ``value`` is than ``other``, on the scale a tolerance is stated in: points for accuracy-like
    metrics (``other - value``), relative for perplexity and loss (``value / other - 1``). Negative: better."""
    return other - value if hib else value / other - 1


def paired_gap(a: ExampleResults, reference: ExampleResults, metric: str, *, level: float = 0.95,
               n_boot: int = 10_000, seed: int = 0) -> Interval:
    """How much worse ``a`` is than ``reference`` on the same examples (:func:`_worse_by`'s scale; negative: better),
    with its paired percentile-bootstrap interval: one resample of the examples serves both, so what the two share
    (the hard texts, the easy ones) cancels, and a small steady gain shows where two separate intervals overlap."""
    _check_level(level)
    _check_paired(a, reference)
    hib = higher_is_better(metric)
    adds = [_additive(a, metric), _additive(reference, metric)]
    reps = _replicates(adds, n_boot, np.random.default_rng(seed))
    gap_reps = _worse_by(reps[:, 0], reps[:, 1], hib)
    lo, hi = np.quantile(gap_reps, [(1 - level) / 2, (1 + level) / 2])
    va, vr = _point(adds[0]), _point(adds[1])
    parts = _gap_seed_parts((va, seed_variance(a, metric)), (vr, seed_variance(reference, metric)), hib)
    gap = float(_worse_by(va, vr, hib))
    lo, hi = _with_seeds(gap, float(lo), float(hi), level, sum(v for v, _ in parts),
                         satterthwaite_df(float(np.var(gap_reps)), parts))
    return Interval(gap, float(lo), float(hi), level,
                    "paired percentile bootstrap", a.n_examples, max(a.n_seeds, reference.n_seeds))


def _gap_to_best(results: Mapping[str, ExampleResults], names: list[str], reps: np.ndarray, values: np.ndarray,
                 seeds: list[tuple[float, int]], best_i: int, i: int, alpha: float, hib: bool,
                 test: str, own: list[float]) -> tuple[tuple[Interval, float, tuple[float, float, float, float]], float]:
    """Strategy ``i``'s gap to the best (its interval, one-sided upper bound and the examples' and seeds' parts of its
    variance, with the seeds' part's degrees of freedom) and the test's raw p-value.
    The gap is on the scale the tolerance is stated in: points for accuracy-like, relative for perplexity."""
    gap_reps, gap = _worse_by(reps[:, i], reps[:, best_i], hib), _worse_by(values[i], values[best_i], hib)
    lo, hi = np.quantile(gap_reps, [alpha / 2, 1 - alpha / 2])
    upper = float(np.quantile(gap_reps, 1 - alpha))
    parts = _gap_seed_parts((values[i], seeds[i]), (values[best_i], seeds[best_i]), hib)
    spread, examples = sum(v for v, _ in parts), float(np.var(gap_reps))
    if spread > 0:
        df = satterthwaite_df(examples, parts)
        lo, hi = _with_seeds(float(gap), float(lo), float(hi), 1 - alpha, spread, df)
        upper = _with_seeds(float(gap), float(gap), upper, 1 - alpha, spread, df, one_sided=True)[1]
    first = results[names[0]]
    n_seeds = max(results[names[i]].n_seeds, results[names[best_i]].n_seeds)
    interval = Interval(float(gap), float(lo), float(hi), 1 - alpha, "paired percentile bootstrap",
                        first.n_examples, n_seeds)
    shrinks = min(spread, sum(v for v, _ in _gap_seed_parts((values[i], (own[i], 1)), (values[best_i], (own[best_i], 1)),
                                                            hib)))
    return (interval, upper, (examples, spread, satterthwaite_df(0.0, parts), shrinks)), _pair_p(results, names, reps, values, seeds, best_i, i, hib, test)


def _pair_p(results: Mapping[str, ExampleResults], names: list[str], reps: np.ndarray, values: np.ndarray,
            seeds: list[tuple[float, int]], i: int, j: int, hib: bool, test: str) -> float:
    """The raw two-sided p-value of no difference between strategies ``i`` and ``j`` (McNemar, or the paired bootstrap's
    over the examples, with the seeds' parts of the variance where there are several seeds: :func:`_gap_p`)."""
    first = results[names[0]]
    if test == "mcnemar":
        y = first.y_true
        assert y is not None
        return float(mcnemar(y, results[names[i]].y_pred[0], results[names[j]].y_pred[0]).p_value)
    parts = _gap_seed_parts((values[j], seeds[j]), (values[i], seeds[i]), hib)
    return _gap_p(_worse_by(reps[:, j], reps[:, i], hib), float(_worse_by(values[j], values[i], hib)), parts,
                  first.n_examples)


def indistinguishable_from_best(
    results: Mapping[str, ExampleResults],
    metric: str,
    *,
    alpha: float = 0.05,
    tolerance: float | None = None,
    test: Literal["auto", "bootstrap", "mcnemar"] = "auto",
    adjust: Literal["holm", "none"] = "holm",
    n_boot: int = 10_000,
    seed: int = 0,
) -> BestSet:
    """Which strategies are not shown to be worse than the best one (see module doc for the reasons).

    ``test="auto"``: McNemar (mid-p) for accuracy when every strategy has a single seed, otherwise the
    paired bootstrap. ``tolerance``: absolute for accuracy-like metrics (0.01 = one point), relative for
    perplexity and loss (0.02 = 2 %); ``None`` checks statistical distinguishability only."""
    _check_best_args(results, alpha, tolerance, test, adjust)
    names = list(results)
    first = results[names[0]]
    for name in names[1:]:
        _check_paired(first, results[name])
    hib = higher_is_better(metric)
    adds = [_additive(results[name], metric) for name in names]
    values = np.array([_point(add) for add in adds])
    best_i = int(np.argmax(values) if hib else np.argmin(values))
    single = all(results[name].n_seeds == 1 for name in names)
    if test == "auto":
        test = "mcnemar" if metric == "accuracy" and single else "bootstrap"
    if test == "mcnemar" and not (metric == "accuracy" and single):
        raise ValueError("McNemar applies to accuracy of single-seed results only")

    reps = (_replicates(adds, n_boot, np.random.default_rng(seed)) if len(names) > 1
            else None)
    seeds = [seed_variance(results[name], metric) for name in names]
    others = [i for i in range(len(names)) if i != best_i]
    gaps: dict[int, tuple[Interval, float, tuple[float, float, float, float]]] = {}
    own = [seeds_own_example_noise(results[name], metric) for name in names]
    raw = np.empty(len(others))
    for j, i in enumerate(others):
        assert reps is not None
        gaps[i], raw[j] = _gap_to_best(results, names, reps, values, seeds, best_i, i, alpha, hib, test, own)
    if adjust == "holm":  # over every pair: the best is picked from these same examples (holm_against_best)
        assert reps is not None or not others
        pairs = [_pair_p(results, names, reps, values, seeds, i, j, hib, test)
                 for i in others for j in others if i < j]
        adjusted = holm_against_best(raw, np.array(pairs))
    else:
        adjusted = raw

    verdicts = [StrategyVerdict(names[best_i], float(values[best_i]), "best")]
    for j, i in enumerate(others):
        gap_ci, upper, (examples, spread, spread_df, shrinks) = gaps[i]
        if tolerance is not None and upper <= tolerance:
            reason: Reason = "within_tolerance"
        elif adjusted[j] >= alpha:
            reason = "not_distinguishable"
        else:
            reason = "worse"
        verdicts.append(StrategyVerdict(names[i], float(values[i]), reason, gap_ci, upper,
                                        float(adjusted[j]), float(raw[j]), examples, spread, spread_df, shrinks))
    test_name = "McNemar mid-p" if test == "mcnemar" else "paired percentile bootstrap" + (
        ", t over seeds" if any(v > 0 for v, _ in seeds) else "")
    return BestSet(metric, names[best_i], alpha, tolerance, test_name, adjust, tuple(verdicts))
