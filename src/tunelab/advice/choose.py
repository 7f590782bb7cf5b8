"""Pick a strategy from measured runs, and say why in this run's own numbers.

The input is a list of run records (see :mod:`tunelab.run.record`). Runs are grouped by strategy at the
largest data fraction; seeds are averaged (mean ± sample std). Strategies over the training-time or memory
limit are set aside, the best test metric is found, and then the *cheapest* strategy whose metric is within a
tolerance of the best is chosen: if LoRA is as good as full fine-tuning within noise, LoRA wins because
it trains faster, needs less memory and saves a smaller artifact.

    >>> from tunelab.advice.choose import recommend_from_results
    >>> rec = recommend_from_results(runs, max_train_minutes=30)   # doctest: +SKIP
    >>> rec["strategy"], rec["reasons"][0]                         # doctest: +SKIP
    ('lora', 'lora reached 0.801 test accuracy, 0.4 points below full (0.805), training 2.3× faster ...')

:func:`summarize_strategies` (the per-strategy aggregate) and the ``format_*`` helpers are shared with
:mod:`tunelab.report`, so the report and the recommendation quote the same numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunelab.advice.learning import (
    MIN_POINTS,
    N_BOOT,
    LearningCurves,
    fit_learning_curves,
    level_pct,
    too_few_sizes,
)
from tunelab.advice.stats import ExampleResults, Interval, joint_replicates, sign_flip_floor
from tunelab.advice.verdict import (
    AS_LOADED_MODEL,
    EXAMPLES,
    MIN_EXAMPLES,
    POWER,
    SEEDS,
    Comparison,
    Versus,
    chance_level,
    clear_of_chance,
    compare_with_best,
    example_results,
    examples_to_separate,
    interval_dict,
    metric_interval,
    restated,
    run_value,
    seeds_hide_gap,
    versus_dict,
)
from tunelab.config import out_of_range
from tunelab.errors import ConfigError, and_list, setting, some_of
from tunelab.metrics import higher_is_better, metric_problem, primary_metric
from tunelab.run.record import RunRecord, as_record
from tunelab.units import format_mb

_EPS = 1e-9


# --------------------------------------------------------------------------------------------------
# Reading run records


def run_strategy(run: RunRecord | Mapping) -> str:
    """The strategy name of a run (``run_info.strategy``, else ``config.strategy``)."""
    run = as_record(run)
    return str(run.run_info.strategy or run.config.get("strategy") or "unknown")


def run_succeeded(run: RunRecord | Mapping) -> bool:
    """Whether ``run_info.status`` is ``"success"``."""
    return as_record(run).succeeded


def run_fraction(run: RunRecord | Mapping) -> float:
    """The data fraction a run trained on (``run_info.data_fraction``; 1.0 when not recorded)."""
    run = as_record(run)
    value = run.run_info.data_fraction
    if value is None:
        value = run.config.get("data_fraction")
    return float(1.0 if value is None else value)


def results_task(results: list) -> str:
    """The task of a comparison (``meta_info.task`` of the first run that records one)."""
    for run in results:
        task = as_record(run).task
        if task:
            return str(task)
    return "classification"


def strategy_sort_key(name: str) -> tuple[int, str]:
    """Sort key that lists strategies in their listing order (``Strategy.order``: fewest trained weights
    first), unknown ones after, by name."""
    # imported here: the strategies (torch, transformers) load only when results are sorted, not with this module
    from tunelab.strategies import strategy_names

    names = strategy_names()
    return (names.index(name) if name in names else len(names), name)


def is_full_fine_tuning(name: str) -> bool:
    """Whether strategy ``name`` is full fine-tuning (:class:`~tunelab.strategies.Kind` ``FULL``)."""
    from tunelab.strategies import Kind, strategy_kind

    return strategy_kind(name) is Kind.FULL


def trains_all_weights(name: str) -> bool:
    """Whether strategy ``name`` ends up updating every weight (full fine-tuning, or unfreezing in stages
    until everything trains), so it is not a frozen-body / PEFT strategy. False for an unknown name."""
    from tunelab.strategies import strategy_kind

    kind = strategy_kind(name)
    return kind is not None and kind.trains_all_weights


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: list[float]) -> float | None:
    """Sample standard deviation over seeds; 0.0 for a single run, None for none."""
    if not values:
        return None
    return statistics.stdev(values) if len(values) > 1 else 0.0


# --------------------------------------------------------------------------------------------------
# Aggregating seeds


@dataclass
class StrategySummary:
    """One strategy at one data fraction: its seeds aggregated (means, and sample std over seeds).

    ``runs`` are the successful runs, ``failed_runs`` the failed ones. A strategy is ``ok`` when at
    least one run succeeded and recorded the validation metric (strategies are chosen on validation;
    the test metric is reported).
    """

    strategy: str
    metric: str
    data_fraction: float
    runs: list[RunRecord] = field(default_factory=list)
    failed_runs: list[RunRecord] = field(default_factory=list)

    def _values(self, read: Callable[[RunRecord], Any]) -> list[float]:
        values = (_number(read(run)) for run in self.runs)
        return [v for v in values if v is not None]

    def values(self, split: str) -> list[float]:
        """The metric on ``split`` (``validation`` or ``test``) of each successful seed that has it: from the run's
        saved per-example outputs with today's definitions, as its interval is (:func:`~tunelab.advice.verdict.run_value`),
        else as its ``metrics.json`` recorded it."""
        return self._values(lambda r: run_value(r, split, self.metric))

    @property
    def test_values(self) -> list[float]:
        """The test metric of each successful seed."""
        return self.values("test")

    @property
    def n(self) -> int:
        """Number of successful runs (seeds) with the validation metric, the one strategies are chosen by."""
        return len(self.values("validation"))

    @property
    def ok(self) -> bool:
        """At least one run succeeded with a validation metric."""
        return self.n > 0

    @property
    def status(self) -> str:
        """``success``, ``success (k failed)`` or ``failed``."""
        if self.ok:
            return "success" if not self.failed_runs else f"success ({len(self.failed_runs)} failed)"
        return "failed"

    @property
    def error(self) -> str | None:
        """The first failed run's error; for successful runs without a validation metric, says so."""
        for run in self.failed_runs:
            return str(run.run_info.error or "failed (no error recorded)")
        if self.runs and not self.ok:
            return f"no validation {self.metric} recorded"
        return None

    @property
    def test_mean(self) -> float | None:
        """Mean test metric over seeds."""
        return _mean(self.test_values)

    @property
    def test_std(self) -> float | None:
        """Sample std of the test metric over seeds (0.0 for one seed)."""
        return _std(self.test_values)

    @property
    def val_mean(self) -> float | None:
        """Mean final validation metric over seeds."""
        return _mean(self.values("validation"))

    @property
    def val_std(self) -> float | None:
        """Sample std of the final validation metric over seeds."""
        return _std(self.values("validation"))

    def mean_of(self, read: Callable[[RunRecord], Any]) -> float | None:
        """Mean over the successful runs of a numeric field, e.g. ``mean_of(lambda r: r.train_info.train_time_s)``."""
        return _mean(self._values(read))

    def std_of(self, read: Callable[[RunRecord], Any]) -> float | None:
        """Sample std over the successful runs of a numeric field."""
        return _std(self._values(read))

    @property
    def train_time_s(self) -> float | None:
        """Mean training time (training steps only), seconds."""
        return self.mean_of(lambda r: r.train_info.train_time_s)

    @property
    def peak_memory_mb(self) -> float | None:
        """Mean peak memory, MiB (see ``memory_kind``)."""
        return self.mean_of(lambda r: r.train_info.peak_memory_mb)

    @property
    def forgetting(self) -> float | None:
        """Mean forgetting on the reference text (``train_info.forgetting.value``; its unit is ``forgetting_unit``)."""
        return self.mean_of(lambda r: (r.train_info.forgetting or {}).get("value"))

    @property
    def forgetting_unit(self) -> str | None:
        """The unit its runs measured forgetting in (:func:`tunelab.run.forgetting.unit_of`: an encoder's drift names
        its CKA estimator, biased in a record written before tunelab named it); None where they differ."""
        from tunelab.run.forgetting import unit_of

        units = {unit_of(r.train_info.forgetting or {}) for r in self.runs if r.run_info.status == "success"}
        units.discard(None)
        return units.pop() if len(units) == 1 else None

    @property
    def trainable_share(self) -> float | None:
        """Trainable / total parameters (0..1), from ``trainable_share`` or the two counts."""
        share = self.mean_of(lambda r: r.train_info.trainable_share)
        if share is None:
            trainable = self.mean_of(lambda r: r.train_info.trainable_params)
            total = self.mean_of(lambda r: r.train_info.total_params)
            share = trainable / total if trainable is not None and total else None
        return share

    @property
    def memory_kind(self) -> str | None:
        """``rss`` or ``cuda`` (both, joined by ``/``, if the runs differ)."""
        kinds = {run.train_info.memory_kind for run in self.runs if run.train_info.memory_kind}
        return "/".join(sorted(kinds)) or None

    def meta(self, key: str) -> Any:
        """A ``meta_info`` field from the first run (successful first) that records it."""
        for run in [*self.runs, *self.failed_runs]:
            value = getattr(run.meta_info, key, None)
            if value is None:
                value = run.meta_info.extra.get(key)
            if value is not None:
                return value
        return None

    @property
    def n_train(self) -> int | None:
        """Training examples at this data fraction (``meta_info.n_train``)."""
        value = _number(self.meta("n_train"))
        return int(value) if value is not None else None

    @property
    def n_labels(self) -> int | None:
        """Number of classes (``meta_info.label_names``); None for causal LM."""
        labels = self.meta("label_names")
        return len(labels) if isinstance(labels, list | tuple) and labels else None

    def config(self, *keys: str) -> Any:
        """A (nested) ``config`` field from the first run that records it; the whole config with no keys."""
        for run in [*self.runs, *self.failed_runs]:
            value: Any = run.config
            for key in keys:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                return value
        return None


