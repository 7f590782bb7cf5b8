"""Budget-aware comparison: successive halving over strategies, decided from measurements and a clock.

``compare`` (the default, planned mode) does not train every strategy to the end. It runs rounds:

1. **Round 1**: every strategy trains on a small fraction of the training data (by default a ninth of
   it; cheap for the frozen-body strategies, which share the frozen-layer cache). The rounds before the
   full data run one seed each. With several ``--seeds``, the full data is two rungs (:func:`rungs`): one
   seed of every strategy left, then the other seeds for those that remain after its cut, so that seeds,
   like data, go where the verdict is decided; the first seed's run is kept as one of the finalists' seeds.
2. **After each round**, each strategy's validation metric at the full data is predicted from what has
   run (:func:`predict_final`): an inverse power law fitted on its points (:mod:`tunelab.advice.curves`)
   when it has at least :data:`~tunelab.advice.curves.MIN_POINTS` fractions; otherwise the measured value
   at its largest fraction with its bootstrap interval over the validation examples, its optimistic end
   extended by the last round's gain carried on log-linearly (the flattest learning curve of the family:
   a decelerating curve gains less). A learning curve does not fall with more data, so the pessimistic
   end is the measured lower bound. A strategy whose *optimistic* prediction cannot reach the leader's
   *pessimistic* one is stopped and recorded as **stopped early**, with the round, the fraction, the
   reason and both predictions (:class:`Stop`).
3. **Halving** (:func:`halve`): of the strategies left, the best ``⌈n / η⌉`` by predicted estimate go on
   (``η`` = :data:`HALVING`, ``--halving``), as in successive halving (Jamieson & Talwalkar 2016; Ray Tune's
   and Optuna's schedulers); the others are stopped early as ``halved``, with their prediction. Among those kept, one
   that cannot end above a kept strategy that costs less is stopped too (``dominated``: its optimistic prediction
   is not above the cheaper one's pessimistic prediction): the verdict recommends the cheapest strategy the paired
   comparison cannot separate from the best, so it could only change the verdict by ending above the cheaper one,
   which its prediction's interval rules out. A tie of estimates is not enough: two strategies level on a small
   round may learn at different rates (head's curve is flat where last-n's rises). At the full data (its first
   seed, with more seeds to come) no more data is coming and nothing is left to learn at another rate: there a
   dearer strategy measured no better than a cheaper one that goes on is dominated, and the cut keeps first the
   strategy the verdict picks from those runs (the cheapest one its paired comparison cannot separate from the best;
   the runner passes it in), since the seeds left will be judged by that verdict; a better estimate it cannot
   separate goes on only within the quota. After a round of less data the verdict's pick goes first only where the
   rates measured keep it level (:meth:`Planner._keeps_up`): both it and the verdict's best have shown a learning
   rate (two fractions), and carried on at those rates the best ends less than the half-width of their paired
   interval above it, so the verdict at the full data would still not separate them. When one strategy is
   left, the rounds between go: it trains on the full plan at once. A round cuts only when it **measured
   something** (:func:`informative`): when no strategy is distinguishable from a constant predictor (the
   majority class), its order is noise and every strategy that can still catch up goes on. The same holds for
   each strategy (:func:`learned`): one not yet distinguishable from the constant predictor while others are
   (a low learning rate after a few steps) is neither stopped as behind nor ranked; it goes on **unranked**, and
   is stopped as ``not learning`` when the next round finds it there again. It counts among the ``n`` strategies
   left, so the unranked do not shrink the ranked ones' quota.
4. The others get ×3 the data in the next round, up to the full plan (the largest ``--data-fractions``),
   then the remaining seeds.
   Before a run starts, its time is predicted (:func:`predict_seconds`: the strategy's measured time in
   the earlier round, its data-dependent part scaled by the data size, or the cost estimate before any
   was measured); a run predicted to end after the budget is not started, and one still running when
   the budget ends is interrupted after its current step (the executor's ``deadline``), so the budget
   is exceeded by at most the longest training step seen.
5. The finalists' paired comparison (the existing verdict, :mod:`tunelab.advice.choose`) decides.

This module is pure: :class:`Planner` decides rounds from :class:`Measurement` s, :class:`RunTiming` s and
the seconds elapsed that its caller passes in; it never trains, reads a file or looks at a clock, so
the tests drive it with synthetic learning curves and a simulated clock. :func:`measurements_from_results`
and :func:`timings_from_results` turn run records into its inputs.

    >>> planner = Planner(["a", "b"], rounds=(0.1, 0.3, 1.0), metric="accuracy", budget_s=600)
    >>> first = planner.next_round(now_s=0.0)
    >>> first.index, first.fraction, first.strategies
    (1, 0.1, ['a', 'b'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunelab.metrics import higher_is_better, in_range

#: Each round gives the surviving strategies this many times the data of the previous one.
ROUND_FACTOR = 3.0
#: Successive halving's η: after a round, the best ``⌈n / η⌉`` of the ``n`` strategies left go on.
HALVING = 3.0
#: Rounds when ``--data-fractions`` names one fraction: ``f / 9``, ``f / 3``, ``f``.
DEFAULT_ROUNDS = 3
#: A round with fewer training sequences than this (examples; a causal LM's packed blocks) is left out (its metric
#: would say little).
MIN_ROUND_EXAMPLES = 24
#: ... or one whose runs would take fewer optimizer steps than this: a run of a step or two ranks the strategies' first
#: steps, not where they go. The verdict benchmark's screening rounds took 12 or more (33 labels for 6 epochs at
#: batch 32) and agreed with the exhaustive comparison on every task. A decoder's round of 2 steps (smollm2, 6 hamlet
#: texts, 45 blocks of 64 tokens, 1 epoch) kept bitfit alone, which then reached validation perplexity 56.0 on all 64
#: texts where LoRA reaches 48.5.
MIN_ROUND_STEPS = 12
#: The default budget: this many times the estimated cost of training every strategy on all the data
#: (``1 + 1/3 + 1/9 ≈ 1.44`` of it if no strategy were stopped, plus loading, evaluation and estimate error).
DEFAULT_BUDGET_FACTOR = 2.0
#: ... and never less than this (on small data, process start-up and evaluation dominate).
DEFAULT_BUDGET_FLOOR_S = 300.0

STOPPED_EARLY, FAILED, FINALIST = "stopped_early", "failed", "finalist"


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Measurement:
    """A strategy's validation metric at one data fraction (seeds pooled), with its interval."""

    strategy: str
    fraction: float
    value: float
    low: float
    high: float
    n: float | None = None
    """Training examples at this fraction (``meta_info.n_train``); the fraction stands in when unknown."""
    seed_values: tuple[float, ...] = ()
    chance: float | None = None
    """The metric of a constant predictor on the same examples (always the majority class); None when there is
    none (perplexity, loss) or the examples were not saved."""

    @property
    def size(self) -> float:
        return float(self.n) if self.n else self.fraction


