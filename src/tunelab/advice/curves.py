"""Learning curves that look ahead: fit a metric against the number of labelled examples and extrapolate.

**Model.** An inverse power law ``y(n) = a - b * n**(-c)`` with ``b, c > 0`` for metrics where higher is
better (accuracy, macro-F1): ``a`` is the asymptote, reached from below. For perplexity and loss the sign
is turned, ``y(n) = a + b * n**(-c)``, a curve falling toward ``a``. ``a`` is kept within the metric's
range (:data:`METRIC_RANGE`: accuracy in [0, 1], perplexity >= 1, loss >= 0). This three-parameter
family is the standard one for learning curves (e.g. Hestness et al. 2017; Viering & Loog 2022, "The
shape of learning curves: a review").

**Fit.** With 4-6 points, unconstrained non-linear least squares (``curve_fit``) often diverges or
returns a negative ``b`` or an asymptote above 1. Instead ``c`` is searched on a fixed log-spaced grid
(:data:`C_GRID`, 0.01 to 3) and, for each ``c``, ``a`` and ``b`` come from *weighted linear* least squares
in ``x = n**(-c)`` under the constraints (the minimum of a convex 2-parameter problem lies either at the
unconstrained solution or on the boundary ``b = 0`` / ``a = bound``, so all candidates are evaluated in
closed form). The ``c`` with the smallest weighted error wins. It is deterministic, cannot diverge and
vectorises over bootstrap replicates. ``n`` is scaled by its largest value inside the fit for
numerical range; ``b`` is reported in the caller's units.

**Weights** toward larger ``n``: ``w_i = (n_i / n_max) ** weight_power`` (1 by default, i.e. ``w ∝ n``,
the inverse variance when seed-to-seed noise shrinks like ``1 / sqrt(n)``). Points near the largest ``n``
are the ones extrapolation depends on, and the small-data end of a learning curve often departs from the
power law (Hestness et al.'s "small data region"). The choice matters little: in simulations of 6
doubling points (n = 100-3200, noise sd 0.002-0.005, constant, shrinking with n, or with a small-data dip)
powers 0, 0.5 and 1 changed the median asymptote error by at most ~0.005; equal weights (0) did slightly
better under constant noise. What limits the asymptote is the span of ``n``: ``a`` came within 0.01 of
the truth in 95 % of noisy (sd 0.002) fits over n = 100-30,000 but in only ~75 % over 100-3,200.

**Uncertainty** — a bootstrap of the whole fit, ``n_boot`` replicates refitted on the same ``n``:

* ``resample="residuals"`` (the default when any point has fewer than 3 seeds): residuals inflated by
  ``sqrt(m / (m - 3))`` for the three fitted parameters are resampled (unweighted: the weights say where
  the law should hold best, not that noise shrinks; if it does, this is conservative) and added back to
  the fitted curve. Resampling *points* instead would, with 4-6 of them, often leave fewer than 4
  distinct ``n`` and no identifiable curve.
* ``resample="seeds"`` (default when every point has >= 3 seeds): each point's mean over seeds gets the seeds'
  part as the verdict treats it: its :func:`~tunelab.advice.stats.seed_variance` (sample variance over the number of
  seeds, ``S - 1`` degrees of freedom), drawn with Student's t on the points' Welch-Satterthwaite degrees of freedom
  (:func:`~tunelab.advice.stats.seed_replicates`). This
  measures seed-to-seed noise directly but not lack of fit. Resampling the seeds instead (tunelab until session 42)
  took their spread, known from 2 degrees of freedom with 3 seeds, as known and shrank it by ``(S - 1) / S``.
* ``measurement`` (optional, with either): bootstrap replicates of each point's own value over its evaluation
  examples, seeds held (:func:`tunelab.advice.stats.joint_replicates`, one example resample shared by points
  evaluated on the same examples). Replicate ``r`` of the fit adds row ``r`` of them (cyclically), centred, to its
  points: two strategies' fits whose rows came from the same example resamples stay paired in a crossover whatever
  their ``seed``, while their seeds' and residuals' draws are independent. Neither resample above sees
  this noise when the points agree: a curve flat at the majority class's score has residuals of exactly 0, and
  without it its interval had no width although each point was measured on a few validation examples. A
  residual also carries part of the same noise, so with both the interval errs wide, not narrow.

Intervals are percentile intervals of the replicates (of the curve, i.e. of the mean metric).
:meth:`PowerLawFit.interval` with ``observation=True`` adds the noise of one new measurement,
``sigma * t(m - 3)`` (sigma from the residuals; the t quantiles account for estimating it from so few
degrees of freedom) — what :func:`back_test` compares with. In simulation the 80 % observation interval
of a 5-point fit covered 70-93 % of the held-out points; of a 4-point fit only ~55 %: with 4 points
(one residual degree of freedom) read every interval as optimistic.

**Crossover** (:func:`crossover`): the smallest ``n`` beyond which strategy A (e.g. full fine-tuning)
stays ahead of strategy B (the best frozen/PEFT one) up to ``horizon_factor * n_max`` (100x), located on
a fine log grid with linear interpolation of the difference; its interval pairs the two fits' bootstrap
replicates row by row (an infinite bound means "possibly never within the horizon"). Fit the two with different
``seed``\ s: the strategies' seeds are separate runs, and their draws must not be the same.

**Fewer than 4 distinct n**: no fit (a 3-parameter curve through 3 points has no residual and no
uncertainty); the result says so and carries the points only.

>>> import numpy as np
>>> n = np.array([250, 500, 1000, 2000, 4000])
>>> acc = 0.90 - 1.2 * n ** -0.5
>>> fit = fit_power_law(n, acc, "accuracy", n_boot=200)
>>> round(fit.a, 3), round(fit.c, 2)
(0.9, 0.5)
>>> [round(p.value.estimate, 3) for p in fit.predictions]  # at 2x and 5x the largest n
[0.887, 0.891]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tunelab.advice.stats import Interval, seed_replicates, variance_over_seeds
from tunelab.metrics import METRIC_RANGE, higher_is_better  # the asymptote ``a`` lies in the metric's range

#: Exponents ``c`` searched. 0.01-3 covers flat to very fast saturation; neighbours differ by 2.4 %, far
#: below what 4-6 noisy points can resolve.
C_GRID: np.ndarray = np.geomspace(0.01, 3.0, 240)

#: Fewest distinct ``n`` for a fit: three parameters plus at least one residual degree of freedom.
MIN_POINTS = 4

#: Bootstrap replicates fitted at once (bounds the (replicates x grid) work arrays).
_BOOT_CHUNK = 512


@dataclass(frozen=True)
class CurvePoint:
    """The curve's value at ``n`` labelled examples, with its interval."""

    n: float
    value: Interval