def available_fractions(results: list[dict], *, successful_only: bool = True) -> list[float]:
    """The distinct data fractions in ``results``, ascending."""
    return sorted({run_fraction(r) for r in results if run_succeeded(r) or not successful_only})


def largest_fraction(results: list[dict]) -> float | None:
    """The largest data fraction with a successful run (else the largest of any run; None if empty)."""
    fractions = available_fractions(results) or available_fractions(results, successful_only=False)
    return fractions[-1] if fractions else None


def summarize_strategies(
    results: list[dict], *, data_fraction: float | None = None, metric: str | None = None
) -> list[StrategySummary]:
    """Group runs by strategy at one data fraction (default: the largest), aggregating seeds, for
    ``metric`` (default: the task's, :func:`tunelab.metrics.primary_metric`).

    Strategies are returned in listing order (:func:`strategy_sort_key`). A strategy that only ran at other fractions
    is left out here.
    """
    if not results:
        return []
    fraction = largest_fraction(results) if data_fraction is None else float(data_fraction)
    metric = metric or primary_metric(results_task(results))
    groups: dict[str, StrategySummary] = {}
    for run in results:
        if not math.isclose(run_fraction(run), fraction):
            continue
        name = run_strategy(run)
        summary = groups.setdefault(name, StrategySummary(name, metric, fraction))
        run = as_record(run)
        (summary.runs if run.succeeded else summary.failed_runs).append(run)
    return [groups[name] for name in sorted(groups, key=strategy_sort_key)]


# --------------------------------------------------------------------------------------------------
# Formatting numbers the same way everywhere


def format_metric(value: float | None, metric: str) -> str:
    """``0.801`` for accuracy-like metrics, ``12.3`` / ``1.23`` / ``94.0`` for perplexity and loss (three
    significant digits, trailing zeros kept: ``94`` beside ``89.5`` read as less precise)."""
    if value is None:
        return "–"
    if higher_is_better(metric) and abs(value) <= 1.0:
        return f"{value:.3f}"
    return f"{value:#.3g}".rstrip(".") if abs(value) < 100 else f"{value:,.1f}"


def format_metric_pm(mean: float | None, std: float | None, n: int, metric: str) -> str:
    """``0.801 ± 0.003`` when there are several seeds, else just the value."""
    if mean is None:
        return "–"
    text = format_metric(mean, metric)
    if n > 1 and std is not None:
        text += f" ± {std:.3f}" if higher_is_better(metric) else f" ± {std:.2g}"
    return text