@dataclass(frozen=True)
class RunTiming:
    """How long one finished run took: ``wall_s`` in all, ``scaling_s`` of it growing with the data
    (training and the frozen-layer cache), and its optimizer steps' mean duration ``step_s``."""

    strategy: str
    fraction: float
    wall_s: float
    scaling_s: float = 0.0
    step_s: float | None = None


# ----------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Prediction:
    """Where a strategy's validation metric is expected to end at the full data: ``estimate`` and the
    ``optimistic`` / ``pessimistic`` ends (in the metric's units: for perplexity the optimistic end is the
    lower one)."""

    strategy: str
    metric: str
    target: float
    estimate: float
    optimistic: float
    pessimistic: float
    method: str
    from_fraction: float
    measured: float
    trend: float | None = None
    """Where the strategy ends if it goes on learning at the rate it has shown: the fitted curve's estimate, or the
    measured value plus the last round's gain carried on log-linearly; None from one measured fraction (no rate yet)."""

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "metric": self.metric, "at": self.target, "estimate": self.estimate,
                "optimistic": self.optimistic, "pessimistic": self.pessimistic, "method": self.method,
                "from_fraction": self.from_fraction, "measured": self.measured, "trend": self.trend}



def predict_final(points: Sequence[Measurement], metric: str, target: float, *, level: float = 0.95) -> Prediction:
    """Predict a strategy's metric at ``target`` (training examples, or a fraction: the unit of
    :attr:`Measurement.size`) from its measurements (see the module docstring)."""
    from tunelab.advice.curves import MIN_POINTS, fit_power_law

    if not points:
        raise ValueError("no measurement to predict from")
    points = sorted(points, key=lambda p: p.size)
    last = points[-1]
    sign = 1.0 if higher_is_better(metric) else -1.0
    if len({p.size for p in points}) >= MIN_POINTS and target > last.size:
        ys = [list(p.seed_values) or [p.value] for p in points]
        fit = fit_power_law([p.size for p in points], ys, metric, level=level, horizons=(), n_boot=500)
        if fit.fitted:
            interval = fit.interval(target, level)
            good, bad = (interval.high, interval.low) if sign > 0 else (interval.low, interval.high)
            return Prediction(last.strategy, metric, target, interval.estimate, good, bad,
                              f"inverse power law fitted on {len(points)} fractions", last.fraction, last.value,
                              interval.estimate)
    good_now, bad_now = (last.high, last.low) if sign > 0 else (last.low, last.high)
    gain, method, trend = 0.0, f"measured at data fraction {last.fraction:g}, {level:.0%} interval", None
    if len(points) >= 2 and target > last.size:
        before = points[-2]
        # the last round's gain, carried on at the same rate per doubling of the data (log-linear)
        steps = math.log(target / last.size) / math.log(last.size / before.size)
        gain = max(0.0, sign * (last.value - before.value)) * steps
        method += f" + the last round's gain carried on log-linearly ({sign * gain:+.3g})"
        trend = in_range(last.value + sign * gain, metric)
    optimistic = in_range(good_now + sign * gain, metric)
    return Prediction(last.strategy, metric, target, last.value, optimistic, bad_now, method, last.fraction, last.value,
                      trend)


def _value(value: float) -> str:
    """A metric value as the planner's messages say it: four significant digits, trailing zeros kept, so that two values
    side by side read at one precision ('0.6400 ... 0.5933', not '0.64 ... 0.5933') and two that differ look different
    (a validation set of a few thousand examples separates them in the fourth digit)."""
    if math.isfinite(value) and abs(value) >= 1000:  # a perplexity: whole units ('1,235', not '1234.' or '1.235e+04')
        return f"{value:,.0f}"
    return f"{value:#.4g}"


def informative(measurements: Iterable[Measurement], metric: str) -> bool:
    """Whether a round's measurements can rank strategies: some strategy's interval lies wholly on the good side of
    a constant predictor's score (:attr:`Measurement.chance`). True when no chance level is known.

    >>> informative([Measurement("a", 0.1, 0.56, 0.49, 0.63, chance=0.5)], "accuracy")
    False
    >>> informative([Measurement("a", 0.1, 0.70, 0.64, 0.76, chance=0.5)], "accuracy")
    True
    """
    bounded = [m for m in measurements if math.isfinite(m.low) and math.isfinite(m.high)]
    known = [m for m in bounded if m.chance is not None]
    return bool(bounded) and (not known or any(learned(m, metric) for m in known))


def learned(measurement: Measurement, metric: str) -> bool:
    """Whether a strategy's interval lies wholly on the good side of a constant predictor's score (True when no chance
    level is known). One that has not left the constant predictor yet (a low learning rate after a few steps, a
    class it has not found) has measured nothing that bounds where it ends, so no round stops or ranks it.

    >>> learned(Measurement("full", 0.1, 0.52, 0.46, 0.59, chance=0.52), "accuracy")
    False
    """
    from tunelab.advice.verdict import clear_of_chance

    if not (math.isfinite(measurement.low) and math.isfinite(measurement.high)):
        return False  # unbounded: too few examples to measure
    return clear_of_chance(measurement.low, measurement.high, measurement.chance, metric)


def kept_by_halving(n: int, eta: float) -> int:
    """How many of ``n`` strategies successive halving keeps: ``⌈n / eta⌉``, at least 1."""
    return max(1, math.ceil(n / eta - 1e-9))


