"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state) into PNG bytes.

Each function returns a :class:`Plot` (a file stem, a title, a caption and the PNG), or None when
the results hold nothing to draw (no successful run, no epoch history, a single data fraction).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from tunelab.advice.choose import (
    StrategySummary,
    available_fractions,
    metric_label,
    results_task,
    run_strategy,
    run_succeeded,
    strategy_sort_key,
    summarize_strategies,
)
from tunelab.advice.learning import LearningCurves
from tunelab.metrics import higher_is_better
from tunelab.report.tables import results_table_intervals
from tunelab.units import MEMORY_UNIT

_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
)  # fmt: skip
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<")


@dataclass
class Plot:
    """One figure: ``name`` is the file stem (``plots/<name>.png``)."""

    name: str
    title: str
    caption: str
    png: bytes


def strategy_style(strategy: str, known: list[str] | None = None) -> tuple[str, str]:
    """A fixed colour and marker per strategy, the same in every plot."""
    from tunelab.strategies import strategy_names  # with the first plot, not with this module

    registered = strategy_names()
    order = registered + sorted(set(known or []) - set(registered))
    index = order.index(strategy) if strategy in order else len(order)
    return _PALETTE[index % len(_PALETTE)], _MARKERS[index % len(_MARKERS)]


def _new_figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _png(fig: Figure) -> bytes:
    """The figure drawn as PNG bytes. A font missing on this machine falls back to another, which the user has
    nothing to do about: matplotlib's "findfont" lines (21 a report, where its math fonts are not cached) are
    kept quiet while it draws, whoever called (the CLI, or a script through the Python API)."""
    import logging

    buffer = io.BytesIO()
    fonts = logging.getLogger("matplotlib.font_manager")
    level = fonts.level
    fonts.setLevel(max(level, logging.ERROR))
    try:
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        fonts.setLevel(level)
    return buffer.getvalue()


def _metric_axis_label(metric: str, split: str = "test") -> str:
    better = "higher" if higher_is_better(metric) else "lower"
    return f"{split} {metric_label(metric)} ({better} is better)"


def pareto_front(points: list[tuple[float, float]], *, higher_better: bool) -> list[int]:
    """Indices of the non-dominated points, by ascending cost ``x``: no other point is at most as
    costly and at least as good, and strictly better in one of the two.

    >>> pareto_front([(1, 0.7), (2, 0.8), (3, 0.75)], higher_better=True)
    [0, 1]
    """
    sign = 1.0 if higher_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], -math.inf
    for i in order:
        score = sign * points[i][1]
        if score > best:
            front.append(i)
            best = score
    return front


def interval_bar(interval: dict) -> tuple[float, float, float]:
    """``(estimate, below, above)``: where a strategy's point sits and how far its bar reaches below and above it.
    A percentile interval need not contain the estimate: the bar starts at the estimate at least.

    >>> interval_bar({"estimate": 0.75, "low": 0.5, "high": 1.0})
    (0.75, 0.25, 0.25)
    """
    estimate = float(interval["estimate"])
    return estimate, max(estimate - float(interval["low"]), 0.0), max(float(interval["high"]) - estimate, 0.0)


def _interval_words(intervals: list[dict], unit: str = "examples") -> str:
    """``95 % interval over test examples and seeds``: what the bars drawn from ``intervals`` are (``unit``: what the
    bootstrap resampled, a causal LM's texts or a classifier's examples)."""
    level = f"{100 * float(intervals[0].get('level') or 0.95):g} %"
    examples = any("bootstrap" in str(i.get("method")) for i in intervals)
    seeds = any((i.get("n_seeds") or 1) > 1 for i in intervals)
    if not examples:
        return f"{level} interval over seeds (t interval; no per-example outputs were saved)"
    return f"{level} interval over test {unit}" + (" and seeds" if seeds else "")