def format_seconds(seconds: float | None) -> str:
    """``0.24 s``, ``4.2 s``, ``41 s``, ``1,234 s``."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:,.0f} s"


def format_share(share: float | None) -> str:
    """A trainable share (0..1) as a percentage: ``0.9 %``, ``0.012 %``, ``100 %``."""
    if share is None:
        return "–"
    percent = 100.0 * share
    if percent >= 99.95:
        return "100 %"
    if percent >= 0.1:
        return f"{percent:.1f} %"
    return f"{percent:.2g} %"


def format_count(count: float | None) -> str:
    """``1,234,567``."""
    return "–" if count is None else f"{count:,.0f}"


def metric_label(metric: str) -> str:
    """How a metric is named in prose: ``f1_macro`` -> ``macro F1``."""
    return {"accuracy": "accuracy", "perplexity": "perplexity", "f1_macro": "macro F1"}.get(metric, metric)


# --------------------------------------------------------------------------------------------------
# Comparing


def is_better(a: float, b: float, metric: str) -> bool:
    """Whether metric value ``a`` is strictly better than ``b``."""
    return a > b + _EPS if higher_is_better(metric) else a < b - _EPS


def within_tolerance(value: float, best: float, metric: str, tolerance: float) -> bool:
    """Whether ``value`` is at most ``tolerance`` worse than ``best`` (absolute for accuracy-like
    metrics, relative for perplexity and loss)."""
    if higher_is_better(metric):
        return value >= best - tolerance - _EPS
    return value <= best * (1.0 + tolerance) + _EPS


def format_tolerance(tolerance: float, metric: str) -> str:
    """``1.0 point`` (accuracy-like, absolute) or ``2.0 %`` (perplexity, relative)."""
    if higher_is_better(metric):
        return f"{100 * tolerance:.1f} point{'s' if abs(100 * tolerance - 1) > 1e-9 else ''}"
    return f"{100 * tolerance:.1f} %"


def describe_gap(value: float, reference: float, metric: str) -> str:
    """``0.4 points below`` / ``2.1 % higher`` / ``equal to``: how ``value`` compares with ``reference``."""
    if higher_is_better(metric):
        points = 100.0 * (value - reference)
        if abs(points) < 0.05:
            return "level with"
        return f"{abs(points):.1f} points {'above' if points > 0 else 'below'}"
    if reference == 0:
        return "compared with"
    percent = 100.0 * (value - reference) / reference
    if abs(percent) < 0.05:
        return "level with"
    return f"{abs(percent):.1f} % {'higher than' if percent > 0 else 'lower than'}"


def describe_speed(time_s: float | None, reference_s: float | None) -> str | None:
    """``2.3× faster (41 s vs 95 s)``, ``about as fast (40 s vs 41 s)`` or None when unknown."""
    if not time_s or not reference_s:
        return None
    pair = f"({format_seconds(time_s)} vs {format_seconds(reference_s)})"
    if time_s * 1.05 < reference_s:
        return f"{reference_s / time_s:.1f}× faster {pair}"
    if time_s > reference_s * 1.05:
        return f"{time_s / reference_s:.1f}× slower {pair}"
    return f"about as fast {pair}"


def describe_memory(mb: float | None, reference_mb: float | None) -> str | None:
    """``38 % less peak memory (812 MiB vs 1,300 MiB)``, ``1.6× more peak memory (...)`` or None when unknown or about
    equal."""
    if not mb or not reference_mb:
        return None
    pair = f"({format_mb(mb)} vs {format_mb(reference_mb)})"
    if mb * 1.05 < reference_mb:
        return f"{100 * (1 - mb / reference_mb):.0f} % less peak memory {pair}"
    if mb > reference_mb * 1.05:
        return f"{mb / reference_mb:.1f}× more peak memory {pair}"
    return None


def _cost_key(summary: StrategySummary) -> tuple[float, float, float]:
    def known(value: float | None) -> float:
        return math.inf if value is None else value

    return (known(summary.train_time_s), known(summary.peak_memory_mb), known(summary.trainable_share))


def _best(summaries: list[StrategySummary], metric: str) -> StrategySummary:
    """Best validation metric (mean over seeds); a tie goes to the cheaper strategy."""
    sign = -1.0 if higher_is_better(metric) else 1.0
    return min(summaries, key=lambda s: (sign * s.val_mean, _cost_key(s)))


def data_regime(summary_or_results: StrategySummary | list[dict]) -> dict[str, Any]:
    """``{"n_train", "n_labels", "per_class", "data_fraction", "class_counts"}`` from ``meta_info`` (None where
    unknown).

    ``per_class`` is the average number of training examples per class (``n_train / n_labels``); ``class_counts``
    the training examples of each class, when the runs recorded them.
    """
    if isinstance(summary_or_results, list):
        summaries = summarize_strategies(summary_or_results)
        summary = next((s for s in summaries if s.ok), summaries[0] if summaries else None)
        if summary is None:
            return {"n_train": None, "n_labels": None, "per_class": None, "data_fraction": None, "class_counts": None}
    else:
        summary = summary_or_results
    n_train, n_labels = summary.n_train, summary.n_labels
    per_class = n_train / n_labels if n_train is not None and n_labels else None
    counts = summary.meta("class_counts")
    return {"n_train": n_train, "n_labels": n_labels, "per_class": per_class, "data_fraction": summary.data_fraction,
            "class_counts": dict(counts) if isinstance(counts, Mapping) and counts else None}


#: A class with less than this share of its even share (``1 / n_classes``) of the training examples makes the
#: classes imbalanced (a 2-class set at 80 / 20, a 5-class set with a class under 10 %).
IMBALANCED_BELOW = 0.5


def imbalance(regime: dict[str, Any]) -> str | None:
    """``"neg 850 (85 %), pos 150 (15 %)"`` when the training classes are imbalanced (:data:`IMBALANCED_BELOW`),
    else None (or when the counts were not recorded)."""
    counts = regime.get("class_counts") or {}
    total = sum(counts.values())
    if len(counts) < 2 or not total or min(counts.values()) / total >= IMBALANCED_BELOW / len(counts):
        return None
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    share = lambda name, n: f"{name} {n:,} ({100 * n / total:.0f} %)"  # noqa: E731
    if len(ranked) <= 4:
        return ", ".join(share(*kv) for kv in ranked)
    return f"largest {share(*ranked[0])}, smallest {share(*ranked[-1])}"


def describe_data_regime(regime: dict[str, Any], task: str) -> str:
    """``800 training examples, 2 classes, about 400 per class (data fraction 1.0)``; for imbalanced classes
    (:func:`imbalance`) the range and the median instead of a mean that no class is near:
    ``1,412 training examples, 21 classes, 1 to 733 per class (median 23)``."""
    if regime.get("n_train") is None:
        return "training-set size not recorded"
    unit = "examples" if task == "classification" else "texts"
    text = f"{regime['n_train']:,} training {unit}"
    counts = sorted((regime.get("class_counts") or {}).values())
    if regime.get("n_labels") and counts and imbalance(regime):
        text += (f", {regime['n_labels']} classes, {counts[0]:,} to {counts[-1]:,} per class "
                 f"(median {statistics.median(counts):,.0f})")
    elif regime.get("n_labels"):
        text += f", {regime['n_labels']} classes, about {regime['per_class']:,.0f} per class"
    fraction = regime.get("data_fraction")
    if fraction is not None and not math.isclose(fraction, 1.0):
        text += f" (data fraction {fraction:g})"
    return text


def _short(text: str, limit: int = 240) -> str:
    """``text`` on one line, its middle left out past ``limit`` characters: an error's end (a resume command, a log's
    path) is what a user acts on, so it is kept whole.

    >>> cut = _short("x" * 300 + " Resume with: tunelab train --config r.yaml --resume")
    >>> len(cut) <= 240, " … " in cut, cut.endswith("Resume with: tunelab train --config r.yaml --resume")
    (True, True, True)
    >>> _short("ia3 cannot apply: " + "no dense projection " * 20 + "(a router)", 80)
    'ia3 cannot apply: no dense projection no dense … projection (a router)'
    """
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    tail = limit // 3
    head, end = text[: limit - tail - 3], text[-tail:]
    # cut between words where there are words to cut between (not "(a … rameters")
    head = head.rsplit(" ", 1)[0] if " " in head[len(head) // 2 :] else head
    end = end.split(" ", 1)[1] if " " in end[: len(end) // 2] else end
    return f"{head} … {end}"


# --------------------------------------------------------------------------------------------------
# The recommendation

#: The split strategies are chosen on, and the one their result is reported on.
SELECTION_SPLIT, REPORT_SPLIT = "validation", "test"


@dataclass
class _Ask:
    """What the recommendation was asked: the task, the metric, the level and the tolerance."""

    task: str
    metric: str
    alpha: float
    tolerance: float | None
    stopped: tuple[str, ...] = ()  # stopped early by a planned comparison's rounds
    rounds: bool = False  # the data fractions are a planned comparison's rounds, not a learning curve asked for

    @property
    def level(self) -> float:
        return 1.0 - self.alpha

    @property
    def label(self) -> str:
        return metric_label(self.metric)


def recommend_from_results(
    results: list[dict],
    *,
    max_train_minutes: float | None = None,
    memory_gb: float | None = None,
    tolerance: float | None = None,
    metric: str | None = None,
    alpha: float = 0.05,
    max_forgetting: float | None = None,
    budget_minutes: float | None = None,
    stopped: Sequence[str] = (),
    rounds: bool = False,
) -> dict[str, Any]:
    """Recommend a strategy from run records: select on validation, report on test.

    Runs are grouped by strategy at the largest data fraction. Strategies over ``max_train_minutes``
    (mean ``train_time_s``; ``budget_minutes`` is its older name, still accepted), ``memory_gb`` (GiB, mean ``peak_memory_mb``) or ``max_forgetting`` (mean
    ``train_info.forgetting.value``, in the unit the runs measured) are set aside. The best is the
    one with the best validation ``metric`` (mean over seeds; default: the task's,
    :func:`tunelab.metrics.primary_metric`); every other one is compared with it, paired on the same
    validation examples (:mod:`tunelab.advice.verdict`). The cheapest (training time, then peak memory,
    then trainable share) among those not distinguishable from the best at level ``alpha``, or shown to
    be within ``tolerance`` of it (absolute for accuracy / F1: 0.01 = one point; relative for perplexity;
    default: none), is chosen. The test split is not used for the choice; its number is reported. ``stopped``:
    the strategies a planned comparison stopped before its final round (the reasons say so).

    Returns ``{"strategy", "reasons", "ranking", "metric", "tolerance", "data_regime"}`` plus
    ``alpha``, ``selection_split`` / ``report_split`` (which split each number comes from),
    ``evidence`` (``examples``, ``seeds`` or ``none``), ``comparison_test``, ``contenders``,
    ``cannot_separate`` (the strategies the data could not tell apart, when the cheapest of them was
    chosen for that), ``examples_to_separate`` (then: about how many validation examples would show the chosen
    one's measured gap to the best at 80 % power; None when it is the best or these examples would), ``validation`` / ``test`` (the chosen one's intervals) and ``learning_curves``.
    ``ranking`` lists every strategy, best validation metric first (failed ones last): ``strategy``,
    ``metric``, ``split`` and ``mean``, ``std``, ``n`` (validation, over seeds), ``validation`` and
    ``test`` (estimate and interval, each saying its split), ``versus_best`` (the comparison),
    ``fits``, ``why_not`` (None for the chosen one), ``train_time_s``, ``peak_memory_mb``, ``trainable_share``.

    >>> recommend_from_results([])["strategy"] is None
    True
    """
    if max_train_minutes is None:
        max_train_minutes = budget_minutes
    ask = _ask(results, metric, alpha, tolerance, stopped, rounds)
    summaries = summarize_strategies(results, metric=ask.metric)
    out = _empty_recommendation(ask)
    if not summaries:
        # A planned comparison whose strategies all stopped before the final round did produce runs (its screening
        # runs, in the results table): its stops say why nothing is chosen (runner.stopped_early_reasons).
        out["reasons"] = [] if ask.stopped else ["No runs to choose from: the comparison produced no results."]
        return out
    ok = [s for s in summaries if s.ok]
    out["data_regime"] = regime = data_regime(next(iter(ok), summaries[0]))
    violations = _budget_violations(ok, max_train_minutes, memory_gb, max_forgetting)
    fits = [s for s in ok if not violations[s.strategy]]
    comparison = (
        compare_with_best(sorted(fits, key=_cost_key), ask.metric, alpha=ask.alpha, tolerance=ask.tolerance)
        if fits else None
    )
    chosen = min((s for s in fits if comparison.versus[s.strategy].kept), key=_cost_key) if comparison else None
    intervals = {s.strategy: _intervals(s, ask, comparison) for s in ok}
    if chosen is None:
        reasons = _no_choice_reasons(summaries, ok, max_train_minutes, memory_gb, max_forgetting)
    else:
        facts = _chosen_facts(chosen, comparison, intervals)
        out.update(facts)
        reasons = _choice_reasons(chosen, fits, comparison, intervals, ask, facts, len(ok), len(summaries))
    if comparison is not None and comparison.chance is not None:
        out["chance"] = {"split": comparison.split, "value": comparison.chance, "learned": comparison.learned,
                         "reference": comparison.reference}
        if comparison.reference_gaps:  # each strategy against the model as loaded, paired on the same texts
            out["chance"]["paired_gaps"] = {name: interval_dict(gap, comparison.split)
                                            for name, gap in comparison.reference_gaps.items()}
        if not comparison.learned:
            reasons.insert(1 if reasons else 0, _nothing_learned_reason(comparison, ask))
    curves = learning_curves_from_results(results, ask.metric, level=ask.level)
    out["learning_curves"] = curves.to_dict() if curves is not None else None
    reasons.extend(_context_reasons(results, summaries, violations, regime, curves, chosen and chosen.strategy, ask))
    out["reasons"] = reasons
    out["ranking"] = _ranking(ok, summaries, violations, comparison, chosen, intervals, ask)
    return out


def level_problems(alpha: float, tolerance: float | None) -> list[str]:
    """``--alpha`` outside (0, 1) and a ``--tolerance`` below 0 (``compare`` and ``recommend`` alike)."""
    problems = []
    if not 0.0 < alpha < 1.0:
        problems.append(out_of_range(setting("alpha"), "between 0 and 1", alpha, "0.1", "its default, 0.05 (95 % intervals)"))
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        problems.append(out_of_range(setting("tolerance"), "a number >= 0", tolerance, "0.01 (one point of accuracy)",
                                     "none (only what the test cannot tell apart)"))
    return problems


def _ask(results: list[dict], metric: str | None, alpha: float, tolerance: float | None,
         stopped: Sequence[str] = (), rounds: bool = False) -> _Ask:
    """The request, checked: a metric of the task, a level in (0, 1), a tolerance >= 0."""
    task = results_task(results)
    metric = metric or primary_metric(task)
    problems = [metric_problem(metric, task), *level_problems(alpha, tolerance)]
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError(problems)
    return _Ask(task, metric, alpha, tolerance, tuple(stopped), rounds)


def _empty_recommendation(ask: _Ask) -> dict[str, Any]:
    return {
        "strategy": None, "reasons": [], "ranking": [], "metric": ask.metric, "tolerance": ask.tolerance,
        "alpha": ask.alpha, "data_regime": None, "selection_split": SELECTION_SPLIT, "report_split": REPORT_SPLIT,
        "evidence": None, "comparison_test": None, "contenders": [], "cannot_separate": [], "examples_to_separate": None,
        "validation": None, "test": None, "learning_curves": None, "chance": None,
    }  # fmt: skip


def _intervals(summary: StrategySummary, ask: _Ask, comparison: Comparison | None = None) -> dict[str, Interval | None]:
    """The strategy's validation and test metric with their intervals (see :func:`metric_interval`); the validation
    one is the comparison's own where its chance check already computed it (the same bootstrap, at the same level)."""
    known = comparison.intervals.get(summary.strategy) if comparison and comparison.split == SELECTION_SPLIT else None
    return {split: known if split == SELECTION_SPLIT and known is not None
            else metric_interval(summary, split, ask.metric, level=ask.level) for split in (SELECTION_SPLIT, REPORT_SPLIT)}