def halve(predictions: Mapping[str, Prediction], metric: str, eta: float,
          costs: Mapping[str, float | None] | None = None, *, among: int | None = None,
          at_full_data: bool = False, first: str | None = None) -> dict[str, tuple[str, str]]:
    """Successive halving's cut: the strategies that do not go on, each with its reason (``halved``: not among the
    best ``⌈n / eta⌉`` by estimate; ``dominated``: kept, but its optimistic prediction is not above the pessimistic
    one of a kept strategy with a lower ``costs`` — the predicted seconds of its next run — or, ``at_full_data`` (the
    predictions are measurements at the full data, where only seeds are left to run), its estimate is not above that
    one's) and the strategy that put it out. ``n`` is ``among`` (default: the strategies predicted): the strategies
    left, when some of them go on unranked besides (:meth:`Planner._halve`). ``first``: the strategy the verdict picks
    from the runs the predictions measured (at the full data: the cheapest one its paired comparison cannot separate
    from the best); it is ranked first and never dominated, and the others by estimate fill the rest of the quota.

    >>> p = lambda s, v: Prediction(s, "accuracy", 1.0, v, v + 0.05, v - 0.05, "", 0.1, v)
    >>> preds = {s: p(s, v) for s, v in {"a": 0.80, "b": 0.78, "c": 0.75, "d": 0.70, "e": 0.60}.items()}
    >>> sorted(halve(preds, "accuracy", 3.0).items())
    [('c', ('halved', 'b')), ('d', ('halved', 'b')), ('e', ('halved', 'b'))]
    >>> halve(preds, "accuracy", 3.0, costs={"a": 20.0, "b": 100.0})   # b may still end above a: it goes on
    {'c': ('halved', 'b'), 'd': ('halved', 'b'), 'e': ('halved', 'b')}
    >>> two = {"a": p("a", 0.80), "b": p("b", 0.70)}
    >>> halve(two, "accuracy", 1.5, costs={"a": 20.0, "b": 100.0})   # b cannot end above cheaper a: dominated
    {'b': ('dominated', 'a')}
    >>> close = {"a": p("a", 0.80), "b": p("b", 0.79)}
    >>> halve(close, "accuracy", 1.5, costs={"a": 20.0, "b": 100.0})   # a round of less data: b may yet learn faster
    {}
    >>> halve(close, "accuracy", 1.5, costs={"a": 20.0, "b": 100.0}, at_full_data=True)   # the full data: a tie
    {'b': ('dominated', 'a')}

    Strategies predicted level are ranked by cost, the cheaper first, as the verdict breaks such a tie:

    >>> level = {s: p(s, 0.8) for s in "abc"}
    >>> sorted(halve(level, "accuracy", 3.0, costs={"a": 30.0, "b": 10.0, "c": 20.0}).items())
    [('a', ('halved', 'b')), ('c', ('halved', 'b'))]

    Two ranked of five left (three go on unranked): the quota is taken from the five, so both ranked go on:

    >>> halve({s: p(s, v) for s, v in {"a": 0.80, "b": 0.78}.items()}, "accuracy", 3.0, among=5)
    {}

    At the full data, the verdict's pick goes on ahead of a better estimate it cannot be told apart from:

    >>> halve(close, "accuracy", 3.0, costs={"a": 100.0, "b": 20.0}, at_full_data=True, first="b")
    {'a': ('halved', 'b')}
    """
    if eta <= 1 or len(predictions) < 2:
        return {}
    sign = 1.0 if higher_is_better(metric) else -1.0
    costs = costs or {}
    ranked = sorted(predictions, key=lambda s: (s != first, -sign * predictions[s].estimate,
                                                math.inf if costs.get(s) is None else costs[s]))
    keep = kept_by_halving(max(len(ranked), among or 0), eta)
    out = {s: ("halved", ranked[keep - 1]) for s in ranked[keep:]}
    kept = ranked[:keep]
    def beaten(c: str, s: str) -> bool:  # whether s cannot end above c
        if at_full_data:
            return sign * predictions[c].estimate >= sign * predictions[s].estimate
        return sign * predictions[c].pessimistic >= sign * predictions[s].optimistic

    for s in [s for s in kept if s != first]:
        cheaper = [c for c in kept if c != s and costs.get(c) is not None and costs.get(s) is not None
                   and costs[c] < costs[s] and beaten(c, s)]
        if cheaper:
            out[s] = ("dominated", min(cheaper, key=lambda c: costs[c]))
    return out


def hopeless(predictions: Mapping[str, Prediction], metric: str) -> dict[str, str]:
    """The strategies whose optimistic prediction is below the leader's pessimistic one, each with the
    leader it cannot reach. The leader is the strategy with the best pessimistic prediction."""
    if len(predictions) < 2:
        return {}
    sign = 1.0 if higher_is_better(metric) else -1.0
    leader = max(predictions, key=lambda s: sign * predictions[s].pessimistic)
    bar = sign * predictions[leader].pessimistic
    return {s: leader for s, p in predictions.items() if s != leader and sign * p.optimistic < bar}


# ----------------------------------------------------------------------------- time


def predict_seconds(strategy: str, fraction: float, timings: Iterable[RunTiming],
                    estimates: Mapping[str, float] | None = None,
                    sizes: Mapping[float, float] | None = None) -> float | None:
    """A run's predicted wall time: from the strategy's largest measured run below ``fraction``, its
    data-dependent part scaled by the data size; else its cost estimate (seconds per unit of size, from
    ``tunelab recommend``) times the run's size plus the largest fixed cost any run has shown; else None.

    ``sizes`` maps a fraction to the run's training examples; without it the fraction is the size. They differ
    when ``--max-train-samples`` caps the final round (fraction 1 of the split, but fewer examples):
    scaled by fractions, a final round of 300 of 3,404 examples after a round of 100 was predicted 34× longer."""
    timings = list(timings)
    size = (lambda f: float(sizes.get(f, f))) if sizes else float  # noqa: E731
    own = [t for t in timings if t.strategy == strategy and t.fraction <= fraction]
    if own:
        ref = max(own, key=lambda t: (t.fraction, t.wall_s))
        fixed = max(0.0, ref.wall_s - ref.scaling_s)
        return fixed + ref.scaling_s * size(fraction) / size(ref.fraction)
    estimate = (estimates or {}).get(strategy)
    if estimate is None:
        return None
    fixed = max((max(0.0, t.wall_s - t.scaling_s) for t in timings), default=0.0)
    return fixed + float(estimate) * size(fraction)