def tradeoff_plot(
    results: list[dict],
    *,
    name: str,
    cost: Callable[[StrategySummary], float | None],
    cost_std: Callable[[StrategySummary], float | None],
    xlabel: str,
    title: str,
    log_x: bool = False,
    metric: str | None = None,
    less: str = "cheaper",
    intervals: dict[str, dict] | None = None,
    recommendation: dict | None = None,
) -> Plot | None:
    """Test metric with the interval the results table gives it (:func:`~tunelab.report.tables.results_table_intervals`; ``intervals`` when already
    read, else from ``recommendation``) against a cost (± its std over seeds), with the Pareto frontier drawn through
    the non-dominated strategies (``less``: what a lower cost means, for the caption). Failed runs are left out."""
    summaries = [s for s in summarize_strategies(results, metric=metric)
                 if s.ok and s.test_mean is not None and cost(s) is not None]
    if log_x:
        summaries = [s for s in summaries if cost(s) > 0]
    if not summaries:
        return None
    metric = summaries[0].metric
    if intervals is None:
        intervals = results_table_intervals(results, recommendation)
    # the table's interval for the metric plotted (one computed for another metric is not this one's)
    bars = {s.strategy: interval_bar(intervals[s.strategy]) for s in summaries
            if s.strategy in intervals and intervals[s.strategy].get("metric") in (None, metric)}
    names = [s.strategy for s in summaries]
    fig, ax = _new_figure()
    points = [(cost(s), bars[s.strategy][0] if s.strategy in bars else s.test_mean) for s in summaries]
    front = pareto_front(points, higher_better=higher_is_better(metric))
    if len(front) > 1:
        xs, ys = zip(*(points[i] for i in front))
        ax.plot(xs, ys, linestyle="--", color="#555555", linewidth=1.2, zorder=1, label="Pareto frontier")
    for i, s in enumerate(summaries):
        colour, marker = strategy_style(s.strategy, names)
        x, y = points[i]
        several = s.n > 1
        bar = bars.get(s.strategy)
        ax.errorbar(
            x,
            y,
            yerr=[[bar[1]], [bar[2]]] if bar else None,
            xerr=(cost_std(s) or None) if several else None,
            fmt=marker,
            color=colour,
            markersize=8,
            capsize=3,
            markeredgecolor="black" if i in front else colour,
            markeredgewidth=1.4 if i in front else 0.5,
            zorder=3,
            label=s.strategy + (f" (n={s.n})" if several else ""),
        )
        ax.annotate(s.strategy, (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8, color="#333333")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_metric_axis_label(metric))
    ax.set_title(title, fontsize=11)
    ax.margins(x=0.12, y=0.15)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    frontier = ", ".join(summaries[i].strategy for i in front)
    caption = f"{title}. Dashed line: the Pareto frontier (no other strategy is both better and {less}): {frontier}."
    drawn = [intervals[s.strategy] for s in summaries if s.strategy in bars]
    if drawn:
        bare = [s.strategy for s in summaries if s.strategy not in bars]
        unit = "examples" if results_task(results) == "classification" else "texts"
        caption += (f" Vertical bars: the {_interval_words(drawn, unit)}, as in the results table"
                    + (f" (none for {', '.join(bare)}: one seed, no per-example outputs saved)" if bare else "")
                    + ". A frontier through overlapping intervals is not a ranking the data support.")
    else:
        caption += (" No vertical bars: one seed and no per-example outputs saved, so no interval; the frontier is not"
                    " a ranking the data support.")
    if any(s.n > 1 and cost_std(s) for s in summaries):
        caption += " Horizontal bars: ± one std of the cost over seeds."
    return Plot(name, title, caption, _png(fig))


def share_plot(results: list[dict], metric: str | None = None, *, intervals: dict[str, dict] | None = None,
        recommendation: dict | None = None) -> Plot | None:
    """Test metric against the share of trainable weights (log x)."""
    return tradeoff_plot(
        results,
        name="metric_vs_trainable_share",
        cost=lambda s: None if s.trainable_share is None else 100.0 * s.trainable_share,
        cost_std=lambda s: None,
        xlabel="trainable share of weights (%, log scale)",
        title="Test metric vs trainable share",
        log_x=True,
        metric=metric,
        intervals=intervals,
        recommendation=recommendation,
    )


def time_plot(results: list[dict], metric: str | None = None, *, intervals: dict[str, dict] | None = None,
        recommendation: dict | None = None) -> Plot | None:
    """Test metric against training time (training steps only)."""
    return tradeoff_plot(
        results,
        name="metric_vs_train_time",
        cost=lambda s: s.train_time_s,
        cost_std=lambda s: s.std_of(lambda r: r.train_info.train_time_s),
        xlabel="training time (s)",
        title="Test metric vs training time",
        metric=metric,
        intervals=intervals,
        recommendation=recommendation,
    )