def _budget_violations(ok: list[StrategySummary], max_train_minutes: float | None,
                       memory_gb: float | None, max_forgetting: float | None = None) -> dict[str, list[str]]:
    """Why each successful strategy does not fit the training-time, memory or forgetting limit (empty when it fits)."""
    from tunelab.run.forgetting import BIASED, DRIFT_UNITS, unit_of

    violations: dict[str, list[str]] = {s.strategy: [] for s in ok}
    for s in ok:
        if max_train_minutes is not None and s.train_time_s is not None and s.train_time_s > 60.0 * max_train_minutes:
            violations[s.strategy].append(
                f"training took {format_seconds(s.train_time_s)}, over the {max_train_minutes:g}-minute training-time limit"
            )
        if memory_gb is not None and s.peak_memory_mb is not None and s.peak_memory_mb > 1024.0 * memory_gb:
            violations[s.strategy].append(f"peak memory {format_mb(s.peak_memory_mb)}, over the {memory_gb:g} GiB limit")
        biased = max_forgetting is not None and any(
            unit_of(r.train_info.forgetting or {}) == DRIFT_UNITS[BIASED] for r in s.runs if r.run_info.status == "success")
        if biased:  # read on another scale than the limit's (unrelated texts far below 1): neither within it nor over
            violations[s.strategy].append(
                f"forgetting measured with the biased CKA estimator (a record written before tunelab debiased it), not "
                f"comparable with the --max-forgetting limit of {max_forgetting:g}: run it again to measure it debiased")
        elif max_forgetting is not None and s.forgetting is not None and s.forgetting > max_forgetting:
            unit = s.forgetting_unit or "drift"
            amount = f"{s.forgetting:.3g} {unit}" if unit == "nats/token" else f"{s.forgetting:.3g} ({unit})"
            violations[s.strategy].append(f"forgetting {amount}, over the --max-forgetting limit of {max_forgetting:g}")
        elif max_forgetting is not None and s.forgetting is None:  # its measurement failed: not shown within the limit
            error = next((f["error"] for r in s.runs if isinstance(f := r.train_info.forgetting, dict) and f.get("error")),
                         None)
            violations[s.strategy].append(
                f"forgetting not measured{f' ({error})' if error else ''}, so not shown within the --max-forgetting limit of "
                f"{max_forgetting:g}")
    return violations


def _no_choice_reasons(summaries: list[StrategySummary], ok: list[StrategySummary], max_train_minutes: float | None,
                       memory_gb: float | None, max_forgetting: float | None = None) -> list[str]:
    if not ok:
        return [
            f"No strategy finished successfully at data fraction {summaries[0].data_fraction:g}, "
            "so there is nothing to recommend; the errors are below."
        ]
    limits = []
    if max_train_minutes is not None:
        limits.append(f"the {max_train_minutes:g}-minute training-time limit")
    if memory_gb is not None:
        limits.append(f"the {memory_gb:g} GiB memory limit")
    if max_forgetting is not None:
        limits.append(f"the forgetting limit of {max_forgetting:g}")
    cheapest = min(ok, key=_cost_key)
    return [
        f"No successful strategy fits {' and '.join(limits)}: the cheapest, {cheapest.strategy}, "
        f"trained in {format_seconds(cheapest.train_time_s)} with {format_mb(cheapest.peak_memory_mb)} peak memory. "
        "Raise the limit, or use a smaller model or less data."
    ]


def _chosen_facts(chosen: StrategySummary, comparison: Comparison, intervals: dict) -> dict[str, Any]:
    """The recommendation's keys about the choice: which strategy, on what evidence, and its numbers."""
    separate = [n for n in comparison.contenders if comparison.versus[n].reason in ("best", "not_distinguishable")]
    cannot_separate = separate if len(separate) > 1 and chosen.strategy in separate else []
    return {
        "strategy": chosen.strategy,
        "evidence": comparison.evidence,
        "comparison_test": comparison.test,
        "contenders": comparison.contenders,
        "cannot_separate": cannot_separate,
        "examples_to_separate": _examples_needed(chosen, comparison) if cannot_separate else None,
        "validation": interval_dict(intervals[chosen.strategy][SELECTION_SPLIT], SELECTION_SPLIT),
        "test": interval_dict(intervals[chosen.strategy][REPORT_SPLIT], REPORT_SPLIT),
    }


def _value_text(summary: StrategySummary, interval: Interval | None, split: str, ask: _Ask) -> str:
    """``0.801 [0.775, 0.826]`` (with its interval when there is one) or ``0.801`` (one seed, nothing saved)."""
    if interval is not None:
        return format_interval(interval, ask.metric)
    value = summary.val_mean if split == SELECTION_SPLIT else summary.test_mean
    return format_metric_pm(value, summary.val_std if split == SELECTION_SPLIT else summary.test_std, summary.n, ask.metric)


def _choice_reasons(chosen: StrategySummary, fits: list[StrategySummary], comparison: Comparison,
                    intervals: dict, ask: _Ask, facts: dict[str, Any], n_ok: int, n_all: int | None = None) -> list[str]:
    """The first reasons: what was chosen, on which evidence (``facts``: :func:`_chosen_facts`), what it reached on
    test."""
    by_name = {s.strategy: s for s in fits}
    best = by_name[comparison.best]
    value = _value_text(chosen, intervals[chosen.strategy][SELECTION_SPLIT], SELECTION_SPLIT, ask)
    seeds = f" over {chosen.n} seeds" if chosen.n > 1 else ""
    share = f" with {format_share(chosen.trainable_share)} of the weights trainable" if chosen.trainable_share is not None else ""
    if len(fits) == 1:
        trained = f", trained in {format_seconds(chosen.train_time_s)}" if chosen.train_time_s is not None else ""
        alone = ("reached the final round (the others were stopped early by the rounds: see below)" if ask.stopped else
                 "was compared" if n_all == 1 else
                 "succeeded" if n_ok == 1 else "succeeded within the limits")
        reasons = [
            f"{chosen.strategy} is the only strategy that {alone}, "
            f"so there was nothing to compare it with: {value} validation {ask.label}{seeds}{trained}{share}."
        ]
        if ask.stopped:  # the rounds' cuts decided (each stop says on what), not a paired comparison of every seed
            reasons.append("This choice rests on the rounds' cuts (each stop below says on what), not on a paired "
                           "comparison of every strategy with every seed at the full data: where a stop below says a "
                           "strategy was not shown to be worse, --exhaustive (or --halving 1) compares it to the end.")
    elif chosen is best:
        reasons = [_best_chosen_reason(chosen, fits, comparison, value + seeds, share, ask)]
    else:
        v = comparison.versus[chosen.strategy]
        costs = _costs(chosen, best)
        reasons = [
            f"{chosen.strategy} reached {value} validation {ask.label}{seeds}, "
            f"{describe_gap(chosen.val_mean, best.val_mean, ask.metric)} {best.strategy} ({format_metric(best.val_mean, ask.metric)}), "
            f"{_kept_because(v, comparison, ask)}" + (f", training {costs}" if costs else "") + f"{share}."
        ]
    if facts["cannot_separate"]:
        reasons.append(_cannot_separate_reason(facts["cannot_separate"], chosen, comparison, ask,
                                               facts["examples_to_separate"]))
    passed = [s.strategy for s in fits if comparison.versus[s.strategy].reason == "at_chance" and _cost_key(s) < _cost_key(chosen)]
    if passed:
        reasons.append(_at_chance_reason(passed, chosen, comparison, ask))
    if len(fits) > 1:
        reasons.append(_method_reason(comparison, ask))
    test = intervals[chosen.strategy][REPORT_SPLIT]
    if test is not None or chosen.test_mean is not None:
        # where validation showed no learning, its own warning says so already
        at_chance = (_test_at_chance(chosen, test, intervals[chosen.strategy][SELECTION_SPLIT], ask)
                     if comparison.learned is not False else "")
        reasons.append(
            f"On the test split, held out from the choice, {chosen.strategy} reached "
            f"{_value_text(chosen, test, REPORT_SPLIT, ask)} {ask.label}{at_chance or '.'}"
        )
    reasons.extend(_other_mentions(chosen, best, fits, ask))
    return reasons