def default_budget_s(estimates: Mapping[str, float], strategies: Sequence[str], seeds: int = 1) -> float | None:
    """The budget when none is given: ``max(300 s, 2 × seeds × Σ_s T_s)``, where ``T_s`` is strategy ``s``'s
    estimated time on all the training data (``tunelab recommend``: ``⌈n_train / batch⌉ × epochs`` steps ×
    its measured step time, plus its frozen-layer cache build). None when a strategy has no estimate."""
    if not strategies or any(estimates.get(s) is None for s in strategies):
        return None
    total = sum(float(estimates[s]) for s in strategies)
    return max(DEFAULT_BUDGET_FLOOR_S, DEFAULT_BUDGET_FACTOR * seeds * total)


def round_fractions(fractions: Sequence[float], n_train: int | None = None, *, rounds: int = DEFAULT_ROUNDS,
                    factor: float = ROUND_FACTOR, min_examples: int = MIN_ROUND_EXAMPLES,
                    sequences_per_example: float = 1.0, steps: Callable[[int], float] | None = None,
                    min_steps: int = MIN_ROUND_STEPS) -> list[float]:
    """The data fraction of each round: the given ``fractions`` when there are several, else ``f / 9``,
    ``f / 3``, ``f`` (``rounds`` of them, ×``factor`` apart in training examples), leaving out those under
    ``min_examples`` training sequences when ``n_train`` (the training examples at fraction 1: the split cut to
    ``--max-train-samples``, :func:`tunelab.run.training.training_examples`) is known. ``sequences_per_example``: what
    a step's batch holds per example (:func:`tunelab.run.training.sequences_per_example`: 1 for classification, a
    causal LM's blocks per text). ``steps``: the optimizer steps a run on so many sequences takes (the comparison's
    batch and epochs), when known; a round of fewer than ``min_steps`` is left out too.

    >>> round_fractions([1.0], 3404)
    [0.111, 0.333, 1.0]
    >>> round_fractions([1.0], 150)   # a ninth would hold 17 examples, under the minimum of 24
    [0.333, 1.0]
    >>> round_fractions([1.0], 64, sequences_per_example=7.5)   # 64 long texts: 53 and 160 blocks in the rounds
    [0.111, 0.333, 1.0]
    >>> round_fractions([1.0], 64, sequences_per_example=7.5, steps=lambda n: math.ceil(n / 32))  # one epoch: 2, 5 steps
    [1.0]
    """
    fractions = sorted(float(f) for f in fractions)
    if len(fractions) > 1:
        return fractions
    final = fractions[-1]
    out = [float(f"{final / factor**k:.3g}") for k in range(rounds - 1, 0, -1)]
    if n_train is not None:
        sequences = {f: f * n_train * sequences_per_example for f in out}
        out = [f for f in out if sequences[f] >= min_examples and (steps is None or steps(round(sequences[f])) >= min_steps)]
    return [*out, final]


def rungs(fractions: Sequence[float], seeds: int = 1) -> list[tuple[float, int]]:
    """The planner's rungs: each round's data fraction and seeds. The rounds before the full data screen with one
    seed; at the full data, with ``seeds`` > 1, one seed of every strategy left comes first, then every seed for the
    strategies its cut keeps (their first seed's run is the one already made).

    >>> rungs([0.111, 0.333, 1.0])
    [(0.111, 1), (0.333, 1), (1.0, 1)]
    >>> rungs([0.111, 0.333, 1.0], seeds=3)
    [(0.111, 1), (0.333, 1), (1.0, 1), (1.0, 3)]
    >>> rungs([1.0], seeds=3)   # too little data for smaller rounds: the seeds are the rounds
    [(1.0, 1), (1.0, 3)]
    """
    fractions = sorted(float(f) for f in fractions)
    if not fractions:
        return []
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    out = [(f, 1) for f in fractions[:-1]]
    if seeds > 1:
        out.append((fractions[-1], 1))
    return [*out, (fractions[-1], seeds)]


# ----------------------------------------------------------------------------- the planner


@dataclass(frozen=True)
class Round:
    """One round: every strategy in ``strategies`` (best prediction first) trains at ``fraction`` with ``seeds``
    seeds (the first ``seeds`` of the comparison's). ``seconds`` is each one's predicted run time (None: unknown),
    ``start_by`` the latest elapsed time at which its run may still start to end within the budget, ``deadline_s``
    the budget's end (None: no budget); all in seconds since the comparison started. ``screening``: a round before
    the full data (its runs are measured on validation only)."""

    index: int
    fraction: float
    strategies: list[str]
    seconds: dict[str, float | None]
    start_by: dict[str, float | None]
    deadline_s: float | None
    final: bool
    seeds: int = 1
    screening: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.index, "data_fraction": self.fraction, "seeds": self.seeds, "strategies": self.strategies,
                "predicted_seconds": self.seconds, "final": self.final}


@dataclass(frozen=True)
class Stop:
    """Why a strategy left the comparison before the final round: ``reason`` is ``behind`` (its
    prediction cannot reach the leader's), ``halved`` or ``dominated`` (successive halving's cut, :func:`halve`),
    ``not learning`` (two rounds in a row not distinguishable from a constant predictor while others were),
    ``budget`` (its next run would not fit in, or was cut by, the
    budget) or ``failed`` (its run failed). ``round`` and ``fraction`` are the last round it ran (0 and 0.0
    when it never started one)."""

    strategy: str
    round: int
    fraction: float
    reason: str
    message: str
    prediction: Prediction | None = None
    leader: Prediction | None = None

    @property
    def status(self) -> str:
        return FAILED if self.reason == "failed" else STOPPED_EARLY

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "status": self.status, "round": self.round, "data_fraction": self.fraction,
                "reason": self.reason, "message": self.message,
                "prediction": self.prediction.to_dict() if self.prediction else None,
                "leader": self.leader.to_dict() if self.leader else None}


