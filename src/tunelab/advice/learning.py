"""Learning curves of a comparison over data fractions: each strategy's validation metric against the
number of labelled training examples, fitted (:func:`tunelab.advice.curves.fit_power_law`) and read
ahead to 2× and 5× the labels, and where full fine-tuning would overtake the best frozen/PEFT strategy
(:func:`tunelab.advice.curves.crossover`).

The points are given per strategy (:func:`tunelab.advice.choose.learning_curves_from_results` builds
them from run records), so this module knows nothing of run records or strategy names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunelab.advice.curves import MIN_POINTS, Crossover, PowerLawFit, crossover, fit_power_law

#: Bootstrap replicates of each fit.
N_BOOT = 2000


@dataclass(frozen=True)
class LearningCurves:
    """The fitted curves (one :class:`PowerLawFit` per strategy: fitted, or the points and why not),
    which strategy is full fine-tuning and which the best frozen/PEFT one, and their crossover."""

    metric: str
    split: str
    n_fractions: int
    curves: dict[str, PowerLawFit] = field(default_factory=dict)
    full: str | None = None
    partial: str | None = None
    crossover: Crossover | None = None

    @property
    def n_sizes(self) -> int:
        """How many distinct training-set sizes were run, over every strategy."""
        return len({n for fit in self.curves.values() for n in fit.n})

    @property
    def fitted(self) -> bool:
        """Whether any curve was fitted (at least :data:`MIN_POINTS` training-set sizes)."""
        return any(fit.fitted for fit in self.curves.values())

    def statement(self) -> str | None:
        """One sentence on the crossover of full fine-tuning over the best frozen/PEFT strategy, by the
        fitted curves; None when not both were fitted."""
        c = self.crossover
        if c is None or c.status == "no_fit" or c.n_cross is None:
            return None
        where = f"full fine-tuning ({self.full}) against {self.partial}, by their fitted {self.split} curves"
        if c.status == "never":
            return (f"Learning curves: {where}: never within range — full fine-tuning is still behind at "
                    f"{c.horizon[1]:,.0f} labelled examples ({100 * (c.share_overtaking or 0):.0f} % of the "
                    "bootstrap fits overtake by then).")
        low, high = c.n_cross.low, c.n_cross.high
        bounds = f"{level_pct(c.n_cross.level)} interval {_count(low)} to {_count(high)}"
        if c.status == "ahead":
            return (f"Learning curves: {where}: full fine-tuning already leads at {c.horizon[0]:,.0f} examples; it took "
                    f"the lead at about {c.n_cross.estimate:,.0f} ({bounds}).")
        return f"Learning curves: {where}: full fine-tuning overtakes at about {c.n_cross.estimate:,.0f} labelled examples ({bounds})."

    def to_dict(self) -> dict[str, Any]:
        """Plain values: per strategy the points, the fit and the predictions with their intervals."""
        curves = {}
        for name, fit in self.curves.items():
            curves[name] = {
                "n": list(fit.n), "y": list(fit.y), "fitted": fit.fitted, "reason": fit.reason,
                "a": fit.a, "b": fit.b, "c": fit.c,
                "a_low": fit.a_interval.low if fit.a_interval else None,
                "a_high": fit.a_interval.high if fit.a_interval else None,
                "predictions": [{"n": p.n, "estimate": p.value.estimate, "low": p.value.low, "high": p.value.high,
                                 "level": p.value.level} for p in fit.predictions],
            }  # fmt: skip
        c = self.crossover
        return {
            "metric": self.metric, "split": self.split, "n_fractions": self.n_fractions, "curves": curves,
            "full": self.full, "partial": self.partial,
            "crossover": None if c is None else {
                "status": c.status, "message": c.message, "statement": self.statement(), "horizon": list(c.horizon),
                "estimate": c.n_cross.estimate if c.n_cross else None,
                "low": c.n_cross.low if c.n_cross else None, "high": c.n_cross.high if c.n_cross else None,
            },
        }  # fmt: skip


def too_few_sizes(n_fractions: int, n_sizes: int) -> str:
    """Why no learning curve was fitted, in a sentence without its full stop: fewer than :data:`MIN_POINTS` training-set
    sizes. Data fractions less than one example apart train on the same examples and are one size, so four fractions
    can still be too few.

    >>> too_few_sizes(3, 3)
    'Only 3 data fractions were run: a learning curve needs at least 4 training-set sizes, so none is fitted'
    """
    if n_sizes < n_fractions:
        return (f"{n_fractions} data fractions were run, but on only {n_sizes} distinct training-set sizes (fractions "
                f"less than one example apart train on the same examples): a learning curve needs at least {MIN_POINTS} "
                "sizes, so none is fitted")
    return (f"Only {n_fractions} data fractions were run: a learning curve needs at least {MIN_POINTS} training-set "
            "sizes, so none is fitted")


def level_pct(level: float) -> str:
    """``95 %``."""
    return f"{100 * level:g} %"


def _count(n: float) -> str:
    return "never" if n == float("inf") else f"{n:,.0f}"


def fit_learning_curves(
    points: Mapping[str, Sequence[tuple[float, Sequence[float]]]],
    metric: str,
    *,
    split: str = "validation",
    n_fractions: int,
    full: str | None = None,
    partial: str | None = None,
    level: float = 0.95,
    measurement: Mapping[str, np.ndarray] | None = None,
) -> LearningCurves:
    """Fit each strategy's ``points`` (``[(n_train, [value per seed]), ...]``); with fewer than
    :data:`MIN_POINTS` distinct sizes a strategy keeps its points only. Two data fractions that train on as many
    examples (fractions closer than one example apart) make one point, their values together. ``full`` and
    ``partial`` name the two strategies whose crossover is wanted (either may be None). ``measurement``: per
    strategy, bootstrap replicates of each point's value over its evaluation examples (``(replicates, points)``,
    columns in the order of its ``points``), which the fit's bootstrap resamples too
    (:func:`tunelab.advice.curves.fit_power_law`); a strategy without them is fitted from its points alone."""
    curves = {}
    for i_name, (name, pts) in enumerate(points.items()):
        if not pts:
            continue
        merged: dict[float, list[float]] = {}
        columns: dict[float, list[int]] = {}
        for i, (n_train, values) in enumerate(pts):
            merged.setdefault(float(n_train), []).extend(values)
            columns.setdefault(float(n_train), []).append(i)
        n, y = zip(*sorted(merged.items()))
        replicates = (measurement or {}).get(name)
        if replicates is not None:  # points of one size merged: their replicates averaged, as their values are
            replicates = np.column_stack([np.asarray(replicates)[:, columns[size]].mean(axis=1) for size in n])
        # a seed per strategy: their seeds are separate runs; the measurement's rows pair them (fit_power_law)
        curves[name] = fit_power_law(list(n), [list(v) for v in y], metric, level=level, n_boot=N_BOOT, seed=i_name,
                                     measurement=replicates)
    cross = None
    if full in curves and partial in curves:
        cross = crossover(curves[full], curves[partial], level=level)
    return LearningCurves(metric, split, n_fractions, curves, full, partial, cross)


__all__ = ["MIN_POINTS", "N_BOOT", "LearningCurves", "fit_learning_curves", "level_pct", "too_few_sizes"]
