"""Pick a strategy from measured runs, and say why in this run's own numbers.

The input is a list of run records (see :mod:`tunelab.run.record`). Runs are grouped by strategy at the
largest data fraction; seeds are averaged (mean ± sample std). Strategies over the time or memory budget
are set aside, the best test metric is found, and then the *cheapest* strategy whose metric is within a
tolerance of the best is chosen: if LoRA is as good as full fine-tuning within noise, LoRA wins because
it trains faster, needs less memory and saves a smaller artifact.

    >>> from tunelab.advice.choose import recommend_from_results
    >>> rec = recommend_from_results(runs, budget_minutes=30)      # doctest: +SKIP
    >>> rec["strategy"], rec["reasons"][0]                         # doctest: +SKIP
    ('lora', 'lora reached 0.801 test accuracy, 0.4 points below full (0.805), training 2.3× faster ...')

:func:`summarize_strategies` (the per-strategy aggregate) and the ``format_*`` helpers are shared with
:mod:`tunelab.report`, so the report and the recommendation quote the same numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tunelab.run.record import RunRecord, as_record, higher_is_better, primary_metric

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
    least one run succeeded and recorded the test metric.
    """

    strategy: str
    metric: str
    data_fraction: float
    runs: list[RunRecord] = field(default_factory=list)
    failed_runs: list[RunRecord] = field(default_factory=list)

    def _values(self, read: Callable[[RunRecord], Any]) -> list[float]:
        values = (_number(read(run)) for run in self.runs)
        return [v for v in values if v is not None]

    @property
    def test_values(self) -> list[float]:
        """The test metric of each successful seed."""
        return self._values(lambda r: r.metrics.value("test", self.metric))

    @property
    def n(self) -> int:
        """Number of successful runs (seeds) with a test metric."""
        return len(self.test_values)

    @property
    def ok(self) -> bool:
        """At least one run succeeded with a test metric."""
        return self.n > 0

    @property
    def status(self) -> str:
        """``success``, ``success (k failed)`` or ``failed``."""
        if self.ok:
            return "success" if not self.failed_runs else f"success ({len(self.failed_runs)} failed)"
        return "failed"

    @property
    def error(self) -> str | None:
        """The first failed run's error; for successful runs without a test metric, says so."""
        for run in self.failed_runs:
            return str(run.run_info.error or "failed (no error recorded)")
        if self.runs and not self.ok:
            return f"no test {self.metric} recorded"
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
        return _mean(self._values(lambda r: r.metrics.value("validation", self.metric)))

    @property
    def val_std(self) -> float | None:
        """Sample std of the final validation metric over seeds."""
        return _std(self._values(lambda r: r.metrics.value("validation", self.metric)))

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
        """Mean peak memory, MB (see ``memory_kind``)."""
        return self.mean_of(lambda r: r.train_info.peak_memory_mb)

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


def summarize_strategies(results: list[dict], *, data_fraction: float | None = None) -> list[StrategySummary]:
    """Group runs by strategy at one data fraction (default: the largest), aggregating seeds.

    Strategies are returned in listing order (:func:`strategy_sort_key`). A strategy that only ran at other fractions
    is left out here.
    """
    if not results:
        return []
    fraction = largest_fraction(results) if data_fraction is None else float(data_fraction)
    metric = primary_metric(results_task(results))
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
    """``0.801`` for accuracy-like metrics, ``12.3`` / ``1.23`` for perplexity and loss."""
    if value is None:
        return "–"
    if higher_is_better(metric) and abs(value) <= 1.0:
        return f"{value:.3f}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.1f}"


def format_metric_pm(mean: float | None, std: float | None, n: int, metric: str) -> str:
    """``0.801 ± 0.003`` when there are several seeds, else just the value."""
    if mean is None:
        return "–"
    text = format_metric(mean, metric)
    if n > 1 and std is not None:
        text += f" ± {std:.3f}" if higher_is_better(metric) else f" ± {std:.2g}"
    return text


def format_seconds(seconds: float | None) -> str:
    """``4.2 s``, ``41 s``, ``1,234 s``."""
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:,.0f} s"


def format_mb(mb: float | None) -> str:
    """``812 MB``, ``1,300 MB``."""
    if mb is None:
        return "–"
    if mb < 0.1:
        return f"{mb:.2g} MB"
    return f"{mb:.1f} MB" if mb < 10 else f"{mb:,.0f} MB"


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