def memory_plot(results: list[dict], metric: str | None = None, *, intervals: dict[str, dict] | None = None,
        recommendation: dict | None = None) -> Plot | None:
    """Test metric against peak memory."""
    summaries = [s for s in summarize_strategies(results, metric=metric) if s.ok]
    kinds = {s.memory_kind for s in summaries if s.memory_kind}
    kind = f" ({'/'.join(sorted(kinds))})" if kinds else ""
    return tradeoff_plot(
        results,
        name="metric_vs_peak_memory",
        cost=lambda s: s.peak_memory_mb,
        cost_std=lambda s: s.std_of(lambda r: r.train_info.peak_memory_mb),
        xlabel=f"peak memory ({MEMORY_UNIT}{kind})",
        title="Test metric vs peak memory",
        metric=metric,
        intervals=intervals,
        recommendation=recommendation,
    )


def forgetting_plot(results: list[dict], metric: str | None = None, *, intervals: dict[str, dict] | None = None,
        recommendation: dict | None = None) -> Plot | None:
    """Test metric against forgetting on the reference text (what adapting cost the model's general ability)."""
    summaries = [s for s in summarize_strategies(results, metric=metric) if s.ok and s.forgetting is not None]
    units = {s.forgetting_unit for s in summaries}
    if not summaries or len(units) != 1:
        return None  # nothing measured, or measures that do not share an axis
    unit = units.pop()
    return tradeoff_plot(
        results,
        name="metric_vs_forgetting",
        cost=lambda s: s.forgetting,
        cost_std=lambda s: s.std_of(lambda r: (r.train_info.forgetting or {}).get("value")),
        xlabel=f"forgetting on the reference text ({unit}; 0 = nothing lost)",
        title="Test metric vs forgetting",
        less="forgets less",
        metric=metric,
        intervals=intervals,
        recommendation=recommendation,
    )


