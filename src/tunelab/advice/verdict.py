"""The evidence a recommendation rests on: each strategy's interval, and its comparison with the best.

Numbers come from the per-example outputs every run keeps (``<run>/outputs/<split>.npz``,
:mod:`tunelab.run.outputs`) through :mod:`tunelab.advice.stats`:

* an interval per strategy and split: bootstrap over the examples, widened by Student's t on the seeds' spread
  when there are several (:func:`~tunelab.advice.stats.bootstrap_interval`);
* the comparison with the best on the *selection* split, paired on the same examples
  (:func:`~tunelab.advice.stats.indistinguishable_from_best`: McNemar mid-p for accuracy of single seeds,
  else the paired bootstrap; Holm-adjusted over every pair of strategies, as the best is picked from the same
  examples: :func:`~tunelab.advice.stats.holm_against_best`).

**Above chance.** For classification the comparison also knows what a constant predictor scores on the same
examples: always the most frequent class (:func:`chance_level`). For a causal LM the reference is the model as
loaded, before any adaptation, on the same validation texts (:func:`reference_results`, measured by the runs), and
each strategy is compared with it pair by pair, text by text (:func:`~tunelab.advice.stats.paired_gap`). A strategy
whose interval reaches that score (for a causal LM: whose paired gap to the model as loaded reaches zero) has
not been shown to learn anything (:func:`clear_of_chance`; the planner's rounds use the same test to leave such a
strategy unranked). When the best is clear of it, a strategy that is not is no contender, however close its
estimate (reason ``at_chance``): the recommendation is the cheapest strategy shown to learn the task among those
as good as the best. When the best is not clear of it either, nothing was shown to learn, and
:attr:`Comparison.learned` says so (the recommendation's reasons then warn that its ranking says nothing).

Runs without saved outputs (older runs) fall back to the spread over seeds: a t interval per strategy,
and a two-sample t-test with the seed variance pooled over the two strategies compared (unpaired, so
weaker than the paired test). With a single seed and no outputs there is no uncertainty to state: the
comparison is by point estimate only and :attr:`Comparison.evidence` says ``"none"``.

The strategies are passed as :class:`tunelab.advice.choose.StrategySummary` objects (read through
``strategy``, ``runs`` and ``values(split)``); this module does not import :mod:`~tunelab.advice.choose`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from tunelab.advice.stats import (
    ExampleResults,
    Interval,
    bootstrap_interval,
    holm_against_best,
    indistinguishable_from_best,
    interval_method,
    metric_value,
    paired_gap,
)
from tunelab.metrics import higher_is_better, in_range, same_measurement, task_metrics
from tunelab.run.outputs import AS_LOADED, ExampleOutputs
from tunelab.run.outputs import FOLDER as OUTPUTS_FOLDER
from tunelab.run.record import RunRecord, as_record

#: Bootstrap replicates for every interval and paired comparison (Monte Carlo error of a 95 % bound
#: about 0.2 % of its level).
N_BOOT = 10_000

EXAMPLES, SEEDS, NONE = "examples", "seeds", "none"

#: What a strategy must be shown to beat (:attr:`Comparison.reference`): always predicting the most frequent class
#: (classification), or the pre-trained model as loaded, before any adaptation (causal LM).
MAJORITY, AS_LOADED_MODEL = "majority", "as-loaded"

#: The reasons a strategy is kept as a contender beside the best.
KEPT = ("best", "within_tolerance", "not_distinguishable")


# ------------------------------------------------------------------------------------------ per-example input


def run_outputs(run: Any, split: str) -> ExampleOutputs | None:
    """The per-example outputs a run saved for ``split`` (in the folder ``config.out``), or None."""
    folder = _run_folder(run)
    if folder is None:
        return None
    try:
        return ExampleOutputs.load(folder, split)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _run_folder(run: Any) -> Path | None:
    folder = run.config.get("out") if isinstance(run.config, dict) else None
    return Path(folder) if folder else None


# ------------------------------------------------------------------------------------------ each run's numbers


def run_value(run: Any, split: str, metric: str) -> float | None:
    """One run's ``metric`` on ``split`` as a comparison states it everywhere (its table, recommendation, results.csv,
    learning curves, the planner's rounds): computed from the per-example outputs the run saved, with today's
    definitions, by the bootstrap's own function (:func:`~tunelab.advice.stats.metric_value`), so a number and its
    interval are of one metric; the value its ``metrics.json`` recorded where it saved none (older runs) or where the
    metric is not one the outputs give (a classifier's loss). A run recorded before a definition changed (macro F1 over
    the split's gold classes, session 43) is thus stated as today's runs are (:func:`restated`). A causal LM's
    perplexity is the bootstrap's over texts, per-token losses summed in float64, where the recorded one summed each
    block's in float32: they part in the 8th digit (122.121161 and 122.121163 on a tiny Llama)."""
    return outputs_scores(run, split).get(metric, run.metrics.value(split, metric))


def outputs_scores(run: Any, split: str) -> dict[str, float]:
    """Each metric of the run's task (:func:`tunelab.metrics.task_metrics`) on ``split``, from its saved outputs
    (:func:`run_outputs`) as :func:`~tunelab.advice.stats.metric_value` computes it; empty where none were saved. Read
    once per file as it is on disk (the summaries ask for them many times)."""
    folder = _run_folder(run)
    if folder is None:
        return {}
    try:
        stat = (folder / OUTPUTS_FOLDER / f"{split}.npz").stat()
    except OSError:
        return {}
    return dict(_scores(str(folder), split, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=1024)
def _scores(folder: str, split: str, mtime_ns: int, size: int) -> tuple[tuple[str, float], ...]:
    try:
        results = _results_of([ExampleOutputs.load(Path(folder), split)])
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    if results is None:
        return ()
    task = "classification" if results.task == "classification" else "causal-lm"
    return tuple((metric, metric_value(results, metric)) for metric in task_metrics(task))


@dataclass(frozen=True)
class Restated:
    """A value a run's ``metrics.json`` recorded that its saved outputs give otherwise today (:func:`restated`)."""

    run_id: str
    split: str
    metric: str
    recorded: float
    value: float


def restated(run: Any, metric: str, splits: Sequence[str] = ("validation", "test")) -> list[Restated]:
    """Where ``metric`` of ``run`` as its ``metrics.json`` recorded it differs from :func:`run_value`'s, per split: a
    run recorded before a definition changed (reused by ``compare --resume``, or a report of an older comparison). Not
    a rounding's worth: float32 sums of a causal LM's losses part in the 8th digit (:func:`run_value`), which a high
    perplexity's exponential carries to its last printed one (:func:`tunelab.metrics.same_measurement`)."""
    found = []
    for split in splits:
        recorded, value = run.metrics.value(split, metric), outputs_scores(run, split).get(metric)
        if (isinstance(recorded, int | float) and value is not None and math.isfinite(recorded)
                and not same_measurement(metric, recorded, value)):
            found.append(Restated(str(run.run_info.run_id or _run_folder(run) or "?"), split, metric, float(recorded),
                                  value))
    return found


def as_compared(run: Any, *, restated_only: bool = False) -> dict[str, Any]:
    """A run record's dict form with the numbers a comparison states for it everywhere (its table, results.csv, the
    trackers its runs log to): a successful run's metrics from its saved outputs (:func:`outputs_scores`, as
    :func:`run_value`), and where its ``metrics.json`` recorded another value (:func:`restated`), that one under
    ``metrics.recorded.<split>.<metric>``. A failed run's record as it is.

    ``restated_only``: a recorded value that is the same measurement summed otherwise (a causal LM's float32 sums
    against the outputs' float64 ones: :func:`tunelab.metrics.same_measurement`) stays as recorded, for a tracker
    that holds the run's own values already: logged again, it was a second point at the same step
    (``validation_perplexity`` 47825.9799, then 47825.9313)."""
    values = run.to_dict() if isinstance(run, RunRecord) else dict(run)
    record = as_record(run)
    if not record.succeeded:
        return values
    metrics = values["metrics"] = {k: dict(v) if isinstance(v, dict) else v
                                   for k, v in (values.get("metrics") or {}).items()}
    for split in ("validation", "test"):
        scores = outputs_scores(record, split)
        changes = [r for metric in scores for r in restated(record, metric, (split,))]
        for change in changes:
            metrics.setdefault("recorded", {}).setdefault(split, {})[change.metric] = change.recorded
        if restated_only:
            kept = {c.metric for c in changes} | {m for m in scores if not _finite(record.metrics.value(split, m))}
            scores = {m: v for m, v in scores.items() if m in kept}
        if scores:
            metrics[split] = {**(metrics.get(split) or {}), **scores}
    return values


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def example_results(summary: Any, split: str) -> ExampleResults | None:
    """All seeds of a strategy on ``split`` as one :class:`ExampleResults`; None when any run kept no
    outputs, or when the seeds were evaluated on different examples."""
    return _results_of([run_outputs(run, split) for run in summary.runs])


def _reference_outputs(summaries: Sequence[Any]) -> ExampleOutputs | None:
    """The outputs :func:`reference_results` reads."""
    for summary in summaries:
        for run in summary.runs:
            outputs = run_outputs(run, AS_LOADED)
            if outputs is not None and len(outputs) and outputs.task == "causal-lm":
                return outputs
    return None


def reference_results(summaries: Sequence[Any]) -> ExampleResults | None:
    """A causal LM's reference on the validation split: the model as loaded, before any adaptation, as the first run
    that measured it saved it (:data:`~tunelab.run.outputs.AS_LOADED`; every such run measures the same model on the
    same blocks). None for a classifier, or where no run measured it."""
    outputs = _reference_outputs(summaries)
    return None if outputs is None else _results_of([outputs])


def common_units(groups: list[list[ExampleOutputs | None]]) -> tuple[list[list[ExampleOutputs | None]], str]:
    """Causal-LM outputs of the runs compared (a list per strategy) on the units they all have, and a note saying
    what that took ("" where nothing did); others as they are. The units are texts (:meth:`ExampleOutputs.by_text`):
    each predicted token's own text where every run kept it, else, where a run was saved before it was kept (only the
    text each block starts in), the text each block starts in, for every run, as that one can be read. Where the runs
    scored different texts or tokens of a text (a run saved before a validation split kept each packing batch's last
    partial block scored fewer; so did its reading by block start), the comparison is on the texts every run scored
    alike (none when fewer than :data:`MIN_EXAMPLES` are: the pairing then fails, as it did)."""
    lm = [o for group in groups for o in group if o is not None and len(o) and o.task == "causal-lm"]
    if not lm:
        return groups, ""
    own = all(o.text_ids is not None for o in lm)
    units = [[o.by_text(own) if o is not None and len(o) and o.task == "causal-lm" else o for o in group]
             for group in groups]
    notes = [] if own else [f"{sum(o.text_ids is None for o in lm)} of the {len(lm)} runs' outputs were saved before "
                            "each text's own loss was kept, so every run's are summed per the text each block starts "
                            "in (the texts packed after it into a block count with it)"]
    read = [o for group in units for o in group if o is not None and len(o) and o.task == "causal-lm"]
    first = read[0]
    if all(o.texts is not None for o in read) and any(not np.array_equal(o.texts, first.texts) or not np.array_equal(o.token_counts, first.token_counts)
           for o in read):
        shared = first.texts
        for o in read[1:]:
            shared = np.intersect1d(shared, o.texts)
        counts = np.stack([o.token_counts[np.searchsorted(o.texts, shared)] for o in read])
        alike = shared[np.all(counts == counts[0], axis=0)]
        if alike.size >= MIN_EXAMPLES:
            units = [[_only(o, alike) if o is not None and len(o) and o.task == "causal-lm" else o for o in group]
                     for group in units]
            largest = max(len(o) for o in read)
            notes.append(f"the runs scored different texts or tokens of them (a run saved before a validation split "
                         f"kept each packing batch's last block scored fewer): paired on the {alike.size:,} of "
                         f"{largest:,} texts every run scored alike")
    return units, "; ".join(notes)


def _only(outputs: ExampleOutputs, texts: np.ndarray) -> ExampleOutputs:
    """Per-text outputs of ``texts`` only (each among ``outputs.texts``, both sorted)."""
    at = np.searchsorted(outputs.texts, texts)
    return ExampleOutputs(loss_sums=outputs.loss_sums[at], token_counts=outputs.token_counts[at], texts=texts)


def _results_of(outputs: list[ExampleOutputs | None], units: bool = True) -> ExampleResults | None:
    """Per-seed outputs of one split as one :class:`ExampleResults` (None: one is missing, or they differ in examples).
    ``units``: a causal LM's outputs are first put on the units they share (:func:`common_units`); False: they are."""
    if not outputs or any(o is None or len(o) == 0 for o in outputs):
        return None
    first = outputs[0]
    if first.task == "classification":
        if any(o.task != first.task or not np.array_equal(o.labels, first.labels) for o in outputs):
            return None
        return ExampleResults.classification(first.labels, np.stack([o.predictions for o in outputs]))
    if units:  # texts are the units resampled, not the blocks they were packed into
        outputs = common_units([outputs])[0][0]
    first = outputs[0]
    if any(o.task != first.task or not np.array_equal(o.token_counts, first.token_counts) for o in outputs):
        return None
    tokens = first.token_counts.astype(np.float64)
    loss = [np.divide(o.loss_sums, tokens, out=np.zeros_like(tokens), where=tokens > 0) for o in outputs]
    return ExampleResults.causal_lm(np.stack(loss), tokens)


# ------------------------------------------------------------------------------------------------ intervals


def seed_interval(values: Sequence[float], level: float, metric: str) -> Interval | None:
    """Student-t interval of the mean over seeds, within ``metric``'s range; None with fewer than two seeds."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(sps.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, in_range(mean - half, metric), in_range(mean + half, metric), level, "t interval over seeds",
                    n, n)


def metric_interval(summary: Any, split: str, metric: str, *, level: float = 0.95) -> Interval | None:
    """A strategy's ``metric`` on ``split`` with its interval: bootstrap over the saved examples (with
    Student's t over seeds), else the t interval over seeds, else None (one seed, nothing saved)."""
    return interval_from(example_results(summary, split), summary.values(split), metric, level=level)


def interval_from(results: ExampleResults | None, values: Sequence[float], metric: str, *,
                  level: float = 0.95) -> Interval | None:
    """:func:`metric_interval` from examples already read (:func:`example_results`) and the per-seed ``values``. One
    example has no spread to resample (its bootstrap interval has no width): only the seeds' spread, if any."""
    if results is not None and results.n_examples >= MIN_EXAMPLES:
        return bootstrap_interval(results, metric, level=level, n_boot=N_BOOT, method=interval_method(metric))
    return seed_interval(values, level, metric)


MIN_EXAMPLES = 2
"""The fewest examples a bootstrap over examples is drawn from: one example's replicates are all that example."""


def interval_dict(interval: Interval | None, split: str) -> dict[str, Any] | None:
    """An interval as plain values, saying which split it comes from."""
    if interval is None:
        return None
    return {"split": split, "estimate": interval.estimate, "low": interval.low, "high": interval.high,
            "level": interval.level, "method": interval.method, "n": interval.n, "n_seeds": interval.n_seeds}


# ------------------------------------------------------------------------------------------------ comparison


@dataclass(frozen=True)
class Versus:
    """One strategy against the best on the selection split.

    ``reason``: ``best``, ``within_tolerance``, ``not_distinguishable``, ``worse``, ``at_chance`` (as good as the
    best by the test, but its own interval reaches a constant predictor's score while the best's is clear of it), or
    ``untested`` (no uncertainty available: one seed and no saved outputs). ``gap``: how much worse than the best (>= 0
    worse): points for accuracy-like metrics, relative for perplexity and loss, as in
    :class:`tunelab.advice.stats.StrategyVerdict`; ``gap_upper`` its one-sided upper bound; ``p_value``
    Holm-adjusted, ``p_raw`` before the adjustment. The interval is the paired bootstrap's at ``1 - alpha``,
    unadjusted: when McNemar's test decides, or Holm's adjustment lifts ``p_value`` above ``alpha``, it can
    exclude zero for a strategy the test keeps (:meth:`interval_disagrees`)."""

    strategy: str
    value: float
    reason: str
    gap: Interval | None = None
    gap_upper: float | None = None
    p_value: float | None = None
    point_gap: float = 0.0
    p_raw: float | None = None
    #: The part of the gap's variance that more examples at the same seeds would not shrink: each of the two
    #: strategies' seed-to-seed variance of its metric over its number of seeds, on the gap's scale (0 with one seed):
    #: an upper bound on the part more examples cannot remove (:func:`~tunelab.advice.stats.seed_variance`).
    seed_variance: float = 0.0
    #: The part that more examples would shrink as ``1 / n``: the paired replicates' variance over the examples, seeds
    #: held (:attr:`~tunelab.advice.stats.StrategyVerdict.examples_variance`). None where the gap came from elsewhere.
    examples_variance: float | None = None
    #: The seeds' part's own Welch-Satterthwaite degrees of freedom (:attr:`~tunelab.advice.stats.StrategyVerdict.seeds_df`;
    #: 2 for two strategies of 3 seeds with equal spreads). None where the gap came from elsewhere: then the fewest a
    #: strategy of ``gap.n_seeds`` seeds can have, ``n_seeds - 1``.
    seed_df: float | None = None
    #: How much of :attr:`seed_variance` is the seeds' own example noise, which more examples do shrink
    #: (:attr:`~tunelab.advice.stats.StrategyVerdict.seeds_examples_part`).
    seed_examples_variance: float = 0.0

    @property
    def kept(self) -> bool:
        """Whether it stays a contender beside the best."""
        return self.reason in KEPT

    @property
    def interval_disagrees(self) -> bool:
        """Kept as not distinguishable although its (unadjusted) gap interval excludes zero."""
        return self.reason == "not_distinguishable" and self.gap is not None and (self.gap.low > 0 or self.gap.high < 0)


@dataclass(frozen=True)
class Comparison:
    """Every strategy against the best on ``split`` (see the module doc for the three kinds of evidence)."""

    metric: str
    split: str
    best: str
    alpha: float
    tolerance: float | None
    evidence: str
    test: str
    n_examples: int | None
    n_seeds: int
    versus: dict[str, Versus] = field(default_factory=dict)
    note: str = ""
    #: The reference a strategy must be shown to beat, on ``split``: always predicting the most frequent class
    #: (classification), or a causal LM's model as loaded (:attr:`reference` says which); None: not known.
    chance: float | None = None
    #: Whether the best's interval is clear of :attr:`chance` (None when no chance level is known).
    learned: bool | None = None
    #: Each strategy's own interval on ``split`` at ``1 - alpha``, where the chance check needed them.
    intervals: dict[str, Interval] = field(default_factory=dict)
    #: What :attr:`chance` is: :data:`MAJORITY` or :data:`AS_LOADED_MODEL`.
    reference: str = "majority"
    #: Where the reference is a model measured on the same examples (:data:`AS_LOADED_MODEL`): each strategy's paired
    #: gap to it (how much worse, on the tolerance's scale; negative: better), which decides whether it learned.
    reference_gaps: dict[str, Interval] = field(default_factory=dict)
    #: What one of :attr:`n_examples` is: an example (classification) or a text (a causal LM's, its tokens summed).
    unit: str = "example"

    def units(self, n: int | None = None) -> str:
        """``9 validation examples`` / ``4 validation texts`` (``n`` defaults to :attr:`n_examples`)."""
        n = self.n_examples if n is None else n
        return f"{n:,} {self.split} {self.unit}{'s' if n != 1 else ''}"

    @property
    def contenders(self) -> list[str]:
        """The best and every strategy kept beside it, in the order compared (cheapest first)."""
        return [name for name, v in self.versus.items() if v.kept]


def compare_with_best(
    summaries: Sequence[Any], metric: str, *, split: str = "validation", alpha: float = 0.05,
    tolerance: float | None = None,
) -> Comparison:
    """Compare every strategy with the best on ``split``. ``summaries`` come cheapest first, so a tie on
    the metric goes to the cheaper one."""
    loaded = [[run_outputs(run, split) for run in s.runs] for s in summaries]
    reference = _reference_outputs(summaries) if split == "validation" else None
    # every run and the reference on the units they all have (a causal LM's runs saved before per-text sums)
    groups, units = common_units(loaded + [[reference]])
    results = {s.strategy: _results_of(group, units=False) for s, group in zip(summaries, groups)}
    missing = [name for name, r in results.items() if r is None]
    if not missing:
        try:
            paired = _paired(results, metric, split, alpha, tolerance,
                             None if reference is None else _results_of(groups[-1], units=False))
            return replace(paired, note=units) if units else paired
        except ValueError as exc:  # evaluated on different examples: nothing to pair
            note = f"the runs' saved outputs cannot be paired ({exc})"
    else:
        note = f"no per-example outputs saved for {', '.join(missing)}"
    return _by_seeds(summaries, metric, split, alpha, tolerance, note)


def _paired(results: dict[str, ExampleResults], metric: str, split: str, alpha: float,
            tolerance: float | None, reference: ExampleResults | None = None) -> Comparison:
    first = next(iter(results.values()))
    seeds = max(r.n_seeds for r in results.values())
    unit = "example" if first.task == "classification" else "text"  # a causal LM's unit: a text, its tokens summed
    chance, basis = chance_level(first.y_true, metric), MAJORITY
    if (chance is None and reference is not None and reference.task == first.task
            and np.array_equal(reference.tokens, first.tokens)):  # the same texts, to the token
        chance, basis = metric_value(reference, metric), AS_LOADED_MODEL
    intervals = ({name: bootstrap_interval(r, metric, level=1 - alpha, n_boot=N_BOOT, method=interval_method(metric))
                  for name, r in results.items()} if chance is not None else {})
    # a model measured on the same texts is compared pair by pair; a constant predictor's score is a point
    gaps = ({name: paired_gap(r, reference, metric, level=1 - alpha, n_boot=N_BOOT) for name, r in results.items()}
            if basis == AS_LOADED_MODEL and reference is not None else {})

    def clear(name: str) -> bool:
        if gaps:
            return gaps[name].high < 0  # better than the reference throughout the paired interval
        return clear_of_chance(intervals[name].low, intervals[name].high, chance, metric)

    if len(results) == 1:
        name = next(iter(results))
        value = metric_value(first, metric)
        return Comparison(metric, split, name, alpha, tolerance, EXAMPLES, "none (one strategy)", first.n_examples,
                          seeds, {name: Versus(name, value, "best")}, chance=chance,
                          learned=clear(name) if chance is not None else None, intervals=intervals, reference=basis,
                          reference_gaps=gaps, unit=unit)
    verdict = indistinguishable_from_best(results, metric, alpha=alpha, tolerance=tolerance, n_boot=N_BOOT)
    best_value = verdict.verdict(verdict.best).value
    learned = clear(verdict.best) if chance is not None else None
    versus = {}
    for name in results:  # the order given: cheapest first
        v = verdict.verdict(name)
        reason = v.reason
        if learned and v.reason in KEPT and v.reason != "best" and not clear(name):
            reason = "at_chance"
        versus[name] = Versus(name, v.value, reason, v.gap, v.gap_upper, v.p_value, _gap(v.value, best_value, metric),
                              v.p_raw, v.seeds_variance, v.examples_variance, v.seeds_df, v.seeds_examples_part)
    test = f"{verdict.test}{', Holm-adjusted' if len(results) > 2 else ''}"
    return Comparison(metric, split, verdict.best, alpha, tolerance, EXAMPLES, test, first.n_examples, seeds, versus,
                      chance=chance, learned=learned, intervals=intervals, reference=basis, reference_gaps=gaps,
                      unit=unit)


#: The power at which :func:`examples_to_separate` sizes a validation split.
POWER = 0.8


def smallest_gap_shown(n_examples: int, alpha: float, power: float = POWER) -> float:
    """The smallest accuracy gap between two strategies that ``n_examples`` validation examples show at level
    ``alpha`` with probability ``power``, in the most favourable case: the two disagree only where one of them is
    right, so a gap ``d`` means ``d * n`` discordant examples and the per-example difference has variance
    ``d (1 - d)``. The gap must stand ``k = z(1 - alpha/2) + z(power)`` standard errors from zero, which gives
    ``d = k² / (n + k²)`` (normal approximation, before Holm's adjustment). Real strategies also disagree where both
    are wrong in different ways, or each right on different examples, so the gap they need is larger: this is a
    floor, known before any training.

    >>> round(smallest_gap_shown(106, 0.05), 3), round(smallest_gap_shown(2000, 0.05), 4)
    (0.069, 0.0039)
    """
    from statistics import NormalDist

    z = NormalDist().inv_cdf
    k2 = (z(1 - alpha / 2) + z(power)) ** 2
    return k2 / (max(1, int(n_examples)) + k2)


def examples_to_separate(versus: Versus, n_examples: int | None, alpha: float, power: float = POWER) -> int | None:
    """About how many validation examples (each scored at the same seeds) would show ``versus``'s measured gap to the
    best at level ``alpha`` with probability ``power``, by the verdict's own test (before Holm's adjustment: a floor).
    Of the gap's variance, the examples' part (:attr:`Versus.examples_variance`) shrinks as ``1/n``, and so does the
    seeds' own example noise in the seeds' part (:attr:`Versus.seed_examples_variance`); the rest of the seeds' part
    (:attr:`Versus.seed_variance`) does not (scaling all of it promised 80 % where simulation gave 33 %: 3 seeds, a
    3-point gap). With one seed the test is the normal one: the gap must stand ``z(1 - alpha/2) + z(power)`` standard
    errors out. With several it is Welch's t on the Satterthwaite degrees of freedom (:func:`_power`), and those fall
    towards the seeds' own (2 with 3 seeds) as more examples shrink the examples' part: the normal quantiles asked for
    too few (benchmarks/separation_power.py: at their number the test showed the gap in 0.60 and 0.79 of simulated sets,
    now 0.84 and 0.82; benchmarks/README.md, "Session 43"). Without the parts (a :class:`Versus` built elsewhere) the
    variance is read from the interval's width. None without a paired interval, examples or a gap, or when no number
    of examples reaches ``power`` (:func:`seeds_hide_gap`: more seeds are needed, not examples).

    >>> from tunelab.advice.stats import Interval
    >>> gap = Interval(0.047, -0.035, 0.129, 0.95, "paired bootstrap", 106, 3)
    >>> examples_to_separate(Versus("head", 0.623, "not_distinguishable", gap=gap, point_gap=0.047), 106, 0.05)
    660
    """
    parts = _separation(versus)
    if parts is None or not n_examples:
        return None
    ratio = _ratio_needed(*parts, alpha, power)
    return None if ratio is None else int(math.ceil(n_examples * ratio - 1e-9))


def seeds_hide_gap(versus: Versus, alpha: float, power: float = POWER) -> bool:
    """Whether the seeds' part of ``versus``'s paired interval leaves its gap below ``power`` at level ``alpha`` however
    many validation examples (more seeds are needed, not examples): :func:`examples_to_separate` names no number."""
    parts = _separation(versus)
    return parts is not None and parts[2] > parts[3] and _ratio_needed(*parts, alpha, power) is None


def _power(size: float, examples: float, seeds: float, seeds_df: float, alpha: float) -> float:
    """The chance that the verdict's test shows a gap ``size`` whose variance has an examples' part ``examples`` (known:
    infinite degrees of freedom) and a seeds' part ``seeds`` on ``seeds_df``: Welch's t on the Satterthwaite degrees of
    freedom ``nu = (examples + seeds)² seeds_df / seeds²`` (:func:`~tunelab.advice.stats.satterthwaite_df`), its
    statistic noncentral t with ``size / sqrt(examples + seeds)``; the normal where there is no seeds' part. The far
    tail (a gap shown the wrong way round) is left out, as in ``z(1 - alpha/2) + z(power)``."""
    variance = examples + seeds
    shift = size / math.sqrt(variance)
    if seeds <= 0 or not math.isfinite(seeds_df):
        return float(sps.norm.sf(sps.norm.ppf(1 - alpha / 2) - shift))
    nu = variance * variance * seeds_df / (seeds * seeds)
    return float(sps.nct.sf(sps.t.ppf(1 - alpha / 2, nu), nu, shift))


def _ratio_needed(size: float, examples: float, seeds: float, own: float, seeds_df: float, alpha: float,
                  power: float) -> float | None:
    """The smallest multiple ``r`` of the examples at which :func:`_power` reaches ``power``; None where none up to a
    million times does. At ``r`` the examples' part is ``examples / r`` and the seeds' part ``seeds - own + own / r``
    (``own``: the seeds' own example noise, :func:`~tunelab.advice.stats.seeds_own_example_noise`). One seed: closed
    form. Several: the degrees of freedom fall with ``r`` while the shift grows, so the power need not rise all the way
    (with 2 seeds' degrees of freedom it peaks and falls back towards the seeds' t test): the first crossing on a
    geometric grid, then bisection."""
    if seeds <= 0 or not math.isfinite(seeds_df):
        k = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
        allowed = (size / k) ** 2
        return examples / allowed if examples > 0 else 0.0

    def enough(r: float) -> bool:
        return _power(size, examples / r, seeds - own + own / r, seeds_df, alpha) >= power

    grid = np.geomspace(1e-4, 1e6, 241)
    reached = [enough(float(r)) for r in grid]
    if not any(reached):
        return None
    i = reached.index(True)
    if i == 0:
        return float(grid[0])
    lo, hi = float(grid[i - 1]), float(grid[i])
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def _separation(versus: Versus) -> tuple[float, float, float, float, float] | None:
    """(the measured gap, the examples' part of its variance, the seeds' part, the seeds' own example noise in it, the
    seeds' part's degrees of freedom); None without an interval or a gap."""
    gap = versus.gap
    if gap is None or not 0 < gap.level < 1:
        return None
    size = gap.estimate if gap.estimate > 0 else versus.point_gap
    if not (size > 0 and math.isfinite(gap.width) and gap.width > 0):
        return None
    seeds = max(0.0, versus.seed_variance)
    seeds_df = versus.seed_df if versus.seed_df is not None else float(max(1, gap.n_seeds - 1))
    if versus.examples_variance is not None:
        examples = max(0.0, versus.examples_variance)
    else:
        variance = (gap.width / 2 / sps.norm.ppf(1 - (1 - gap.level) / 2)) ** 2
        seeds = min(seeds, variance)
        examples = variance - seeds
    return size, examples, seeds, min(seeds, max(0.0, versus.seed_examples_variance)), seeds_df


def chance_level(labels: Any, metric: str) -> float | None:
    """``metric`` of always predicting the most frequent of the gold ``labels`` (ties: the first in sorted order);
    None when there are no labels (not a classification, or nothing saved) or the metric is not a classifier's.

    >>> chance_level(np.array([0, 1, 1, 2]), "accuracy")
    0.5
    """
    if labels is None or not len(labels):
        return None
    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True)
    constant = np.full_like(labels, values[counts.argmax()])
    return ExampleOutputs(labels=labels, predictions=constant).metrics().get(metric)


def clear_of_chance(low: float, high: float, chance: float | None, metric: str) -> bool:
    """Whether the interval ``[low, high]`` lies wholly on the good side of a constant predictor's score ``chance``
    (True when no chance level is known): the strategy has been shown to learn something.

    >>> clear_of_chance(0.49, 0.63, 0.5, "accuracy"), clear_of_chance(0.64, 0.76, 0.5, "accuracy")
    (False, True)
    """
    if chance is None:
        return True
    return low > chance if higher_is_better(metric) else high < chance


def _gap(value: float, best: float, metric: str) -> float:
    """How much worse ``value`` is than ``best``: points (accuracy-like) or relative (perplexity, loss)."""
    return best - value if higher_is_better(metric) else value / best - 1.0


def _by_seeds(summaries: Sequence[Any], metric: str, split: str, alpha: float, tolerance: float | None,
              note: str) -> Comparison:
    """The fallback: a pooled two-sample t-test over seeds, or point estimates when there is no spread."""
    values = {s.strategy: list(s.values(split)) for s in summaries}
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = max(values, key=lambda name: sign * float(np.mean(values[name])))  # first (cheapest) of equals
    best_mean = float(np.mean(values[best]))
    tests = {name: _pooled_t(vals, values[best], metric, alpha) for name, vals in values.items() if name != best}
    tested = [name for name, t in tests.items() if t is not None]
    others = [name for name in values if name != best]
    pairs = [_pooled_t(values[a], values[b], metric, alpha) for i, a in enumerate(others) for b in others[i + 1:]]
    pair_p = np.array([t[2] for t in pairs if t is not None])  # the pairs a best picked elsewhere would be tested in
    adjusted = (dict(zip(tested, holm_against_best(np.array([tests[name][2] for name in tested]), pair_p)))
                if tested else {})
    versus = {}
    for name, vals in values.items():
        mean, point = float(np.mean(vals)), _gap(float(np.mean(vals)), best_mean, metric)
        if name == best:
            versus[name] = Versus(name, mean, "best")
        elif tests[name] is None:
            within = tolerance is not None and point <= tolerance + 1e-12
            versus[name] = Versus(name, mean, "within_tolerance" if within else "untested", point_gap=point)
        else:
            gap, upper, _ = tests[name]
            p = float(adjusted[name])
            reason = ("within_tolerance" if tolerance is not None and upper <= tolerance
                      else "not_distinguishable" if p >= alpha else "worse")
            versus[name] = Versus(name, mean, reason, gap, upper, p, point, tests[name][2])
    seeds = max(len(v) for v in values.values())
    evidence = SEEDS if tested else NONE
    test = "two-sample t-test over seeds with pooled variance, Holm-adjusted" if tested else "none"
    return Comparison(metric, split, best, alpha, tolerance, evidence, test, None, seeds, versus, note)


def _pooled_t(values: list[float], best: list[float], metric: str, alpha: float) -> tuple[Interval, float, float] | None:
    """``(gap interval, one-sided upper bound, two-sided p)`` of the gap to the best; None without a
    degree of freedom for the seed variance."""
    n1, n2 = len(values), len(best)
    df = n1 + n2 - 2
    if df < 1:
        return None
    m1, m2 = float(np.mean(values)), float(np.mean(best))
    pooled = ((n1 - 1) * (np.var(values, ddof=1) if n1 > 1 else 0.0)
              + (n2 - 1) * (np.var(best, ddof=1) if n2 > 1 else 0.0)) / df
    se = math.sqrt(pooled * (1 / n1 + 1 / n2))
    gap = _gap(m1, m2, metric)
    if not higher_is_better(metric):
        se /= m2  # the relative gap's standard error (delta method)
    if se == 0:
        p = 1.0 if gap == 0 else 0.0
        return Interval(gap, gap, gap, 1 - alpha, "t over seeds", n1 + n2, max(n1, n2)), gap, p
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    upper = gap + float(sps.t.ppf(1 - alpha, df)) * se
    p = float(2 * sps.t.sf(abs(gap) / se, df))
    return Interval(gap, gap - half, gap + half, 1 - alpha, "t over seeds", n1 + n2, max(n1, n2)), upper, p


def versus_dict(v: Versus | None, comparison: Comparison) -> dict[str, Any] | None:
    """A comparison with the best as plain values: ``reason``, ``gap`` (how much worse; points or
    relative), its interval, the adjusted p-value, the split and the test."""
    if v is None:
        return None
    return {
        "split": comparison.split, "reason": v.reason, "gap": v.gap.estimate if v.gap else v.point_gap,
        "gap_low": v.gap.low if v.gap else None, "gap_high": v.gap.high if v.gap else None,
        "gap_upper": v.gap_upper, "p_value": v.p_value, "p_raw": v.p_raw, "interval_disagrees": v.interval_disagrees,
        "test": comparison.test, "alpha": comparison.alpha,
    }  # fmt: skip