def default_tolerance(metric: str, best_std: float | None) -> float:
    """How close to the best counts as "as good".

    Accuracy-like metrics: an absolute difference, ``max(0.01, best's seed std)`` (one point).
    Perplexity and loss: a relative one, 0.02 (2 %).
    """
    if higher_is_better(metric):
        return max(0.01, best_std or 0.0)
    return 0.02


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
    """``1.6× less peak memory (812 MB vs 1,300 MB)`` or None when unknown or about equal."""
    if not mb or not reference_mb:
        return None
    pair = f"({format_mb(mb)} vs {format_mb(reference_mb)})"
    if mb * 1.05 < reference_mb:
        return f"{reference_mb / mb:.1f}× less peak memory {pair}"
    if mb > reference_mb * 1.05:
        return f"{mb / reference_mb:.1f}× more peak memory {pair}"
    return None


def _cost_key(summary: StrategySummary) -> tuple[float, float, float]:
    def known(value: float | None) -> float:
        return math.inf if value is None else value

    return (known(summary.train_time_s), known(summary.peak_memory_mb), known(summary.trainable_share))


def _best(summaries: list[StrategySummary], metric: str) -> StrategySummary:
    """Best test metric; a tie goes to the cheaper strategy."""
    sign = -1.0 if higher_is_better(metric) else 1.0
    return min(summaries, key=lambda s: (sign * s.test_mean, _cost_key(s)))


def data_regime(summary_or_results: StrategySummary | list[dict]) -> dict[str, Any]:
    """``{"n_train", "n_labels", "per_class", "data_fraction"}`` from ``meta_info`` (None where unknown).

    ``per_class`` is the average number of training examples per class (``n_train / n_labels``).
    """
    if isinstance(summary_or_results, list):
        summaries = summarize_strategies(summary_or_results)
        summary = next((s for s in summaries if s.ok), summaries[0] if summaries else None)
        if summary is None:
            return {"n_train": None, "n_labels": None, "per_class": None, "data_fraction": None}
    else:
        summary = summary_or_results
    n_train, n_labels = summary.n_train, summary.n_labels
    per_class = n_train / n_labels if n_train is not None and n_labels else None
    return {"n_train": n_train, "n_labels": n_labels, "per_class": per_class, "data_fraction": summary.data_fraction}


def describe_data_regime(regime: dict[str, Any], task: str) -> str:
    """``800 training examples, 2 classes, about 400 per class (data fraction 1.0)``."""
    if regime.get("n_train") is None:
        return "training-set size not recorded"
    unit = "examples" if task == "classification" else "texts"
    text = f"{regime['n_train']:,} training {unit}"
    if regime.get("n_labels"):
        text += f", {regime['n_labels']} classes, about {regime['per_class']:,.0f} per class"
    fraction = regime.get("data_fraction")
    if fraction is not None and not math.isclose(fraction, 1.0):
        text += f" (data fraction {fraction:g})"
    return text


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# The recommendation


