"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state) into PNG bytes.

Each function returns a :class:`Plot` (a file stem, a title, a caption and the PNG), or None when
the results hold nothing to draw (no successful run, no epoch history, a single data fraction).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from tunelab.advice.choose import (
    StrategySummary,
    available_fractions,
    metric_label,
    run_strategy,
    run_succeeded,
    strategy_sort_key,
    summarize_strategies,
)
from tunelab.metrics import higher_is_better

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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
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


def tradeoff_plot(
    results: list[dict],
    *,
    name: str,
    cost: Callable[[StrategySummary], float | None],
    cost_std: Callable[[StrategySummary], float | None],
    xlabel: str,
    title: str,
    log_x: bool = False,
) -> Plot | None:
    """Test metric (mean ± std over seeds) against a cost, with the Pareto frontier drawn through
    the non-dominated strategies. Failed runs are left out."""
    summaries = [s for s in summarize_strategies(results) if s.ok and cost(s) is not None]
    if log_x:
        summaries = [s for s in summaries if cost(s) > 0]
    if not summaries:
        return None
    metric = summaries[0].metric
    names = [s.strategy for s in summaries]
    fig, ax = _new_figure()
    points = [(cost(s), s.test_mean) for s in summaries]
    front = pareto_front(points, higher_better=higher_is_better(metric))
    if len(front) > 1:
        xs, ys = zip(*(points[i] for i in front))
        ax.plot(xs, ys, linestyle="--", color="#555555", linewidth=1.2, zorder=1, label="Pareto frontier")
    for i, s in enumerate(summaries):
        colour, marker = strategy_style(s.strategy, names)
        x, y = points[i]
        several = s.n > 1
        ax.errorbar(
            x,
            y,
            yerr=s.test_std if several else None,
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
    caption = (
        f"{title}. Dashed line: the Pareto frontier (no strategy is both cheaper and better): {frontier}."
        + (" Error bars: ± one std over seeds." if any(s.n > 1 for s in summaries) else "")
    )
    return Plot(name, title, caption, _png(fig))


def share_plot(results: list[dict]) -> Plot | None:
    """Test metric against the share of trainable weights (log x)."""
    return tradeoff_plot(
        results,
        name="metric_vs_trainable_share",
        cost=lambda s: None if s.trainable_share is None else 100.0 * s.trainable_share,
        cost_std=lambda s: None,
        xlabel="trainable share of weights (%, log scale)",
        title="Test metric vs trainable share",
        log_x=True,
    )


def time_plot(results: list[dict]) -> Plot | None:
    """Test metric against training time (training steps only)."""
    return tradeoff_plot(
        results,
        name="metric_vs_train_time",
        cost=lambda s: s.train_time_s,
        cost_std=lambda s: s.std_of(lambda r: r.train_info.train_time_s),
        xlabel="training time (s)",
        title="Test metric vs training time",
    )


def memory_plot(results: list[dict]) -> Plot | None:
    """Test metric against peak memory."""
    summaries = [s for s in summarize_strategies(results) if s.ok]
    kinds = {s.memory_kind for s in summaries if s.memory_kind}
    kind = f" ({'/'.join(sorted(kinds))})" if kinds else ""
    return tradeoff_plot(
        results,
        name="metric_vs_peak_memory",
        cost=lambda s: s.peak_memory_mb,
        cost_std=lambda s: s.std_of(lambda r: r.train_info.peak_memory_mb),
        xlabel=f"peak memory (MB{kind})",
        title="Test metric vs peak memory",
    )


def epochs_plot(results: list[dict]) -> Plot | None:
    """Validation metric per epoch per strategy (mean over seeds, band = ± std), from
    ``train_info.epochs`` of the successful runs at the largest data fraction."""
    summaries = [s for s in summarize_strategies(results) if s.ok]
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


def fractions_plot(results: list[dict]) -> Plot | None:
    """Test metric against the number of training examples, one line per strategy; None with fewer
    than two data fractions."""
    fractions = available_fractions(results)
    if len(fractions) < 2:
        return None
    names = sorted({run_strategy(r) for r in results if run_succeeded(r)})
    series: dict[str, list[tuple[float, float, float, int]]] = {}
    metric = None
    for fraction in fractions:
        for s in summarize_strategies(results, data_fraction=fraction):
            if not s.ok:
                continue
            metric = s.metric
            x = s.n_train if s.n_train is not None else fraction
            series.setdefault(s.strategy, []).append((x, s.test_mean, s.test_std or 0.0, s.n))
    if metric is None:
        return None
    fig, ax = _new_figure()
    uses_n_train = all(s.n_train is not None for s in summarize_strategies(results) if s.ok)
    for strategy in sorted(series, key=strategy_sort_key):
        points = sorted(series[strategy])
        colour, marker = strategy_style(strategy, names)
        xs, ys, stds, ns = zip(*points)
        ax.errorbar(xs, ys, yerr=[d if n > 1 else 0 for d, n in zip(stds, ns)], marker=marker, color=colour,
                    label=strategy, capsize=3, linewidth=1.6, markersize=6)
    xs_all = sorted({p[0] for pts in series.values() for p in pts})
    if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 4:
        ax.set_xscale("log")
    # Ticks at the measured sizes only, written out (not 2×10²).
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs_all, [f"{x:,.0f}" if uses_n_train else f"{x:g}" for x in xs_all])
    ax.set_xlabel("training examples (n_train)" if uses_n_train else "data fraction")
    ax.set_ylabel(_metric_axis_label(metric))
    title = f"Test {metric_label(metric)} vs training-set size"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    caption = f"{title}: where the lines cross, a strategy that trains more weights starts to pay off."
    return Plot("metric_vs_training_size", title, caption, _png(fig))


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def all_plots(results: list[dict]) -> list[Plot]:
    """Every plot the results support, in report order."""
    plots = [share_plot(results), time_plot(results), memory_plot(results), epochs_plot(results), fractions_plot(results)]
    return [p for p in plots if p is not None]