@dataclass
class Planner:
    """Successive halving over ``strategies`` at the data fractions ``rounds`` (see the module docstring).

    Call :meth:`next_round` with the seconds elapsed since the comparison started; run its strategies
    (:attr:`Round.seeds` runs each); pass what they measured to :meth:`finish_round`; repeat until
    :meth:`next_round` returns None. ``estimates`` are the strategies' estimated seconds at the full data
    (for the time of the first round's runs); ``budget_s`` None means no time limit (rounds still stop the
    strategies that cannot catch up). ``target`` is the full data's size in the unit of
    :attr:`Measurement.size` (default: the last fraction).
    """

    strategies: Sequence[str]
    rounds: Sequence[float]
    metric: str
    budget_s: float | None = None
    seeds: int = 1
    level: float = 0.95
    estimates: Mapping[str, float] = field(default_factory=dict)
    target: float | None = None
    sizes: Mapping[float, float] | None = None
    """Training examples of each round's fraction (:func:`predict_seconds`); ``estimates`` are then seconds
    per example."""
    eta: float = HALVING
    """Successive halving's η (:func:`halve`); 1 keeps every strategy that can still catch up."""
    budget_after_first_round: bool = False
    """With no ``budget_s``: set it after the first round to :func:`default_budget_s` of each strategy's time on
    all the data as predicted from its measured first-round run (costs not estimated before training)."""
    rungs_: list[tuple[float, int]] = field(init=False)
    """Each round's data fraction and seeds (:func:`rungs`); a round may skip to the last."""
    alive_: list[str] = field(init=False)
    _rung_done: list[int] = field(init=False, default_factory=list)
    stops_: list[Stop] = field(init=False, default_factory=list)
    done_: list[Round] = field(init=False, default_factory=list)
    measurements_: list[Measurement] = field(init=False, default_factory=list)
    timings_: list[RunTiming] = field(init=False, default_factory=list)
    predictions_: dict[str, Prediction] = field(init=False, default_factory=dict)
    uninformative_: list[int] = field(init=False, default_factory=list)
    """Rounds after which nothing was halved: no strategy was distinguishable from a constant predictor."""
    unranked_: dict[int, list[str]] = field(init=False, default_factory=dict)
    """Per round, the strategies that went on unranked: not yet distinguishable from a constant predictor
    (:func:`learned`) while others were."""
    verdicts_: dict[int, str] = field(init=False, default_factory=dict)
    """Per round that cuts (every round but the last), the strategy the verdict picked from its runs
    (:meth:`finish_round`'s ``verdict``): the cut after it keeps that one first; after a round of less data, only where
    the rates measured leave the best within what the verdict could not separate (:meth:`_keeps_up`)."""
    verdict_margins_: dict[int, tuple[str, float]] = field(init=False, default_factory=dict)
    """Per such round, the verdict's best and the half-width of its paired interval against the pick
    (:meth:`finish_round`'s ``verdict_margin``)."""
    shown_worse_: dict[int, dict[str, str]] = field(init=False, default_factory=dict)
    """Per such round, the strategies the verdict's paired comparison showed worse than its best, and that best
    (:meth:`finish_round`'s ``shown_worse``): a cut one is not said to be 'not shown to be worse'."""

    def __post_init__(self) -> None:
        self.rounds = sorted(float(f) for f in self.rounds)
        if not self.rounds:
            raise ValueError("a plan needs at least one round")
        higher_is_better(self.metric)
        self.rungs_ = rungs(self.rounds, self.seeds)
        self.alive_ = list(self.strategies)

    # -- what the planner knows
    @property
    def stopped(self) -> dict[str, Stop]:
        return {s.strategy: s for s in self.stops_}

    @property
    def longest_step_s(self) -> float | None:
        """The longest mean optimizer-step time of any run so far (what a run may overrun the deadline by)."""
        steps = [t.step_s for t in self.timings_ if t.step_s]
        return max(steps) if steps else None

    def _target(self) -> float:
        return self.target if self.target is not None else self.rounds[-1]

    def predict(self, strategy: str) -> Prediction | None:
        points = [m for m in self.measurements_ if m.strategy == strategy]
        return predict_final(points, self.metric, self._target(), level=self.level) if points else None

    # -- the loop
    def next_round(self, now_s: float) -> Round | None:
        """The next round to run (None: the plan is done). Stops, first, the strategies that cannot
        catch up or whose run would not fit in the budget (see :attr:`stopped`)."""
        index = len(self.done_)
        if not self.alive_ or (self.done_ and self.done_[-1].final):
            return None
        rung = self._rung_done[-1] + 1 if self._rung_done else 0
        if index > 0:
            self._stop_the_hopeless(index)
            self._halve(index, self.rungs_[rung][0])
        if len(self.alive_) == 1:  # nothing (left) to decide between: the rounds between go
            rung = len(self.rungs_) - 1
        if not self.alive_:
            return None
        fraction, seeds = self.rungs_[rung]
        order = self._by_promise()
        seconds = {s: predict_seconds(s, fraction, self.timings_, self.estimates, self.sizes) for s in order}
        start_by: dict[str, float | None] = {}
        for s in order:
            # a spent budget starts nothing, predicted or not (a round 1 without cost estimates has no prediction)
            spent = self.budget_s is not None and now_s >= self.budget_s
            if self.budget_s is None or (seconds[s] is None and not spent):
                start_by[s] = None
                continue
            start_by[s] = self.budget_s - (seconds[s] or 0.0)
            if now_s > start_by[s] or spent:
                left = self.budget_s - now_s
                run = f"its round-{index + 1} run at data fraction {fraction:g}"
                last = self.done_[-1].fraction if index else 0.0  # the last round it ran (none: 0)
                self._stop(s, index, last, "budget",
                           f"the {self.budget_s:.0f} s budget had run out ({now_s:.0f} s had passed) before {run} could "
                           "start" if left <= 0 else
                           f"{run} was predicted to take {seconds[s]:.0f} s, more than the {left:.0f} s left of the "
                           f"{self.budget_s:.0f} s budget")
        order = [s for s in order if s in self.alive_]
        if not order:
            return None
        rnd = Round(index + 1, fraction, order, {s: seconds[s] for s in order}, {s: start_by[s] for s in order},
                    self.budget_s, rung == len(self.rungs_) - 1, seeds, fraction < self.rungs_[-1][0])
        self.done_.append(rnd)
        self._rung_done.append(rung)
        return rnd

    def finish_round(self, rnd: Round, measurements: Iterable[Measurement], timings: Iterable[RunTiming] = (),
                     outcomes: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None,
                     verdict: str | None = None, shown_worse: Mapping[str, str] | None = None,
                     verdict_margin: tuple[str, float] | None = None) -> None:
        """What ``rnd``'s runs measured. ``outcomes[s]``: ``ok`` (at least one run of ``s`` succeeded),
        ``failed`` or ``budget`` (not started, or interrupted, for the budget); ``errors[s]`` the message.
        A strategy's measurement at a fraction replaces the one an earlier round made there (more seeds).
        ``verdict``: after any round but the last, the strategy the comparison's verdict picks from that round's runs
        (the cheapest its paired comparison cannot separate from the best). After the full data's first seed (a round
        that is neither screening nor final) the cut keeps it first (:func:`halve`'s ``first``), since only seeds are
        left to run and the verdict is what they will be judged by; after a round of less data it does so where the
        learning rates measured say the verdict would still not separate it from its best at the full data
        (:meth:`_keeps_up`), ``verdict_margin`` giving that best and the half-width of the pick's paired interval
        against it. ``shown_worse``: after the full data's first seed, the strategies that verdict's paired comparison
        shows worse than its best, each with that best (their stop says so, not that their own interval reaches the
        leader)."""
        measurements = list(measurements)
        if verdict is not None and not rnd.final:
            self.verdicts_[rnd.index] = verdict
            if verdict_margin is not None:
                self.verdict_margins_[rnd.index] = verdict_margin
        if not rnd.screening and not rnd.final:
            self.shown_worse_[rnd.index] = dict(shown_worse or {})
        again = {(m.strategy, m.fraction) for m in measurements}
        self.measurements_ = [m for m in self.measurements_ if (m.strategy, m.fraction) not in again] + measurements
        self.timings_.extend(timings)
        if self.budget_after_first_round and self.budget_s is None and rnd.index == 1:
            final = {s: predict_seconds(s, self.rounds[-1], self.timings_, None, self.sizes) for s in self.strategies}
            self.budget_s = default_budget_s(final, [s for s, t in final.items() if t is not None], self.seeds)
        outcomes, errors = dict(outcomes or {}), dict(errors or {})
        for s in rnd.strategies:
            outcome = outcomes.get(s, "ok")
            if outcome == "budget":
                self._stop(s, rnd.index, rnd.fraction, "budget", errors.get(s) or
                           f"its round-{rnd.index} run at data fraction {rnd.fraction:g} did not finish within the budget")
            elif outcome == "failed":
                self._stop(s, rnd.index, rnd.fraction, "failed", errors.get(s) or "its run failed")

    def summary(self) -> dict[str, Any]:
        """The plan as it went, for ``compare.json`` and the report: rounds, each strategy's status
        (``finalist``, ``stopped_early`` or ``failed``) and the stops with their predictions."""
        strategies = {s: {"status": FINALIST} for s in self.alive_}
        strategies.update({s.strategy: s.to_dict() for s in self.stops_})
        return {
            "mode": "planned", "metric": self.metric, "level": self.level, "budget_s": self.budget_s, "halving": self.eta,
            "round_fractions": list(self.rounds), "seeds": self.seeds, "rounds": [r.to_dict() for r in self.done_],
            "strategies": {s: strategies[s] for s in self.strategies if s in strategies},
            "stopped": [s.to_dict() for s in self.stops_],
            "not_halved_after": list(self.uninformative_),
            "unranked": {str(k): v for k, v in self.unranked_.items()},
            "longest_step_s": self.longest_step_s,
        }

    # -- helpers
    def _by_promise(self) -> list[str]:
        """Alive strategies, the best optimistic prediction first (as given before anything was measured)."""
        sign = 1.0 if higher_is_better(self.metric) else -1.0
        preds = {s: self.predict(s) for s in self.alive_}
        if any(p is None for p in preds.values()):
            return list(self.alive_)
        return sorted(self.alive_, key=lambda s: -sign * preds[s].optimistic)  # type: ignore[union-attr]

    def _not_learned(self, done: Round) -> set[str]:
        """The alive strategies whose measurement in round ``done`` has not left the constant predictor: they go on
        unranked, since more data may yet teach them. Not after the full data's first seed (``done`` not screening):
        the rounds after it bring other seeds, not more data, so every strategy is ranked by what it measured there
        (one near chance went on as a finalist while a better one was cut)."""
        if not done.screening:
            return set()
        return {m.strategy for m in self.measurements_
                if m.fraction == done.fraction and m.strategy in self.alive_ and not learned(m, self.metric)}

    def _stop_the_hopeless(self, index: int) -> None:
        preds = {s: p for s in self.alive_ if (p := self.predict(s)) is not None}
        self.predictions_.update(preds)
        done = self.done_[index - 1]
        fresh = self._not_learned(done)
        if fresh and informative([m for m in self.measurements_ if m.fraction == done.fraction], self.metric):
            for s in [s for s in self.alive_ if s in fresh and s in self.unranked_.get(done.index - 1, [])]:
                m = next(m for m in self.measurements_ if m.fraction == done.fraction and m.strategy == s)
                self._stop(s, done.index, done.fraction, "not learning",
                           f"after round {done.index} (data fraction {done.fraction:g}), as after the round before, its "
                           f"validation {self.metric} ({_value(m.value)}) was not distinguishable from always predicting the "
                           f"most frequent class ({_value(m.chance)}) while other strategies' was: nothing bounds where it "
                           "would end, and it is stopped as not learning at this learning rate (give it another with "
                           "--lr-overrides, or train every strategy to the end with --exhaustive)", preds.get(s))
        for s, leader in hopeless(preds, self.metric).items():
            if s in fresh:  # its optimistic end bounds nothing yet
                continue
            p, lp = preds[s], preds[leader]
            self._stop(s, done.index, done.fraction, "behind",
                       f"{self._its_value(done)} is at best {_value(p.optimistic)}, "
                       f"{'below' if higher_is_better(self.metric) else 'above'} {leader}'s worst case {_value(lp.pessimistic)}",
                       p, lp)

    def _halve(self, index: int, fraction: float) -> None:
        """Successive halving's cut before the round at ``fraction`` (:func:`halve`), when the last round was
        :func:`informative`."""
        from tunelab.advice.choose import is_better

        done = self.done_[index - 1]
        if not informative([m for m in self.measurements_ if m.fraction == done.fraction and m.strategy in self.alive_],
                           self.metric):
            self.uninformative_.append(done.index)
            return
        fresh = self._not_learned(done)
        if fresh:
            self.unranked_[done.index] = [s for s in self.alive_ if s in fresh]
        preds = {s: p for s in self.alive_ if s not in fresh and (p := self.predict(s)) is not None}
        costs = {s: predict_seconds(s, fraction, self.timings_, self.estimates, self.sizes) for s in preds}
        better = "above" if higher_is_better(self.metric) else "below"
        # the quota is taken from every strategy left: the unranked go on besides, and must not squeeze the ranked
        # (two learning of five left, three at chance: a quota of one of the two cut a learning strategy)
        among = len(preds) + sum(1 for s in self.alive_ if s in fresh)
        keep = kept_by_halving(among, self.eta)
        left = f"the {len(preds)} ranked of the {among} left" if among > len(preds) else f"the {among} left"
        first = self.verdicts_.get(done.index)
        first = first if first in preds and (not done.screening or self._keeps_up(first, done.index, preds)) else None
        for s, (why, other) in halve(preds, self.metric, self.eta, costs, among=among,
                                     at_full_data=not done.screening, first=first).items():
            # ``other``, the strategy the message compares s with, is the stop's leader (the report's Against cell)
            picked = why == "halved" and first is not None and is_better(preds[s].estimate, preds[first].estimate,
                                                                         self.metric)
            if picked:  # cut for the verdict's pick, which went on ahead of it: not for the last the order kept
                other = first
            p, op = preds[s], preds[other]
            said = f"{self._its_value(done)}, {_value(p.estimate)}, "
            if picked and done.screening:
                best, half = self.verdict_margins_[done.index]
                gap = self._trend_gap(preds[best], op)
                ahead, behind = (best, other) if gap >= 0 else (other, best)
                message = (said + f"is {better} {other}'s {_value(op.estimate)}, but the verdict on these runs picks "
                           f"{other}, the cheapest of the strategies it cannot tell apart from the best ({best}), and "
                           f"each carrying on the gain it showed from round to round (a check of their rates, not a "
                           f"forecast), {ahead} would end {self._gap_text(gap)} {better} {behind}, within the "
                           f"{self._gap_text(half)} its paired comparison could not separate: the next round goes to the best {keep} of {left} in the verdict's order "
                           f"(successive halving, η = {self.eta:g}); --halving 1 or --exhaustive compares them to the end")
            elif picked:
                message = (said + f"is {better} {other}'s {_value(op.estimate)}, but the verdict on these runs "
                           f"picks {other}, the cheapest of the strategies it cannot tell apart from the best. Only "
                           f"seeds are left to run, and they go to the best {keep} of {left} in the verdict's order "
                           f"(successive halving, η = {self.eta:g}): --halving 1 or --exhaustive runs every seed of "
                           "every strategy")
            elif why == "halved" and p.estimate == op.estimate:
                message = (said + f"is level with that of {other}, the last of the best {keep} of {left} "
                           f"(successive halving, η = {self.eta:g}), {self._cheaper(costs, other, s)}")
            elif why == "halved":
                message = (said + f"is not among the best {keep} of {left} (successive halving, "
                           f"η = {self.eta:g}; {other}: {_value(op.estimate)})")
                top = (max if higher_is_better(self.metric) else min)(preds.values(), key=lambda q: q.estimate)
                reaches = p.optimistic >= top.estimate if higher_is_better(self.metric) else p.optimistic <= top.estimate
                worse_than = self.shown_worse_.get(done.index, {}).get(s)
                if worse_than:  # its own interval may reach the best's estimate; the paired comparison is finer
                    message += (f"; the verdict's paired comparison on these runs (the same validation examples) "
                                f"shows it worse than {worse_than}")
                elif reaches:  # cut to spend the budget on fewer, not shown to be worse
                    message += (f"; its interval reaches {top.strategy}'s {_value(top.estimate)}, so it is not shown to be "
                                "worse: --halving 1 or --exhaustive compares them to the end")
            elif not done.screening:
                message = (said + f"is no {'higher' if higher_is_better(self.metric) else 'lower'} than that of "
                           f"{other} ({_value(op.estimate)}) at the full data, where only seeds are left to run, "
                           f"{self._cheaper(costs, other, s)}: the verdict recommends the cheaper of two strategies it "
                           "cannot separate")
            else:
                message = (said + f"at best {_value(p.optimistic)}, cannot end {better} the worst case of {other} "
                           f"({_value(op.pessimistic)}), {self._cheaper(costs, other, s)}: the verdict recommends the "
                           "cheaper of two strategies it cannot separate")
            self._stop(s, done.index, done.fraction, why, message, p, op)

    def quiet_message(self, index: int) -> str | None:
        """Why nothing was cut after round ``index`` when that round measured nothing (:func:`informative` false: it is
        in :attr:`uninformative_`), with the measurements that say so; None after a round that cut as usual."""
        if index not in self.uninformative_:
            return None
        done = self.done_[index - 1]
        there = sorted((m for m in self.measurements_ if m.fraction == done.fraction and m.strategy in done.strategies),
                       key=lambda m: -m.value if higher_is_better(self.metric) else m.value)
        chance = next((m.chance for m in there if m.chance is not None), None)
        constant = f" ({_value(chance)})" if chance is not None else ""
        measured = ", ".join(f"{m.strategy} {_value(m.value)} [{_value(m.low)}, {_value(m.high)}]" for m in there
                             if math.isfinite(m.low) and math.isfinite(m.high))
        return (f"after round {index} (data fraction {done.fraction:g}) no strategy is cut on its score: none is yet "
                f"distinguishable from always predicting the most frequent class{constant} on validation {self.metric}"
                + (f" ({measured}, {100 * self.level:g} % intervals)" if measured else "")
                + ", so their order says nothing")

    def verdict_matters(self, rnd: Round) -> bool:
        """Whether the cut after ``rnd`` can use the verdict on its runs (:meth:`finish_round`'s ``verdict``): after
        the full data's first seed, or after a round of less data that leaves some strategy measured at two fractions
        (a learning rate, which :meth:`_keeps_up` needs); not after the last round, nor with one strategy left. The
        verdict's bootstrap over every pair took 2 s after the demo's round 1, where no rate is measured yet."""
        if rnd.final or len(self.alive_) < 2:
            return False
        return not rnd.screening or any(m.strategy in rnd.strategies and m.fraction < rnd.fraction
                                        for m in self.measurements_)

    def _keeps_up(self, pick: str, index: int, preds: Mapping[str, Prediction]) -> bool:
        """Whether, after round ``index`` of less data, the verdict's ``pick`` goes first in the cut: where it is the
        verdict's best, or where both it and that best have shown a learning rate (:attr:`Prediction.trend`: two
        fractions or more) and, carried on at those rates to the full data, the best would end less than the
        half-width of their paired interval above it, so that the verdict there would still not separate them. A
        cheaper pick that learns slower than its margin allows (a frozen body level with full fine-tuning on little
        data) is ranked by its estimate, as every strategy after round 1 (no rate measured yet) is."""
        best, half = self.verdict_margins_.get(index, (None, None))
        if best == pick:
            return True
        p, b = preds.get(pick), preds.get(best) if best is not None else None
        if half is None or p is None or b is None or p.trend is None or b.trend is None:
            return False
        return self._trend_gap(b, p) < half

    def _trend_gap(self, best: Prediction, other: Prediction) -> float:
        """How far ``other``'s trend ends below ``best``'s, in the verdict's units (a difference of an accuracy-like
        metric; relative for perplexity or loss), as its paired interval's half-width is."""
        return best.trend - other.trend if higher_is_better(self.metric) else other.trend / best.trend - 1.0

    def _gap_text(self, gap: float) -> str:
        """A gap in the verdict's units as the messages say it: points of an accuracy-like metric, % of a perplexity
        or loss."""
        return f"{100 * abs(gap):.1f} {'points' if higher_is_better(self.metric) else '%'}"

    def _its_value(self, done: Round) -> str:
        """How a stop's message names the value it rests on: predicted for the full data after a round of less, measured
        (with one seed of several) after the full data's first rung."""
        where = f"after round {done.index} (data fraction {done.fraction:g}"
        if not done.screening:
            return f"{where}, seed 1 of {self.seeds}) its validation {self.metric}"
        return f"{where}) its predicted validation {self.metric} at the full data"

    @staticmethod
    def _cheaper(costs: Mapping[str, float | None], other: str, strategy: str) -> str:
        return f"whose next run is predicted to cost less ({costs[other]:.0f} s against {costs[strategy]:.0f} s)"

    def _stop(self, strategy: str, index: int, fraction: float, reason: str, message: str,
              prediction: Prediction | None = None, leader: Prediction | None = None) -> None:
        if strategy not in self.alive_:
            return
        self.alive_.remove(strategy)
        if prediction is None and reason != "failed":
            prediction = self.predict(strategy)
        self.stops_.append(Stop(strategy, index, fraction, reason, message, prediction, leader))