@dataclass(frozen=True, eq=False)
class PowerLawFit:
    """A fitted learning curve (or, when ``fitted`` is false, the points and the reason there is none).

    ``a``, ``b``, ``c``: ``y = a - b n^-c`` (higher is better) or ``y = a + b n^-c`` (lower is better).
    ``predictions``: the curve at the requested multiples of the largest ``n``."""

    metric: str
    n: tuple[float, ...]
    y: tuple[float, ...]
    fitted: bool
    reason: str
    a: float | None = None
    b: float | None = None
    c: float | None = None
    weights: tuple[float, ...] = ()
    resample: str = "none"
    level: float = 0.95
    a_interval: Interval | None = None
    predictions: tuple[CurvePoint, ...] = ()
    # Bootstrap replicates (A, b', c) in the fit's internal orientation and units, and the residual pool.
    _params: np.ndarray | None = field(default=None, repr=False)
    _noise: np.ndarray | None = field(default=None, repr=False)
    #: Whether the bootstrap also resampled each point's own evaluation noise (``measurement``).
    measurement_noise: bool = False

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 otherwise: the fit works on ``sign * y``."""
        return 1.0 if higher_is_better(self.metric) else -1.0

    @property
    def n_max(self) -> float:
        return max(self.n)

    def predict(self, n: float | np.ndarray) -> np.ndarray:
        """The fitted curve at ``n``."""
        if not self.fitted:
            raise ValueError(f"no curve was fitted: {self.reason}")
        assert self.a is not None and self.b is not None and self.c is not None
        return self.a - self.sign * self.b * np.asarray(n, dtype=np.float64) ** -self.c

    def replicates(self, n: float | np.ndarray) -> np.ndarray:
        """The bootstrap replicates of the curve at ``n``: shape ``(n_boot,) + shape(n)``."""
        if self._params is None:
            raise ValueError(f"no curve was fitted: {self.reason}")
        scaled = np.asarray(n, dtype=np.float64) / self.n_max
        A, b, c = (p.reshape(p.shape + (1,) * scaled.ndim) for p in self._params.T)
        return self.sign * (A - b * scaled**-c)

    def interval(self, n: float, level: float | None = None, *, observation: bool = False, seed: int = 0) -> Interval:
        """Percentile interval of the curve at ``n`` (``observation=True``: of one new measurement there,
        the curve plus a resampled residual at the noise level of the largest ``n``)."""
        level = self.level if level is None else level
        reps = self.replicates(float(n))
        method = "residual" if self.resample == "residuals" else self.resample
        if observation:
            assert self._noise is not None
            # A new measurement's noise is sigma * t(m - 3): sigma is estimated from m - 3 residual degrees
            # of freedom, and with so few the normal (or resampled-residual) quantiles are far too narrow.
            m = len(self.n)
            sigma = float(np.sqrt(np.sum(self._noise**2) / m))
            reps = reps + sigma * np.random.default_rng(seed).standard_t(m - 3, size=reps.size)
            method += " bootstrap, observation"
        else:
            method += " bootstrap"
        lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
        return Interval(float(self.predict(n)), float(lo), float(hi), level, method, len(self.n))


@dataclass(frozen=True)
class Crossover:
    """When strategy A overtakes strategy B for good, by the fitted curves.

    ``status``: ``"ahead"`` (A already leads at the largest observed n; ``n_cross`` is where it last took
    the lead, the smallest n when it always did), ``"crosses"`` (between ``horizon[0]`` and
    ``horizon[1]``), ``"never"`` (A still behind at ``horizon[1]``), ``"no_fit"`` (a curve is missing).
    ``n_cross``: the estimate with its interval (bounds are ``inf`` where replicates never cross).
    ``share_overtaking``: the share of bootstrap replicates in which A leads at ``horizon[1]``."""

    status: Literal["ahead", "crosses", "never", "no_fit"]
    horizon: tuple[float, float]
    n_cross: Interval | None = None
    share_overtaking: float | None = None
    message: str = ""


@dataclass(frozen=True)
class BackTest:
    """Fit on all but the largest ``n``, predict it. ``error = prediction - observed``;
    ``baseline_error = last_observed - observed`` (the "it will stay where it is" forecast);
    ``covered``: whether the ``prediction`` interval (for one observation) contains the observed value."""

    n_target: float
    observed: float
    last_observed: float
    baseline_error: float
    fit: PowerLawFit
    prediction: Interval | None = None
    error: float | None = None
    covered: bool | None = None

    @property
    def beats_baseline(self) -> bool | None:
        return None if self.error is None else abs(self.error) < abs(self.baseline_error)


# ------------------------------------------------------------------------------------------------ fitting


def _fit_many(x_n: np.ndarray, Z: np.ndarray, w: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Constrained weighted least squares of ``Z[r] ~ A - b x_n**-c`` for every row; returns (rows, 3)
    ``(A, b, c)``. ``w`` sums to 1; ``lo <= A <= hi``; ``b >= 0``."""
    X = x_n[None, :] ** -C_GRID[:, None]  # (G, m)
    sx = X @ w  # weighted moments of x per c: (G,)
    sxx = (X**2) @ w
    var_x = np.maximum(sxx - sx**2, 1e-300)
    out = np.empty((Z.shape[0], 3))
    for start in range(0, Z.shape[0], _BOOT_CHUNK):
        z = Z[start : start + _BOOT_CHUNK]
        sz = z @ w  # (R,)
        szz = (z**2) @ w
        sxz = z @ (w[:, None] * X.T)  # (R, G)

        def sse(A: np.ndarray, b: np.ndarray, szz: np.ndarray = szz, sz: np.ndarray = sz, sxz: np.ndarray = sxz) -> np.ndarray:
            # sum_i w_i (z_i - A + b x_i)^2, expanded in moments so that no (R, G, m) array is built.
            return szz[:, None] - 2 * A * sz[:, None] + A**2 + b**2 * sxx + 2 * b * sxz - 2 * A * b * sx

        b_free = (sx * sz[:, None] - sxz) / var_x  # slope of z on x is -b
        A_free = sz[:, None] + b_free * sx
        ok = (b_free >= 0) & (A_free >= lo) & (A_free <= hi)
        cands = [(np.where(ok, A_free, 0.0), np.where(ok, b_free, 0.0), ok)]
        flat_A = np.broadcast_to(np.clip(sz, lo, hi)[:, None], b_free.shape)
        cands.append((flat_A, np.zeros_like(b_free), np.ones_like(ok)))
        for bound in (lo, hi):
            if np.isfinite(bound):
                b_at = np.maximum((bound * sx - sxz) / sxx, 0.0)
                cands.append((np.full_like(b_at, bound), b_at, np.ones_like(ok)))
        errors = np.stack([np.where(feasible, sse(A, b), np.inf) for A, b, feasible in cands])
        which = np.argmin(errors, axis=0)  # (R, G): best candidate per c
        A_all = np.take_along_axis(np.stack([A for A, _, _ in cands]), which[None], 0)[0]
        b_all = np.take_along_axis(np.stack([b for _, b, _ in cands]), which[None], 0)[0]
        best_c = np.argmin(np.take_along_axis(errors, which[None], 0)[0], axis=1)  # (R,)
        rows = np.arange(z.shape[0])
        out[start : start + z.shape[0]] = np.column_stack([A_all[rows, best_c], b_all[rows, best_c], C_GRID[best_c]])
    return out