def recommend_from_results(
    results: list[dict],
    *,
    budget_minutes: float | None = None,
    memory_gb: float | None = None,
    tolerance: float | None = None,
) -> dict:
    """Choose a strategy from measured runs and give the reasons, each quoting measured numbers.

    Runs are grouped by strategy at the largest data fraction, seeds averaged. Strategies whose mean
    ``train_time_s`` exceeds ``budget_minutes`` or whose mean ``peak_memory_mb`` exceeds ``memory_gb``
    (GiB) are excluded. Among the rest the best test metric (:func:`tunelab.run.record.primary_metric`) is
    found, then the cheapest strategy (training time, then peak memory, then trainable share) within
    ``tolerance`` of it is chosen. ``tolerance`` is absolute for accuracy (0.01 = one point; default
    ``max(0.01, best's seed std)``) and relative for perplexity (default 0.02 = 2 %).

    Returns ``{"strategy", "reasons", "ranking", "metric", "tolerance", "data_regime"}``; ``strategy``
    is None when no run succeeded or none fits the budget, and the reasons say why. ``ranking`` lists
    every strategy, best metric first (failed ones last): ``strategy``, ``metric``, ``mean``, ``std``,
    ``n``, ``fits``, ``why_not`` (None for the chosen one), plus ``train_time_s``, ``peak_memory_mb``,
    ``trainable_share``.

    >>> recommend_from_results([])["strategy"] is None
    True
    """
    task = results_task(results)
    metric = primary_metric(task)
    summaries = summarize_strategies(results)
    out: dict[str, Any] = {"strategy": None, "reasons": [], "ranking": [], "metric": metric, "tolerance": None}
    if not summaries:
        out["reasons"] = ["No runs to choose from: the comparison produced no results."]
        out["data_regime"] = None
        return out

    regime = data_regime(next((s for s in summaries if s.ok), summaries[0]))
    out["data_regime"] = regime
    ok = [s for s in summaries if s.ok]
    failed = [s for s in summaries if not s.ok]

    # Budget: why each successful strategy does not fit.
    violations: dict[str, list[str]] = {s.strategy: [] for s in ok}
    for s in ok:
        if budget_minutes is not None and s.train_time_s is not None and s.train_time_s > 60.0 * budget_minutes:
            violations[s.strategy].append(
                f"training took {format_seconds(s.train_time_s)}, over the {budget_minutes:g}-minute budget"
            )
        if memory_gb is not None and s.peak_memory_mb is not None and s.peak_memory_mb > 1024.0 * memory_gb:
            violations[s.strategy].append(
                f"peak memory {format_mb(s.peak_memory_mb)}, over the {memory_gb:g} GB limit"
            )
    fits = [s for s in ok if not violations[s.strategy]]

    reasons: list[str] = []
    chosen: StrategySummary | None = None
    best: StrategySummary | None = None
    tol: float | None = None
    if not ok:
        reasons.append(
            f"No strategy finished successfully at data fraction {summaries[0].data_fraction:g}, "
            "so there is nothing to recommend; the errors are below."
        )
    elif not fits:
        limits = []
        if budget_minutes is not None:
            limits.append(f"the {budget_minutes:g}-minute training budget")
        if memory_gb is not None:
            limits.append(f"the {memory_gb:g} GB memory limit")
        cheapest = min(ok, key=_cost_key)
        reasons.append(
            f"No successful strategy fits {' and '.join(limits)}: the cheapest, {cheapest.strategy}, "
            f"trained in {format_seconds(cheapest.train_time_s)} with {format_mb(cheapest.peak_memory_mb)} peak memory. "
            "Raise the budget, or use a smaller model or less data."
        )
    else:
        best = _best(fits, metric)
        tol = tolerance if tolerance is not None else default_tolerance(metric, best.test_std)
        candidates = [s for s in fits if within_tolerance(s.test_mean, best.test_mean, metric, tol)]
        chosen = min(candidates, key=_cost_key)
        reasons.extend(_choice_reasons(chosen, best, fits, metric, tol, tolerance is None, len(ok)))

    out["tolerance"] = tol
    if chosen is not None:
        out["strategy"] = chosen.strategy

    # Data regime, and what changes with more data when several fractions were run.
    reasons.append(f"Data regime: {describe_data_regime(regime, task)}.")
    statement = crossover_statement(crossover_from_fractions(results))
    if statement:
        reasons.append(statement)

    for s in ok:
        if violations[s.strategy]:
            reasons.append(f"{s.strategy} was excluded: {'; '.join(violations[s.strategy])}.")
        if s.failed_runs:
            reasons.append(
                f"{s.strategy}: {len(s.failed_runs)} of {len(s.runs) + len(s.failed_runs)} runs failed "
                f"({_short(s.error or '')}); its numbers use the {s.n} that succeeded."
            )
    for s in failed:
        reasons.append(f"{s.strategy} failed: {_short(s.error or 'no error recorded')}.")
    out["reasons"] = reasons

    # Ranking: successful by metric (best first), then failed.
    sign = -1.0 if higher_is_better(metric) else 1.0
    ranking = []
    for s in sorted(ok, key=lambda s: (sign * s.test_mean, _cost_key(s))) + failed:
        if not s.ok:
            why_not = f"failed: {_short(s.error or 'no error recorded')}"
        elif violations[s.strategy]:
            why_not = "; ".join(violations[s.strategy])
        elif chosen is None or s is chosen:
            why_not = None
        elif within_tolerance(s.test_mean, best.test_mean, metric, tol):
            why_not = (
                f"within {format_tolerance(tol, metric)} of the best, but {chosen.strategy} is cheaper"
                + (f" ({format_seconds(chosen.train_time_s)} vs {format_seconds(s.train_time_s)})" if chosen.train_time_s else "")
            )
        else:
            why_not = (
                f"{describe_gap(s.test_mean, best.test_mean, metric)} {best.strategy} "
                f"({format_metric(best.test_mean, metric)}), beyond the {format_tolerance(tol, metric)} tolerance"
            )
        ranking.append(
            {
                "strategy": s.strategy,
                "metric": metric,
                "mean": s.test_mean,
                "std": s.test_std,
                "n": s.n,
                "fits": s.ok and not violations.get(s.strategy),
                "why_not": why_not,
                "train_time_s": s.train_time_s,
                "peak_memory_mb": s.peak_memory_mb,
                "trainable_share": s.trainable_share,
            }
        )
    out["ranking"] = ranking
    return out