# ----------------------------------------------------------------------------- from run records


def measurements_from_results(results: Sequence[Any], metric: str, fraction: float, *,
                              level: float = 0.95) -> list[Measurement]:
    """Each strategy's validation ``metric`` at ``fraction`` from run records: mean over seeds, with its
    bootstrap interval over the saved per-example outputs (with Student's t over seeds; the t interval over seeds,
    or the point itself, when none were saved)."""
    from tunelab.advice.choose import summarize_strategies
    from tunelab.advice.verdict import chance_level, example_results, interval_from

    out = []
    for s in summarize_strategies(list(results), data_fraction=fraction, metric=metric):
        if not s.ok:
            continue
        values = s.values("validation")
        examples = example_results(s, "validation")  # read once: the interval and the chance level
        interval = interval_from(examples, values, metric, level=level)
        mean = float(sum(values) / len(values))
        low, high = (interval.low, interval.high) if interval is not None else (mean, mean)
        if interval is None and examples is not None:  # too few examples to bound anything: not ranked, not stopped
            low, high = -math.inf, math.inf
        chance = chance_level(examples.y_true if examples is not None else None, metric)
        out.append(Measurement(s.strategy, fraction, mean, low, high, s.n_train, tuple(values), chance))
    return out


def timings_from_results(results: Sequence[Any]) -> list[RunTiming]:
    """How long each successful run took (see :class:`RunTiming`): the training time and the training rows'
    share of the frozen-layer cache's time grow with the data; loading, evaluation and the rest do not."""
    from tunelab.run.record import as_record

    out = []
    for run in results:
        run = as_record(run)
        wall = run.run_info.wall_time_s
        if not run.succeeded or wall is None:
            continue
        ti, meta = run.train_info, run.meta_info
        # the frozen-layer cache covers the evaluation splits too (a screening run's, the validation split only): only
        # its training rows' share grows with the data
        rows = [meta.n_train, meta.n_validation] + ([] if run.config.get("screening") else [meta.n_test])
        share = meta.n_train / sum(rows) if all(isinstance(r, int) for r in rows) and sum(rows) else 1.0  # type: ignore[arg-type,operator]
        scaling = (ti.train_time_s or 0.0) + (ti.cache_time_s or 0.0) * share
        step = None
        if ti.samples_per_s and ti.batch_size:
            step = ti.batch_size * (ti.gradient_accumulation_steps or 1) / ti.samples_per_s
        out.append(RunTiming(str(run.run_info.strategy or run.config.get("strategy")), float(run.run_info.data_fraction or 1.0),
                             float(wall), min(float(wall), scaling), step))
    return out