def _best_chosen_reason(chosen: StrategySummary, fits: list[StrategySummary], comparison: Comparison,
                        value: str, share: str, ask: _Ask) -> str:
    runner_up = _best([s for s in fits if s is not chosen], ask.metric)
    v = comparison.versus[runner_up.strategy]
    text = (
        f"{chosen.strategy} reached the best validation {ask.label}, {value}{',' if share else ''}{share}; the runner-up, "
        f"{runner_up.strategy} ({format_metric(runner_up.val_mean, ask.metric)}), is "
        f"{describe_gap(runner_up.val_mean, chosen.val_mean, ask.metric)} it"
    )
    if v.kept:
        costs = _costs(chosen, runner_up)
        return text + f", {_kept_because(v, comparison, ask)}, but " + (
            f"{chosen.strategy} is also cheaper, training {costs}." if costs else f"{chosen.strategy} is cheaper."
        )
    if v.reason == "untested":
        return text + f"{_beyond(ask)}; {_untested_note(comparison)}."
    if v.reason == "at_chance":
        return text + f", and not shown to do better than {_chance_text(comparison, ask)}."
    speed = describe_speed(runner_up.train_time_s, chosen.train_time_s)
    text += f", worse at the {_pct(ask.alpha)} level ({_gap_text(v, ask.metric)}, {p_text(v.p_value)})"
    return text + (f", although it trains {speed}." if speed and "faster" in speed else ".")


def _kept_because(v: Versus, comparison: Comparison, ask: _Ask) -> str:
    """Why a strategy stays a contender beside the best, in words."""
    if v.reason == "within_tolerance":
        if v.gap_upper is None:
            return f"within the {format_tolerance(ask.tolerance, ask.metric)} tolerance (point estimates: {_untested_note(comparison)})"
        return (f"within the {format_tolerance(ask.tolerance, ask.metric)} tolerance (the one-sided "
                f"{_pct(1 - ask.alpha)} bound of its gap is {_gap_amount(v.gap_upper, ask.metric)})")
    text = f"not distinguishable from it at the {_pct(ask.alpha)} level ({_gap_text(v, ask.metric)}, {p_text(v.p_value)}"
    text += f"{_disagreement(v, comparison, ask)})"
    if ask.tolerance is not None and v.point_gap > ask.tolerance:
        # the user's stated gap is smaller than this one: kept for want of evidence, not for being within it
        text += (f"; its estimate is {_gap_amount(v.point_gap, ask.metric)} behind, more than the "
                 f"{format_tolerance(ask.tolerance, ask.metric)} tolerance: these {comparison.unit}s cannot show the "
                 f"gap, more validation {comparison.unit}s would decide")
    return text


def _disagreement(v: Versus, comparison: Comparison, ask: _Ask) -> str:
    """Why a kept strategy's interval can exclude zero: the interval is unadjusted, the decision is not."""
    if not v.interval_disagrees:
        return ""
    floor = sign_flip_floor(comparison.n_examples)
    if v.p_raw is not None and floor >= ask.alpha and v.p_raw <= floor * (1 + 1e-9) and "McNemar" not in comparison.test:
        # on a handful of examples the test cannot reach the level at all: the interval alone looked decided
        return (f"; on {comparison.units()} no paired test can give p below {floor:.3g} (2^(1−n), every difference on "
                "one side), so the gap cannot be shown whatever its size; the bootstrap interval, shown for the size of "
                "the gap, is as unsure as its few examples")
    if v.p_raw is not None and v.p_raw < ask.alpha and v.p_value is not None and v.p_value >= ask.alpha:
        k = len(comparison.versus)
        return (f"; {p_text(v.p_raw, 'unadjusted p')}, but adjusted (Holm) over the {k * (k - 1) // 2} pairs of the {k} "
                "strategies, as the best is picked on these same examples, the difference is not shown; the interval "
                "is unadjusted")
    return (f"; {comparison.test.split(',')[0]} decides, and the bootstrap interval, shown for the size of the "
            "gap, is narrower than that test on these examples")


def _examples_needed(chosen: StrategySummary, comparison: Comparison) -> int | None:
    """About how many validation examples would separate the chosen strategy from the best at its measured gap
    (:func:`tunelab.advice.verdict.examples_to_separate`); None when it is the best, or the examples already would."""
    v = comparison.versus.get(chosen.strategy)
    if v is None or v.reason == "best":
        return None
    needed = examples_to_separate(v, comparison.n_examples, comparison.alpha)
    return needed if needed is not None and needed > (comparison.n_examples or 0) else None


def _cannot_separate_reason(names: list[str], chosen: StrategySummary, comparison: Comparison, ask: _Ask,
                            needed: int | None) -> str:
    """Why the cheapest of ``names`` was chosen, and (``needed``: :func:`_examples_needed`) how many validation
    examples would separate it from the best."""
    if comparison.n_examples:
        seeds = "one seed each" if comparison.n_seeds == 1 else f"{comparison.n_seeds} seeds"
        where = f"{comparison.units()}, {seeds}"
    else:
        where = f"{comparison.n_seeds} seeds each, no per-example outputs"
    text = (
        f"The data cannot separate {and_list(names)} ({where}): none is shown to differ from the best at the "
        f"{_pct(ask.alpha)} level, so the cheapest of them, {chosen.strategy}, is chosen. More validation "
        f"{comparison.unit}s or seeds would be needed to tell them apart"
    )
    v = comparison.versus.get(chosen.strategy)
    if needed is None and v is not None and seeds_hide_gap(v, comparison.alpha):
        return text.replace(f"More validation {comparison.unit}s or seeds would", "More seeds would") + (
            f": the spread between the seeds of {chosen.strategy} and {comparison.best} alone is too wide to show "
            f"the gap between them ({_gap_amount(v.point_gap, ask.metric)}), however many validation {comparison.unit}s.")
    if needed is None:
        return text + "."
    v = comparison.versus[chosen.strategy]
    return text + (
        f": about {comparison.units(needed)} ({needed / comparison.n_examples:.1f}× these, at the same seeds) "
        f"would show a gap the size of {chosen.strategy}'s to {comparison.best} ({_gap_amount(v.point_gap, ask.metric)}) "
        f"{_pct(POWER)} of the time, by the same test. Until then, read the choice as the cheapest strategy "
        "the evidence allows, not as a finding that it is as good."
    )


def _chance_text(comparison: Comparison, ask: _Ask) -> str:
    if comparison.reference == AS_LOADED_MODEL:
        return (f"the model as loaded, before any adaptation, which scores {format_metric(comparison.chance, ask.metric)} "
                f"validation {ask.label} on the same {comparison.n_examples:,} {comparison.unit}s")
    return (f"always predicting the most frequent class, which scores {format_metric(comparison.chance, ask.metric)} "
            f"validation {ask.label} on the same {comparison.n_examples:,} {comparison.unit}s")