def _costs(strategy: StrategySummary, reference: StrategySummary) -> str:
    """``2.3× faster (41 s vs 95 s) and using 1.6× less peak memory (...)``, or "" when unknown."""
    parts = [
        describe_speed(strategy.train_time_s, reference.train_time_s),
        describe_memory(strategy.peak_memory_mb, reference.peak_memory_mb),
    ]
    return " and using ".join(p for p in parts if p)


def _choice_reasons(
    chosen: StrategySummary,
    best: StrategySummary,
    fits: list[StrategySummary],
    metric: str,
    tol: float,
    default_tol: bool,
    n_ok: int,
) -> list[str]:
    """The first reasons: what the chosen strategy reached, against what, at what cost."""
    label = metric_label(metric)
    value = format_metric_pm(chosen.test_mean, chosen.test_std, chosen.n, metric)
    seeds = f" over {chosen.n} seeds" if chosen.n > 1 else ""
    share = (
        f" with {format_share(chosen.trainable_share)} of the weights trainable"
        if chosen.trainable_share is not None
        else ""
    )
    if len(fits) == 1:
        trained = f", trained in {format_seconds(chosen.train_time_s)}" if chosen.train_time_s is not None else ""
        return [
            f"{chosen.strategy} is the only strategy that "
            f"{'succeeded' if n_ok == 1 else 'succeeded within the budget'}, "
            f"so there was nothing to compare it with: {value} test {label}{seeds}{trained}{share}."
        ]

    reasons = []
    mentioned = {chosen.strategy, best.strategy}
    if chosen is not best:
        costs = _costs(chosen, best)
        reasons.append(
            f"{chosen.strategy} reached {value} test {label}{seeds}, "
            f"{describe_gap(chosen.test_mean, best.test_mean, metric)} {best.strategy} "
            f"({format_metric(best.test_mean, metric)})" + (f", training {costs}" if costs else "") + f"{share}."
        )
    else:
        runner_up = _best([s for s in fits if s is not chosen], metric)
        mentioned.add(runner_up.strategy)
        gap = describe_gap(runner_up.test_mean, chosen.test_mean, metric)
        text = (
            f"{chosen.strategy} reached the best test {label}, {value}{seeds}{',' if share else ''}{share}; the runner-up, "
            f"{runner_up.strategy} ({format_metric(runner_up.test_mean, metric)}), is {gap} it"
        )
        if within_tolerance(runner_up.test_mean, chosen.test_mean, metric, tol):
            costs = _costs(chosen, runner_up)
            text += ", within the tolerance, but " + (
                f"{chosen.strategy} is also cheaper, training {costs}." if costs else f"{chosen.strategy} is cheaper."
            )
        else:
            speed = describe_speed(runner_up.train_time_s, chosen.train_time_s)
            text += f", beyond the {format_tolerance(tol, metric)} tolerance"
            text += f", although it trains {speed}." if speed and "faster" in speed else "."
        reasons.append(text)

    if not default_tol:
        how = "as requested"
    elif not higher_is_better(metric):
        how = "the default: 2 % of the best"
    elif best.n > 1:
        how = f"the default: the larger of 1 point and the best's seed std, {100 * (best.test_std or 0):.1f} points"
    else:
        how = "the default: 1 point, or the best's seed std when larger; the best has a single seed"
    reasons.append(
        f"Strategies within {format_tolerance(tol, metric)} of the best ({how}) count as equally good; "
        "among those the cheapest to train (time, then peak memory, then trainable share) is chosen."
    )

    cheapest = min(fits, key=_cost_key)
    if cheapest.strategy not in mentioned:
        mentioned.add(cheapest.strategy)
        reasons.append(
            f"{cheapest.strategy} is cheaper ({format_seconds(cheapest.train_time_s)}, "
            f"{format_mb(cheapest.peak_memory_mb)}) but reached {format_metric(cheapest.test_mean, metric)}, "
            f"{describe_gap(cheapest.test_mean, best.test_mean, metric)} the best."
        )
    full = next((s for s in fits if is_full_fine_tuning(s.strategy)), None)
    if full is not None and full.strategy not in mentioned:
        costs = _costs(chosen, full)
        reasons.append(
            f"Full fine-tuning reached {format_metric(full.test_mean, metric)}, "
            f"{describe_gap(full.test_mean, chosen.test_mean, metric)} {chosen.strategy}"
            + (f"; {chosen.strategy} trains {costs}" if costs else "")
            + "."
        )
    return reasons