def epochs_plot(results: list[dict], metric: str | None = None) -> Plot | None:
    """Validation metric per epoch per strategy (mean over seeds, band = ± std), from
    ``train_info.epochs`` of the successful runs at the largest data fraction."""
    summaries = [s for s in summarize_strategies(results, metric=metric) if s.ok]
    if not summaries:
        return None
    metric = summaries[0].metric
    key = f"val_{metric}"
    names = [s.strategy for s in summaries]
    fig, ax = _new_figure()
    drawn = 0
    max_epoch = 0
    for s in summaries:
        per_epoch: dict[float, list[float]] = {}
        for run in s.runs:
            epochs = run.train_info.epochs or []
            for position, entry in enumerate(epochs, start=1):
                if not isinstance(entry, dict) or entry.get(key) is None:
                    continue
                per_epoch.setdefault(float(entry.get("epoch", position)), []).append(float(entry[key]))
        if not per_epoch:
            continue
        xs = sorted(per_epoch)
        means = [sum(per_epoch[x]) / len(per_epoch[x]) for x in xs]
        colour, marker = strategy_style(s.strategy, names)
        ax.plot(xs, means, marker=marker, color=colour, label=s.strategy, linewidth=1.6, markersize=5)
        if s.n > 1:
            stds = [_std(per_epoch[x]) for x in xs]
            ax.fill_between(xs, [m - d for m, d in zip(means, stds)], [m + d for m, d in zip(means, stds)],
                            color=colour, alpha=0.15, linewidth=0)
        drawn += 1
        max_epoch = max(max_epoch, max(xs))
    if not drawn:
        return None
    if max_epoch <= 20:
        ax.set_xticks(range(1, int(max_epoch) + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel(_metric_axis_label(metric, "validation"))
    title = f"Validation {metric_label(metric)} per epoch"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    caption = f"{title}, mean over seeds" + (" (band: ± one std)." if any(s.n > 1 for s in summaries) else ".")
    return Plot("validation_per_epoch", title, caption, _png(fig))


def fractions_plot(results: list[dict], metric: str | None = None) -> Plot | None:
    """Validation metric against the number of training examples, one line per strategy (the measured
    points, mean ± std over seeds); None with fewer than two data fractions."""
    fractions = available_fractions(results)
    if len(fractions) < 2:
        return None
    names = sorted({run_strategy(r) for r in results if run_succeeded(r)})
    series: dict[str, list[tuple[float, float, float, int]]] = {}
    for fraction in fractions:
        for s in summarize_strategies(results, data_fraction=fraction, metric=metric):
            if not s.ok:
                continue
            metric = s.metric
            x = s.n_train if s.n_train is not None else fraction
            series.setdefault(s.strategy, []).append((x, s.val_mean, s.val_std or 0.0, s.n))
    if metric is None or not series:
        return None
    fig, ax = _new_figure()
    uses_n_train = all(s.n_train is not None for s in summarize_strategies(results, metric=metric) if s.ok)
    for strategy in sorted(series, key=strategy_sort_key):
        points = sorted(series[strategy])
        colour, marker = strategy_style(strategy, names)
        xs, ys, stds, ns = zip(*points)
        ax.errorbar(xs, ys, yerr=[d if n > 1 else 0 for d, n in zip(stds, ns)], marker=marker, color=colour,
                    label=strategy, capsize=3, linewidth=1.6, markersize=6)
    xs_all = sorted({p[0] for pts in series.values() for p in pts})
    _size_axis(ax, xs_all, "training examples (n_train)" if uses_n_train else "data fraction", uses_n_train)
    ax.set_ylabel(_metric_axis_label(metric, "validation"))
    title = f"Validation {metric_label(metric)} vs training-set size"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    caption = (f"{title} (measured points; fewer than 4 sizes, so no curve is fitted): where the lines cross, "
               "a strategy that trains more weights starts to pay off.")
    return Plot("metric_vs_training_size", title, caption, _png(fig))


def _size_axis(ax, xs: list[float], label: str, counts: bool = True) -> None:
    if min(xs) > 0 and max(xs) / min(xs) >= 4:
        ax.set_xscale("log")
    # Ticks at the measured sizes only, written out (not 2×10²).
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [f"{x:,.0f}" if counts else f"{x:g}" for x in xs])
    ax.set_xlabel(label)


def learning_curve_plot(curves: LearningCurves) -> Plot | None:
    """The fitted learning curves: measured validation points, the fitted curve with its bootstrap band
    out to the furthest prediction, and the predictions with their intervals. None when nothing was fitted."""
    fitted = {name: fit for name, fit in curves.curves.items() if fit.fitted}
    if not fitted:
        return None
    metric = curves.metric
    names = list(curves.curves)
    fig, ax = _new_figure()
    lo_q, hi_q = (1 - fitted[next(iter(fitted))].level) / 2, (1 + fitted[next(iter(fitted))].level) / 2
    sizes: set[float] = set()
    for name in sorted(fitted, key=strategy_sort_key):
        fit = fitted[name]
        colour, marker = strategy_style(name, names)
        far = max([p.n for p in fit.predictions] + [fit.n_max])
        grid = np.geomspace(min(fit.n), far, 80)
        reps = fit.replicates(grid)
        ax.fill_between(grid, np.quantile(reps, lo_q, axis=0), np.quantile(reps, hi_q, axis=0), color=colour,
                        alpha=0.12, linewidth=0)
        ax.plot(grid, fit.predict(grid), color=colour, linewidth=1.4, label=name)
        ax.plot(fit.n, fit.y, marker, color=colour, markersize=6, linestyle="none")
        for p in fit.predictions:
            # a percentile interval need not contain the point estimate: the bars start at the estimate at least
            below, above = max(p.value.estimate - p.value.low, 0.0), max(p.value.high - p.value.estimate, 0.0)
            ax.errorbar([p.n], [p.value.estimate], yerr=[[below], [above]],
                        fmt=marker, color=colour, mfc="white", capsize=3, markersize=6)
        sizes.update(fit.n)
        sizes.update(p.n for p in fit.predictions)
    _size_axis(ax, sorted(sizes), "labelled training examples (log scale)")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_ylabel(_metric_axis_label(metric, "validation"))
    title = f"Learning curves: validation {metric_label(metric)} vs labelled examples"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    level = f"{100 * fitted[next(iter(fitted))].level:g} %"
    caption = (f"{title}. Filled markers: measured (mean over seeds); lines: inverse power law fits; bands: "
               f"{level} bootstrap intervals of the curve; open markers: predictions at 2× and 5× the labels.")
    return Plot("metric_vs_training_size", title, caption, _png(fig))


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def all_plots(results: list[dict], *, metric: str | None = None, curves: LearningCurves | None = None,
              recommendation: dict | None = None) -> list[Plot]:
    """Every plot the results support, in report order: the learning curves replace the measured points
    against training-set size when curves were fitted. The trade-off plots' bars are the results table's test
    intervals (``recommendation``'s; computed with its defaults when not given)."""
    sizes = learning_curve_plot(curves) if curves is not None else None
    intervals = results_table_intervals(results, recommendation) if any(run_succeeded(r) for r in results) else {}
    plots = [share_plot(results, metric, intervals=intervals), time_plot(results, metric, intervals=intervals),
             memory_plot(results, metric, intervals=intervals), forgetting_plot(results, metric, intervals=intervals),
             epochs_plot(results, metric), sizes or fractions_plot(results, metric)]
    return [p for p in plots if p is not None]