def _test_at_chance(chosen: StrategySummary, test: Interval | None, validation: Interval | None, ask: _Ask) -> str:
    """The end of the test reason when the chosen strategy's test interval reaches what always predicting the test
    split's most frequent class scores (:func:`chance_level` on its saved test labels, as the validation check does):
    the choice stays on validation, but the held-out split does not show that it learned. "" otherwise."""
    examples = example_results(chosen, REPORT_SPLIT) if test is not None else None
    chance = chance_level(examples.y_true if examples is not None else None, ask.metric)
    if chance is None or clear_of_chance(test.low, test.high, chance, ask.metric):
        return ""
    val = f" (its validation {ask.label}: {format_interval(validation, ask.metric)})" if validation is not None else ""
    return (f", a {_pct(test.level)} interval that reaches {format_metric(chance, ask.metric)}, the test {ask.label} of "
            f"always predicting the most frequent class on the same {examples.n_examples:,} test examples: the held-out "
            f"split does not show that {chosen.strategy} learned the task{val}. The choice stays on validation; more "
            "test examples, or seeds, would tell whether it holds.")


def _at_chance_reason(names: list[str], chosen: StrategySummary, comparison: Comparison, ask: _Ask) -> str:
    """Why cheaper strategies that the test could not tell from the best were passed over: not shown to learn."""
    one = len(names) == 1
    its = "its" if one else "their"
    if comparison.reference_gaps:  # a model on the same texts: compared pair by pair
        spans = ", ".join(f"{name} {format_difference(comparison.reference_gaps[name], ask.metric)}" for name in names)
        why = (f"{its} paired differences with it, text by text ({spans}, {_pct(1 - ask.alpha)} intervals), reach no "
               "change, while the best's is clear of it")
    else:
        spans = ", ".join(f"{name} {format_interval(comparison.intervals[name], ask.metric)}" for name in names)
        why = (f"{its} {_pct(1 - ask.alpha)} interval{'' if one else 's'} ({spans}) reach{'es' if one else ''} that "
               "score, while the best's is clear of it")
    return (f"{and_list(names)} {'is' if one else 'are'} cheaper and not shown to be worse than the best, but not shown to "
            f"do better than {_chance_text(comparison, ask)}: {why}. A strategy not shown to learn the task is no "
            f"contender, so {chosen.strategy} is chosen.")


def _nothing_learned_reason(comparison: Comparison, ask: _Ask) -> str:
    """The warning when even the best is not shown to beat a constant predictor."""
    who = ("No strategy is" if len(comparison.versus) > 1 else f"{comparison.best} is not")
    if comparison.reference_gaps:
        which = (f"even the best, {comparison.best}, differs from it by" if len(comparison.versus) > 1 else
                 "it differs from it by")
        shown = (f"{format_difference(comparison.reference_gaps[comparison.best], ask.metric)} text by text "
                 f"({_pct(1 - ask.alpha)} paired interval), which reaches no change")
    else:
        which = (f"even the best, {comparison.best}, reached" if len(comparison.versus) > 1 else "it reached")
        shown = f"{format_interval(comparison.intervals[comparison.best], ask.metric)}, an interval that reaches that score"
    return (f"{who} shown to do better than {_chance_text(comparison, ask)}: {which} {shown}. "
            + ("No adaptation has been shown to help, and the ranking says nothing about the strategies: train longer "
               "(--epochs), try other learning rates (--tune-lr) or give more text; the model may already fit this "
               "text as well as this much of it can teach." if comparison.reference == AS_LOADED_MODEL else
               "This comparison has not measured learning, and its ranking says nothing about the strategies: train "
               "longer (--epochs), try other learning rates (--tune-lr), give more labelled examples, or check that "
               "the labels belong to the texts."))


def _method_reason(comparison: Comparison, ask: _Ask) -> str:
    """How the choice was made, on which split and which evidence."""
    tolerance = (f" or shown to be within {format_tolerance(ask.tolerance, ask.metric)} of it"
                 if ask.tolerance is not None else "")
    head = (f"Chosen on the validation split (mean over seeds), not on test: each strategy was compared with the best "
            f"({comparison.best}) ")
    if comparison.evidence == EXAMPLES:
        how = (f"paired on the same {comparison.units()} "
               f"({comparison.test}{'; ' + comparison.note if comparison.note else ''})")
    elif comparison.evidence == SEEDS:
        how = f"over seeds ({comparison.test}; {comparison.note}, so the comparison cannot be paired and is weaker)"
    else:
        how = f"by point estimates only ({_untested_note(comparison)})"
    return (f"{head}{how}; among the strategies not shown to be worse at the {_pct(ask.alpha)} level{tolerance}, "
            "the cheapest to train (time, then peak memory, then trainable share) is chosen.")


def _untested_note(comparison: Comparison) -> str:
    why = comparison.note or "no per-example outputs saved"
    return f"{why} and a single seed, so no interval or test is possible"


def _other_mentions(chosen: StrategySummary, best: StrategySummary, fits: list[StrategySummary], ask: _Ask) -> list[str]:
    """The cheapest strategy and full fine-tuning, when the reasons have not named them yet (validation)."""
    mentioned = {chosen.strategy, best.strategy}
    if len(fits) > 1:
        mentioned.add(_best([s for s in fits if s is not chosen], ask.metric).strategy)
    out = []
    cheapest = min(fits, key=_cost_key)
    if cheapest.strategy not in mentioned:
        mentioned.add(cheapest.strategy)
        out.append(
            f"{cheapest.strategy} is cheaper ({format_seconds(cheapest.train_time_s)}, {format_mb(cheapest.peak_memory_mb)}) "
            f"but reached {format_metric(cheapest.val_mean, ask.metric)} validation {ask.label}, "
            f"{describe_gap(cheapest.val_mean, best.val_mean, ask.metric)} the best."
        )
    full = next((s for s in fits if is_full_fine_tuning(s.strategy)), None)
    if full is not None and full.strategy not in mentioned:
        costs = _costs(chosen, full, using="uses")
        out.append(
            f"Full fine-tuning reached {format_metric(full.val_mean, ask.metric)} validation {ask.label}, "
            f"{describe_gap(full.val_mean, chosen.val_mean, ask.metric)} {chosen.strategy}"
            + (f"; {chosen.strategy} trains {costs}" if costs else "") + "."
        )
    return out


def _context_reasons(results: list[dict], summaries: list[StrategySummary], violations: dict[str, list[str]],
                     regime: dict[str, Any] | None, curves: LearningCurves | None, chosen: str | None,
                     ask: _Ask) -> list[str]:
    """The data regime, what more data would change, exclusions and failures."""
    reasons = [f"Data regime: {describe_data_regime(regime or {}, ask.task)}."]
    skew = imbalance(regime or {})
    if skew and ask.metric == "accuracy":
        reasons.append(f"The classes are imbalanced ({skew} of the training examples): accuracy counts every example "
                       "alike, so the majority class weighs most in it; --metric f1_macro ranks by the mean of the "
                       "per-class F1 scores instead.")
    reasons.extend(_rare_class_reasons(summaries, ask))
    reasons.extend(_packing_reasons(summaries))
    reasons.extend(_restated_reasons(summaries, ask))
    reasons.extend(_curve_reasons(results, curves, chosen, ask))
    for s in summaries:
        if s.ok and violations.get(s.strategy):
            reasons.append(f"{s.strategy} was excluded: {'; '.join(violations[s.strategy])}.")
        if s.ok and s.failed_runs:
            reasons.append(
                f"{s.strategy}: {len(s.failed_runs)} of {len(s.runs) + len(s.failed_runs)} runs failed "
                f"({_short(s.error or '')}); its numbers use the {s.n} that succeeded."
            )
    for s in summaries:
        if not s.ok:
            reasons.append(f"{s.strategy} failed: {_short(s.error or 'no error recorded')}.")
    return reasons


def _packing_reasons(summaries: list[StrategySummary]) -> list[str]:
    """Causal LM: where some strategies' runs scored each packed text alone (``train_info.document_mask``) and others
    let it read the texts packed before it (a soft prompt, which every text must see), their perplexities are not
    measured alike: a text read after others is easier to predict. On 64 maintenance notes the same LoRA run scored
    121.4 alone and 35.7 across texts, against prompt-tuning's 55.8 across texts, which the verdict had chosen."""
    masked: dict[bool, list[str]] = {}
    for s in summaries:
        flags = {run.get("train_info", {}).get("document_mask") for run in s.runs}
        if s.ok and len(flags) == 1 and None not in flags:
            masked.setdefault(flags.pop(), []).append(s.strategy)
    if len(masked) < 2:
        return []
    return [f"The perplexities were not measured alike: {and_list(masked[False])} let each text attend to the texts "
            f"packed before it in a block, {and_list(masked[True])} scored each text alone "
            f"({setting('document_mask', True)}); a text read after others is easier to predict, so the gap between "
            f"the two is partly how they were measured, not what they learnt: compare again with {setting('document_mask', False)} to score every strategy across texts."]