def _points(n: Sequence[float], y: Sequence[float] | Sequence[Sequence[float]]) -> tuple[np.ndarray, list[np.ndarray]]:
    n_arr = np.asarray(n, dtype=np.float64)
    values = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in y]
    if n_arr.ndim != 1 or len(values) != n_arr.size:
        raise ValueError("n and y must have one entry per point")
    if np.any(n_arr <= 0) or len(set(n_arr.tolist())) != n_arr.size:
        raise ValueError("n must be positive and distinct (put several seeds of one n in one entry of y)")
    if any(v.size == 0 or not np.all(np.isfinite(v)) for v in values):
        raise ValueError("every point needs at least one finite value")
    order = np.argsort(n_arr)
    return n_arr[order], [values[i] for i in order]


def fit_power_law(
    n: Sequence[float],
    y: Sequence[float] | Sequence[Sequence[float]],
    metric: str = "accuracy",
    *,
    weight_power: float = 1.0,
    resample: Literal["auto", "residuals", "seeds"] = "auto",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    horizons: Sequence[float] = (2.0, 5.0),
    measurement: np.ndarray | None = None,
) -> PowerLawFit:
    """Fit ``metric`` against ``n`` labelled examples (see module doc). ``y[i]`` is one value or the
    values of several seeds at ``n[i]``; the curve is fitted to the per-point means. ``horizons``:
    multiples of the largest ``n`` to predict at. ``measurement``: replicates of each point's value over its
    evaluation examples, shape ``(replicates, len(n))`` with columns in the order of ``n``; the bootstrap adds
    them (see module doc)."""
    higher_is_better(metric)
    if metric not in METRIC_RANGE:
        raise ValueError(f"no range known for metric {metric!r}")
    n_arr, values = _points(n, y)
    means = np.array([v.mean() for v in values])
    m = n_arr.size
    if m < MIN_POINTS:
        return PowerLawFit(metric, tuple(n_arr.tolist()), tuple(means.tolist()), False,
                           f"{m} distinct n: a 3-parameter curve needs at least {MIN_POINTS}; points only")
    if resample == "auto":
        resample = "seeds" if all(v.size >= 3 for v in values) else "residuals"
    if resample == "seeds" and any(v.size < 2 for v in values):
        raise ValueError("resample='seeds' needs at least 2 seeds at every n")
    if resample not in ("residuals", "seeds"):
        raise ValueError(f"unknown resample {resample!r}")

    sign = 1.0 if higher_is_better(metric) else -1.0
    lo_y, hi_y = METRIC_RANGE[metric]
    lo, hi = (lo_y, hi_y) if sign > 0 else (-hi_y, -lo_y)  # bounds on A = sign * a
    scaled = n_arr / n_arr[-1]
    w_rel = scaled**weight_power  # 1 at the largest n
    w = w_rel / w_rel.sum()

    A, b, c = _fit_many(scaled, (sign * means)[None, :], w, lo, hi)[0]
    z_hat = A - b * scaled**-c
    # Residuals inflated for the 3 fitted parameters. Resampled unweighted: the weights say where the
    # power law should hold best, not that the noise shrinks as n grows (if it does, this is conservative).
    noise = (sign * means - z_hat) * np.sqrt(m / (m - 3))
    noise -= noise.mean()

    rng = np.random.default_rng(seed)
    if resample == "residuals":
        Z = z_hat + rng.choice(noise, size=(n_boot, m))
    else:
        Z = sign * (means + seed_replicates([variance_over_seeds(v) for v in values], n_boot, rng))
    if measurement is not None:
        R = np.asarray(measurement, dtype=np.float64)
        if R.ndim != 2 or R.shape[1] != m or R.shape[0] == 0 or not np.all(np.isfinite(R)):
            raise ValueError(f"measurement must be finite replicates of shape (k, {m}), got {R.shape}")
        R = R[:, np.argsort(np.asarray(n, dtype=np.float64), kind="stable")]  # the points' order, as _points sorts them
        Z = Z + sign * (R - R.mean(axis=0))[np.arange(n_boot) % R.shape[0]]
    params = _fit_many(scaled, Z, w, lo, hi)

    noise_note = " and each point's evaluation noise" if measurement is not None else ""
    fit = PowerLawFit(
        metric, tuple(n_arr.tolist()), tuple(means.tolist()), True,
        f"inverse power law, weighted least squares (weights (n / n_max)^{weight_power:g}), {resample}{noise_note} bootstrap",
        a=float(sign * A), b=float(b * n_arr[-1] ** c), c=float(c), weights=tuple(w.tolist()),
        resample=resample, level=level, _params=params, _noise=noise, measurement_noise=measurement is not None,
    )
    lo_a, hi_a = np.quantile(sign * params[:, 0], [(1 - level) / 2, (1 + level) / 2])
    a_ci = Interval(float(sign * A), float(lo_a), float(hi_a), level, f"{resample} bootstrap", m)
    predictions = tuple(CurvePoint(h * n_arr[-1], fit.interval(h * n_arr[-1])) for h in horizons)
    object.__setattr__(fit, "a_interval", a_ci)
    object.__setattr__(fit, "predictions", predictions)
    return fit