# --------------------------------------------------------------------------------------------------
# When does full fine-tuning pay off?


def crossover_from_fractions(results: list[dict]) -> list[dict]:
    """Per data fraction (ascending): the best strategy, and full fine-tuning against the best
    frozen-body / PEFT strategy (every strategy that does not train all weights, see :func:`trains_all_weights`).

    Each row: ``data_fraction``, ``n_train``, ``metric``, ``best_strategy``, ``best_mean``,
    ``full_mean`` (None when full did not run there), ``best_frozen_or_peft``,
    ``best_frozen_or_peft_mean``, ``full_beats`` (None when one side is missing), and
    ``crossover_n_train``: the smallest n_train from which full beats the best frozen/PEFT strategy
    at that size and at every larger measured size (None when it never does). It is the same on
    every row.
    """
    if not results:
        return []
    metric = primary_metric(results_task(results))
    rows = []
    for fraction in available_fractions(results):
        ok = [s for s in summarize_strategies(results, data_fraction=fraction) if s.ok]
        if not ok:
            continue
        best = _best(ok, metric)
        full = next((s for s in ok if is_full_fine_tuning(s.strategy)), None)
        frozen = [s for s in ok if not trains_all_weights(s.strategy)]
        partial = _best(frozen, metric) if frozen else None
        beats = None
        if full is not None and partial is not None:
            beats = is_better(full.test_mean, partial.test_mean, metric)
        rows.append(
            {
                "data_fraction": fraction,
                "n_train": best.n_train,
                "metric": metric,
                "best_strategy": best.strategy,
                "best_mean": best.test_mean,
                "full_mean": full.test_mean if full else None,
                "best_frozen_or_peft": partial.strategy if partial else None,
                "best_frozen_or_peft_mean": partial.test_mean if partial else None,
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
            f"at {where} full reached {format_metric(row['full_mean'], metric)} vs "
            f"{format_metric(row['best_frozen_or_peft_mean'], metric)} for {row['best_frozen_or_peft']} "
            f"({describe_gap(row['full_mean'], row['best_frozen_or_peft_mean'], metric)} it)"
        )

    sizes = ", ".join(f"{r['n_train']:,}" for r in compared if r["n_train"] is not None)
    crossover = compared[0]["crossover_n_train"]
    if crossover is None:
        how = "did not consistently beat" if any(r["full_beats"] for r in compared) else "did not beat"
        return (
            f"Full fine-tuning {how} the best frozen/PEFT strategy at the training-set "
            f"sizes measured ({sizes}): {at(compared[-1])}."
        )
    index = next(i for i, r in enumerate(compared) if r["n_train"] == crossover)
    if index == 0:
        return (
            f"Full fine-tuning beat the best frozen/PEFT strategy at every training-set size measured "
            f"({sizes}); already {at(compared[0])}."
        )
    return (
        f"Full fine-tuning overtook the best frozen/PEFT strategy from {crossover:,} labelled training examples on "
        f"(sizes measured: {sizes}): {at(compared[index])}, while {at(compared[index - 1])}."
    )