def _restated_reasons(summaries: list[StrategySummary], ask: _Ask) -> list[str]:
    """Which runs' ``metrics.json`` recorded another ``ask.metric`` than their saved outputs give today
    (:func:`~tunelab.advice.verdict.restated`: runs recorded before a definition changed, reused): every number of the
    comparison is the recomputed one, and this says why it is not the one the run printed."""
    found = [r for s in summaries for run in s.runs for r in restated(run, ask.metric)]
    if not found:
        return []
    changes = "; ".join(f"{r.run_id} {r.split} {format_metric(r.recorded, ask.metric)} -> "
                        f"{format_metric(r.value, ask.metric)}" for r in found[:6])
    more = f"; and {len(found) - 6} more" if len(found) > 6 else ""
    return [f"Recomputed from the runs' saved outputs: {len(found)} {ask.label} value(s) recorded in metrics.json "
            f"differ from today's definition ({changes}{more}); every number here, the intervals' and the choice's, "
            "is the recomputed one (those runs were recorded before the definition changed)."]


#: Fewer validation examples of a class than this make its F1, and so macro-F1, turn on single predictions (as the
#: rule of thumb of at least five expected counts per cell for a chi-squared test).
FEW_PER_CLASS = 5


def _rare_class_reasons(summaries: list[StrategySummary], ask: _Ask) -> list[str]:
    """Under macro-F1, the classes it averages over on validation (its classes with an example there,
    :func:`tunelab.metrics.macro_classes`) where they are fewer than the task's, and those with fewer than
    :data:`FEW_PER_CLASS` validation examples: each class weighs ``1/K`` of the score whatever its size, so one
    prediction of a rare one moves the verdict's metric by points."""
    if ask.metric != "f1_macro":
        return []
    for s in summaries:
        found = example_results(s, SELECTION_SPLIT) if s.ok else None
        names = s.meta("label_names")
        if found is None or found.y_true is None or not isinstance(names, list | tuple) or not names:
            continue
        values, counts = np.unique(found.y_true, return_counts=True)
        present = dict(zip(values.tolist(), counts.tolist(), strict=True))
        per_class = {str(names[v]) if isinstance(v, int) and 0 <= v < len(names) else str(v): present.get(v, 0)
                     for v in (range(len(names)) if all(isinstance(v, int) for v in present) else present)}
        absent = [c for c, n in per_class.items() if n == 0]
        k = len(per_class) - len(absent)
        rare = sorted((n, c) for c, n in per_class.items() if 0 < n < FEW_PER_CLASS)
        out = []
        if absent:
            out.append(f"The validation split has no example of {some_of(absent)}: its macro F1 averages over the "
                       f"{k} of {len(per_class)} classes it holds, alike for every strategy (a prediction of "
                       f"{'that class' if len(absent) == 1 else 'those classes'} there counts only as a miss of the "
                       "true one).")
        if rare:
            n, fewest = rare[0]
            # F1 = 2·TP / (2·TP + FP + FN): the first hit of a class of n, with no false positive, takes it from 0
            # to 2 / (n + 1), its largest step (a recall of 1/n is less than that), a 1/k share of the macro
            gain = 2.0 / (n + 1)
            swing = 100.0 * gain / k
            shown = ", ".join(f"{c} ({m})" for m, c in rare[:4]) + (f" and {len(rare) - 4} more" if len(rare) > 4 else "")
            out.append(f"Macro F1 gives each of the {k} classes{' with validation examples' if absent else ''} the "
                       f"same weight, and {len(rare)} {'has' if len(rare) == 1 else 'have'} fewer than {FEW_PER_CLASS} "
                       f"validation examples: {shown}. One prediction of {fewest} moves its F1 by up to {gain:.2f} "
                       f"(its first hit), the validation macro F1 by about {swing:.0f} points, so the ranking can turn "
                       "on a handful of examples (the intervals above include this); more validation examples of these classes would steady it.")
        return out
    return []


def _ranking(ok: list[StrategySummary], summaries: list[StrategySummary], violations: dict[str, list[str]],
             comparison: Comparison | None, chosen: StrategySummary | None, intervals: dict, ask: _Ask) -> list[dict]:
    """Every strategy, best validation metric first (failed ones last), with its numbers and why it was not chosen."""
    sign = -1.0 if higher_is_better(ask.metric) else 1.0
    failed = [s for s in summaries if not s.ok]
    rows = []
    for s in sorted(ok, key=lambda s: (sign * s.val_mean, _cost_key(s))) + failed:
        v = comparison.versus.get(s.strategy) if comparison and s.ok else None
        spans = intervals.get(s.strategy, {})
        rows.append({
            "strategy": s.strategy, "metric": ask.metric, "split": SELECTION_SPLIT,
            "mean": s.val_mean, "std": s.val_std, "n": s.n,
            "validation": interval_dict(spans.get(SELECTION_SPLIT), SELECTION_SPLIT),
            "test": interval_dict(spans.get(REPORT_SPLIT), REPORT_SPLIT),
            "test_mean": s.test_mean, "test_std": s.test_std,
            "versus_best": versus_dict(v, comparison) if comparison else None,
            "fits": s.ok and not violations.get(s.strategy),
            "why_not": _why_not(s, v, violations, comparison, chosen, ask),
            "train_time_s": s.train_time_s, "peak_memory_mb": s.peak_memory_mb, "trainable_share": s.trainable_share,
        })  # fmt: skip
    return rows


def _why_not(s: StrategySummary, v: Versus | None, violations: dict[str, list[str]], comparison: Comparison | None,
             chosen: StrategySummary | None, ask: _Ask) -> str | None:
    if not s.ok:
        return f"failed: {_short(s.error or 'no error recorded')}"
    if violations.get(s.strategy):
        return "; ".join(violations[s.strategy])
    if chosen is None or s is chosen or v is None or comparison is None:
        return None
    cheaper = f"{chosen.strategy} is cheaper" + (
        f" ({format_seconds(chosen.train_time_s)} vs {format_seconds(s.train_time_s)})" if chosen.train_time_s else ""
    )
    if v.reason == "best":
        return f"best on validation, but {cheaper} and not distinguishable from it"
    if v.kept:
        return f"{_kept_because(v, comparison, ask)}, but {cheaper}"
    best_value = comparison.versus[comparison.best].value
    gap = f"{describe_gap(s.val_mean, best_value, ask.metric)} {comparison.best} ({format_metric(best_value, ask.metric)}) on validation"
    if v.reason == "untested":
        return f"{gap}{_beyond(ask)}; no interval (a single seed and no per-example outputs)"
    if v.reason == "at_chance":
        return f"{gap}; not shown to do better than {_chance_text(comparison, ask)}"
    return f"{gap}, worse at the {_pct(ask.alpha)} level ({_gap_text(v, ask.metric)}, {p_text(v.p_value)})"


def _beyond(ask: _Ask) -> str:
    return f", beyond the {format_tolerance(ask.tolerance, ask.metric)} tolerance" if ask.tolerance is not None else ""


def _pct(share: float) -> str:
    return f"{100 * share:g} %"


def p_text(p: float | None, name: str = "p") -> str:
    """``p = 0.012`` or ``p < 0.001``: a resampled p-value has no more precision than that (10,000 resamples)."""
    if p is None:
        return f"{name} = –"
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}" if p < 0.1 else f"{name} = {p:.2f}"




def _gap_amount(gap: float, metric: str) -> str:
    """A gap (how much worse) in the tolerance's unit: ``0.8 points`` or ``1.5 %``."""
    return f"{100 * gap:.1f} points" if higher_is_better(metric) else f"{100 * gap:.1f} %"


def _gap_text(v: Versus, metric: str) -> str:
    """The difference from the best with its interval: ``difference −0.4 points [−2.0, +1.2]``."""
    return "difference " + format_difference(v.gap, metric) if v.gap is not None else "no interval"


def format_difference(gap: Interval, metric: str) -> str:
    """A gap to the best (how much worse, :class:`~tunelab.advice.verdict.Versus`) as the signed difference
    from the best with its interval: ``−0.4 points [−2.0, +1.2]`` (value − best, accuracy-like) or
    ``+1.5 % [+0.3, +2.7]`` (relative, perplexity)."""
    if higher_is_better(metric):
        est, low, high, unit = -gap.estimate, -gap.high, -gap.low, " points"
    else:
        est, low, high, unit = gap.estimate, gap.low, gap.high, " %"
    return f"{format_signed(est)}{unit} [{format_signed(low)}, {format_signed(high)}]"


def format_signed(x: float) -> str:
    """A difference (a fraction) in points or % to one decimal, with its sign: ``+1.2``, ``−0.4``; ``0.0`` where it
    rounds to zero. A bound of −0.0003 printed ``+0.0``, which reads as an interval shown to lie above zero while it
    reaches below it; its sign is below the printed precision, and below what the bootstrap resolves (a bound's Monte
    Carlo error, :data:`~tunelab.advice.verdict.N_BOOT`), so no sign is stated rather than more digits."""
    rounded = round(100 * x, 1)
    return "0.0" if rounded == 0 else f"{rounded:+.1f}".replace("-", "−")