# ---------------------------------------------------------------------------------------------- crossover


def _overtake_at(d: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each row of ``d`` (A's lead over B on ``grid``): the smallest n after which the lead stays
    positive to the grid's end (linear interpolation in log n); ``inf`` if A is not ahead at the end."""
    ahead_end = d[:, -1] > 0
    behind = d <= 0
    # Last grid index where A is not ahead (-1 when ahead everywhere).
    last = np.where(behind.any(axis=1), d.shape[1] - 1 - np.argmax(behind[:, ::-1], axis=1), -1)
    out = np.full(d.shape[0], np.inf)
    always = ahead_end & (last < 0)
    out[always] = grid[0]
    cross = ahead_end & (last >= 0)
    j = last[cross]
    d0, d1 = d[cross, j], d[cross, j + 1]
    t = d0 / (d0 - d1)
    log_g = np.log(grid)
    out[cross] = np.exp(log_g[j] + t * (log_g[j + 1] - log_g[j]))
    return out


def crossover(
    a: PowerLawFit, b: PowerLawFit, *, horizon_factor: float = 100.0, level: float = 0.95, grid_size: int = 2048
) -> Crossover:
    """How many labelled examples strategy ``a`` needs to overtake ``b`` for good (see :class:`Crossover`)."""
    if a.metric != b.metric:
        raise ValueError(f"curves of different metrics: {a.metric} vs {b.metric}")
    n_max = max(a.n_max, b.n_max)
    horizon = (n_max, horizon_factor * n_max)
    if not (a.fitted and b.fitted):
        missing = ", ".join(name for name, f in (("A", a), ("B", b)) if not f.fitted)
        return Crossover("no_fit", horizon, message=f"no curve for {missing}: points only")
    grid = np.geomspace(min(min(a.n), min(b.n)), horizon[1], grid_size)
    sign = a.sign
    point = _overtake_at(sign * (a.predict(grid) - b.predict(grid))[None, :], grid)[0]
    assert a._params is not None and b._params is not None
    rows = min(len(a._params), len(b._params))
    reps = _overtake_at(sign * (a.replicates(grid)[:rows] - b.replicates(grid)[:rows]), grid)
    # No interpolation between replicates: an infinite one must stay infinite.
    lo = float(np.quantile(reps, (1 - level) / 2, method="lower"))
    hi = float(np.quantile(reps, (1 + level) / 2, method="higher"))
    ci = Interval(float(point), lo, hi, level, "percentile bootstrap (paired replicates of both fits)", len(a.n))
    share = float(np.mean(np.isfinite(reps)))
    if not np.isfinite(point):
        status: Literal["ahead", "crosses", "never"] = "never"
        message = f"never within [{horizon[0]:.0f}, {horizon[1]:.0f}] examples"
    elif point <= n_max:
        status, message = "ahead", f"already ahead at {n_max:.0f} examples"
    else:
        status, message = "crosses", f"overtakes at about {point:.0f} examples"
    return Crossover(status, horizon, ci, share, message)


# ---------------------------------------------------------------------------------------------- back-test


def back_test(
    n: Sequence[float],
    y: Sequence[float] | Sequence[Sequence[float]],
    metric: str = "accuracy",
    *,
    level: float = 0.8,
    **fit_options: object,
) -> BackTest:
    """Fit on every point but the largest ``n`` and predict that one. Needs ``MIN_POINTS + 1`` points for
    a prediction; with fewer the result has the baseline error only (``fit.fitted`` is false)."""
    n_arr, values = _points(n, y)
    observed, last = float(values[-1].mean()), float(values[-2].mean()) if len(values) > 1 else float("nan")
    fit = fit_power_law(n_arr[:-1], values[:-1], metric, level=level, horizons=(), **fit_options)  # type: ignore[arg-type]
    result = BackTest(float(n_arr[-1]), observed, last, last - observed, fit)
    if not fit.fitted:
        return result
    prediction = fit.interval(float(n_arr[-1]), level, observation=True)
    return BackTest(
        float(n_arr[-1]), observed, last, last - observed, fit,
        prediction, prediction.estimate - observed, prediction.contains(observed),
    )