def format_interval(interval: Interval | None, metric: str) -> str:
    """``0.801 [0.775, 0.826]``; ``–`` when there is none."""
    if interval is None:
        return "–"
    return f"{format_metric(interval.estimate, metric)} [{format_metric(interval.low, metric)}, {format_metric(interval.high, metric)}]"


def _costs(strategy: StrategySummary, reference: StrategySummary, using: str = "using") -> str:
    """``2.3× faster (41 s vs 95 s) and using 38 % less peak memory (...)``, ``1.3× faster (...), though using
    1.1× more peak memory (...)`` when the two disagree, or "" when unknown; ``using="uses"`` after "X trains"."""
    speed = describe_speed(strategy.train_time_s, reference.train_time_s)
    memory = describe_memory(strategy.peak_memory_mb, reference.peak_memory_mb)
    if not speed or not memory:
        return speed or (f"{using} {memory}" if memory else "")
    at_odds = ("slower" in speed) == ("less" in memory)  # dearer in one, cheaper in the other
    return f"{speed}{', though' if at_odds else ' and'} {using} {memory}"


# --------------------------------------------------------------------------------------------------
# When does full fine-tuning pay off?


def crossover_from_fractions(results: list[dict], metric: str | None = None) -> list[dict]:
    """Per data fraction (ascending), on the validation split (mean over seeds): the best strategy, and
    full fine-tuning against the best frozen-body / PEFT strategy (every strategy that does not train all
    weights, see :func:`trains_all_weights`). The measured points; :func:`learning_curves_from_results`
    fits curves through them when there are enough.

    Each row: ``data_fraction``, ``n_train``, ``metric``, ``split``, ``best_strategy``, ``best_mean``,
    ``full_mean`` (None when full did not run there), ``best_frozen_or_peft``,
    ``best_frozen_or_peft_mean``, ``full_beats`` (None when one side is missing), and
    ``crossover_n_train``: the smallest n_train from which full beats the best frozen/PEFT strategy
    at that size and at every larger measured size (None when it never does). It is the same on
    every row.
    """
    if not results:
        return []
    metric = metric or primary_metric(results_task(results))
    rows = []
    for fraction in available_fractions(results):
        ok = [s for s in summarize_strategies(results, data_fraction=fraction, metric=metric) if s.ok]
        if not ok:
            continue
        best = _best(ok, metric)
        full = next((s for s in ok if is_full_fine_tuning(s.strategy)), None)
        frozen = [s for s in ok if not trains_all_weights(s.strategy)]
        partial = _best(frozen, metric) if frozen else None
        beats = None
        if full is not None and partial is not None:
            beats = is_better(full.val_mean, partial.val_mean, metric)
        rows.append(
            {
                "data_fraction": fraction,
                "n_train": best.n_train,
                "metric": metric,
                "split": SELECTION_SPLIT,
                "best_strategy": best.strategy,
                "best_mean": best.val_mean,
                "full_mean": full.val_mean if full else None,
                "best_frozen_or_peft": partial.strategy if partial else None,
                "best_frozen_or_peft_mean": partial.val_mean if partial else None,
                "full_beats": beats,
            }
        )
    crossover = None
    compared = [r for r in rows if r["full_beats"] is not None]
    for i, row in enumerate(compared):
        if all(r["full_beats"] for r in compared[i:]):
            crossover = row["n_train"]
            break
    for row in rows:
        row["crossover_n_train"] = crossover
    return rows


def crossover_statement(rows: list[dict]) -> str | None:
    """One sentence on how many labelled examples full fine-tuning needed to pay off, from
    :func:`crossover_from_fractions` rows; None with fewer than two fractions or no comparison."""
    compared = [r for r in rows if r["full_beats"] is not None]
    if len(rows) < 2 or not compared:
        return None
    metric = rows[0]["metric"]

    def at(row: dict) -> str:
        where = f"{row['n_train']:,} examples" if row["n_train"] is not None else f"data fraction {row['data_fraction']:g}"
        return (
            f"at {where} full reached {format_metric(row['full_mean'], metric)} validation {metric_label(metric)} vs "
            f"{format_metric(row['best_frozen_or_peft_mean'], metric)} for {row['best_frozen_or_peft']} "
            f"({describe_gap(row['full_mean'], row['best_frozen_or_peft_mean'], metric)} it)"
        )

    sizes = ", ".join(f"{r['n_train']:,}" for r in compared if r["n_train"] is not None)
    crossover = compared[0]["crossover_n_train"]
    if crossover is None:
        how = "did not stay above" if any(r["full_beats"] for r in compared) else "did not score above"
        return (
            f"Full fine-tuning {how} the best frozen/PEFT strategy at the training-set "
            f"sizes measured ({sizes}): {at(compared[-1])}."
        )
    index = next(i for i, r in enumerate(compared) if r["n_train"] == crossover)
    if index == 0:
        return (
            f"Full fine-tuning scored above the best frozen/PEFT strategy at every training-set size measured "
            f"({sizes}); already {at(compared[0])}."
        )
    return (
        f"Full fine-tuning scored above the best frozen/PEFT strategy from {crossover:,} labelled training examples on "
        f"(sizes measured: {sizes}): {at(compared[index])}, while {at(compared[index - 1])}."
    )


def learning_curves_from_results(results: list[dict], metric: str | None = None, *,
                                 level: float = 0.95) -> LearningCurves | None:
    """Each strategy's validation ``metric`` against its number of labelled training examples, fitted
    where at least 4 sizes were run (:func:`tunelab.advice.learning.fit_learning_curves`), with the
    crossover of full fine-tuning over the best frozen/PEFT strategy at the largest fraction. None with
    a single data fraction."""
    fractions = available_fractions(results)
    if len(fractions) < 2:
        return None
    metric = metric or primary_metric(results_task(results))
    points: dict[str, list[tuple[float, list[float]]]] = {}
    outputs: dict[str, list[ExampleResults | None]] = {}
    for fraction in fractions:
        for s in summarize_strategies(results, data_fraction=fraction, metric=metric):
            if s.ok and s.n_train:
                points.setdefault(s.strategy, []).append((float(s.n_train), s.values(SELECTION_SPLIT)))
                outputs.setdefault(s.strategy, []).append(example_results(s, SELECTION_SPLIT))
    # Each point's own evaluation noise, where every point of the strategy kept its outputs: a curve whose points
    # agree (flat at the majority class's score) has no residual to resample, yet each point is one measurement.
    measurement = {name: joint_replicates(list(found), metric, n_boot=N_BOOT, seed=0)  # type: ignore[arg-type]
                   for name, found in outputs.items()
                   if len(found) >= MIN_POINTS and all(r is not None and r.n_examples >= MIN_EXAMPLES for r in found)}
    largest = [s for s in summarize_strategies(results, metric=metric) if s.ok]
    full = next((s.strategy for s in largest if is_full_fine_tuning(s.strategy)), None)
    frozen = [s for s in largest if not trains_all_weights(s.strategy)]
    partial = _best(frozen, metric).strategy if frozen else None
    return fit_learning_curves(points, metric, split=SELECTION_SPLIT, n_fractions=len(fractions),
                               full=full, partial=partial, level=level, measurement=measurement)


def _curve_reasons(results: list[dict], curves: LearningCurves | None, chosen: str | None, ask: _Ask) -> list[str]:
    """What more labelled data would change: the fitted curves (4 or more fractions), else the points."""
    if curves is None:
        return []
    if not curves.fitted:
        if ask.rounds:  # screening rounds on less data, told as such by the stops; no learning curve was asked for
            return []
        statement = crossover_statement(crossover_from_fractions(results, ask.metric))
        return [f"{too_few_sizes(curves.n_fractions, curves.n_sizes)} and the measured points are shown."] + (
            [statement] if statement else [])
    reasons = []
    fit = curves.curves.get(chosen) if chosen else None
    if fit is not None and fit.fitted and fit.predictions:
        ahead = " and ".join(
            f"at {p.n / fit.n_max:g}× the labels ({p.n:,.0f}) {format_interval(p.value, ask.metric)}" for p in fit.predictions
        )
        if fit.measurement_noise:
            optimistic = "; the intervals resample the fit's residuals and each point's own validation examples"
        elif fit.resample == "residuals":
            optimistic = ("; the intervals come from the fit's residuals alone, not from each point's own evaluation "
                          "noise, and with few sizes they are narrower than the truth")
        else:
            optimistic = ""
        reasons.append(
            f"Learning curve of {chosen} (validation {ask.label} against labelled training examples, inverse power "
            f"law through {len(fit.n)} sizes, {level_pct(ask.level)} intervals{optimistic}): predicted {ahead}."
        )
    statement = curves.statement()
    if statement:
        reasons.append(statement)
    elif curves.full is None:
        reasons.append("Full fine-tuning was not among the strategies, so there is no crossover to predict.")
    return reasons
