"""Advice before training, calibrated on measured comparisons (issue 15; replaces the hand-written tiers).

The model is small on purpose: for each strategy ``s`` a ridge regression from the standardised signals
``z`` to the strategy's expected validation metric relative to the best strategy of the task, in points::

    gap_s(z) = b_s + w_s . z        (<= 0 when s is expected to lose to the best)

fitted on the records of ``benchmarks/bench_verdict.py`` (one per task: model x dataset x label budget,
every strategy measured with tunelab's ``compare``) and stored as coefficients in
``tunelab/advice/calibration.json`` with the command that produced it
(``python benchmarks/bench_verdict.py calibrate``). The advice ranks the strategies by ``gap_s`` and names
the signal that decided: the one with the largest share of the margin between the first and the second,
``(w_first - w_second)_j z_j`` (or the strategies' base rates, ``b_first - b_second``, when no signal
outweighs them).

The signals (:data:`SIGNALS`) are what can be measured before training in seconds: the labels per class
(log10), the head probe's gain over the majority class, LogME on the frozen features
(:mod:`tunelab.advice.features`), and the domain distance of ``tunelab recommend`` read on the common scale of
:func:`tunelab.advice.domain.farness` (0 where *moderate* starts, 1 where *far* starts): the signal it used differs
by model (an LM-loss ratio, a masked-LM ratio, a centroid distance), and their raw values are in different units.
A domain that was not measured, or a head probe that could not run (a class of one example), counts as the benchmark's
mean (it moves no score).

**How much the signals are trusted** is measured, not set: the ridge penalty is chosen from :data:`ALPHA_GRID` by
held-out error on the records being calibrated on (the squared error of every strategy's predicted gap on the
records left out). What is left out is what the advice must carry to: a *dataset* (every record of one ``data`` at
once, where the records name theirs, as the benchmark's do), else one record. Leaving one record out would keep the
same dataset's other label budgets in the fit, where a signal that only tells the datasets apart (LogME does) looks
predictive and is not on the next dataset. Records of a single dataset therefore get the base rates: nothing in them
shows that a signal carries to another. The grid ends at infinity: the base rates alone (every weight 0), the model
to beat.
When no finite penalty predicts the records left out better than the base rates, the calibration is the base rates,
and the advice says so: the signals were measured, and on these records they did not tell the strategies apart
beyond their averages. The same search runs wherever the records come from (the verdict benchmark's, or a user's).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.advice.domain import DOMAIN_THRESHOLDS, farness

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")

SIGNALS = ("log10_examples_per_class", "probe_gain", "logme", "domain_farness")
SIGNAL_LABELS = {
    "log10_examples_per_class": "labels per class",
    "probe_gain": "the frozen-feature head probe",
    "logme": "LogME of the frozen features",
    "domain_farness": "the domain distance",
    "base rate": "the strategies' base rates over the benchmark",
}
ALPHA_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0, math.inf)
"""Ridge penalties (standardised units) the calibration chooses from; ``inf`` is the base rates alone."""


def signal_vector(signals: dict[str, Any]) -> dict[str, float]:
    """The model's inputs from a record's (or ``recommend``'s) measured signals."""
    domain = signals.get("domain") or {}
    method = domain.get("domain_signal")
    distance = domain.get(method) if method else None
    measured = method in DOMAIN_THRESHOLDS and isinstance(distance, (int, float)) and math.isfinite(distance)
    return {
        "log10_examples_per_class": math.log10(max(float(signals["examples_per_class"]), 1.0)),
        # a probe that could not run (a class of one example) counts as the benchmark's mean, as an unmeasured domain
        "probe_gain": math.nan if signals.get("probe_gain") is None else float(signals["probe_gain"]),
        "logme": float(signals["logme"]),
        "domain_farness": farness(method, distance) if measured else math.nan,
    }


def _gaps(record: dict[str, Any]) -> dict[str, float]:
    """Each strategy's validation metric minus the best one's, in points."""
    values = {s: v["validation"] for s, v in record["strategies"].items() if v.get("validation") is not None}
    best = max(values.values())
    return {s: 100.0 * (v - best) for s, v in values.items()}


def _design(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised signals ``Z`` of ``records``, with the mean and std used (a signal a record lacks counts as
    the mean, as in :func:`advise`)."""
    X = np.array([[signal_vector(r["signals"])[k] for k in SIGNALS] for r in records], dtype=float)
    mean = np.nanmean(X, axis=0) if len(X) else np.zeros(len(SIGNALS))
    mean = np.where(np.isnan(mean), 0.0, mean)
    X = np.where(np.isnan(X), mean, X)
    std = X.std(0) if len(X) else np.ones(len(SIGNALS))
    std[std < 1e-9] = 1.0
    return (X - mean) / std, mean, std


def _ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Intercept and weights of a ridge regression of ``y`` on ``z`` (the intercept unpenalised); ``alpha=inf``:
    the mean alone."""
    b = float(y.mean())
    if math.isinf(alpha):
        return b, np.zeros(z.shape[1])
    zc = z - z.mean(0)
    w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ (y - b))
    return b - float(z.mean(0) @ w), w


def _fit(records: list[dict[str, Any]], alpha: float) -> tuple[np.ndarray, np.ndarray, dict[str, tuple]]:
    Z, mean, std = _design(records)
    gaps = [_gaps(r) for r in records]
    fits = {}
    for s in sorted({s for g in gaps for s in g}):
        rows = [i for i, g in enumerate(gaps) if s in g]
        fits[s] = (*_ridge(Z[rows], np.array([gaps[i][s] for i in rows]), alpha), len(rows),
                   float(np.mean([gaps[i][s] for i in rows])))
    return mean, std, fits


def held_out_groups(records: list[dict[str, Any]]) -> list[Any]:
    """What the penalty search leaves out together: each record's dataset (``data``) where every record names one,
    else each record alone."""
    if records and all(r.get("data") for r in records):
        return [r["data"] for r in records]
    return list(range(len(records)))


def _held_out_error(records: list[dict[str, Any]], alpha: float) -> float:
    """Mean squared error (points²) of every strategy's predicted gap on each group of :func:`held_out_groups` left
    out in turn (fitted on the others)."""
    groups = held_out_groups(records)
    errors = []
    for group in dict.fromkeys(groups):
        mean, std, fits = _fit([r for r, g in zip(records, groups) if g != group], alpha)
        for record in (r for r, g in zip(records, groups) if g == group):
            x = signal_vector(record["signals"])
            z = np.array([0.0 if math.isnan(x[k]) else (x[k] - m) / sd for k, m, sd in zip(SIGNALS, mean, std)])
            errors += [(fits[s][0] + float(fits[s][1] @ z) - gap) ** 2 for s, gap in _gaps(record).items() if s in fits]
    return float(np.mean(errors)) if errors else math.nan


def choose_alpha(records: list[dict[str, Any]], grid: tuple[float, ...] = ALPHA_GRID) -> tuple[float, dict[float, float]]:
    """The penalty of ``grid`` with the smallest held-out error (:func:`held_out_groups` left out in turn; ties: the
    larger penalty, fewer trusted signals), and each penalty's error. Fewer than 3 records, or fewer than 2 groups to
    hold out: the base rates."""
    if len(records) < 3 or len(set(held_out_groups(records))) < 2:
        return math.inf, {}
    errors = {a: _held_out_error(records, a) for a in grid}
    return min(sorted(errors, reverse=True), key=lambda a: errors[a]), errors


def fit_calibration(records: list[dict[str, Any]], *, alpha: float | None = None) -> dict[str, Any]:
    """Fit the per-strategy ridge regressions on benchmark records; return the JSON-ready coefficients.
    ``alpha=None``: the penalty is chosen by :func:`choose_alpha` on the same records."""
    search: dict[float, float] = {}
    if alpha is None:
        alpha, search = choose_alpha(records)
    mean, std, fits = _fit(records, alpha)
    metrics = sorted({r["metric"] for r in records if r.get("metric")})
    coefficients = {s: {"intercept": round(b, 4), **{k: round(float(v), 4) for k, v in zip(SIGNALS, w)},
                        "tasks": n, "mean_gap_points": round(g, 3)} for s, (b, w, n, g) in fits.items()}
    out = {
        "model": "per strategy: validation metric minus the task's best (points) = intercept + sum_k w_k * z_k, "
                 "z_k = (signal_k - mean_k) / std_k; ridge, alpha in standardised units (inf: the base rates alone)",
        "alpha": "inf" if math.isinf(alpha) else alpha,
        # the metric whose gaps were learnt (the records'): the advice says so when asked for another
        "metric": metrics[0] if len(metrics) == 1 else None,
        "signals": list(SIGNALS),
        "mean": {k: round(float(v), 6) for k, v in zip(SIGNALS, mean)},
        "std": {k: round(float(v), 6) for k, v in zip(SIGNALS, std)},
        "strategies": coefficients,
    }
    if search:
        grouped = any(isinstance(g, str) for g in held_out_groups(records))
        out["alpha_search"] = {"chosen_by": f"leave one {'dataset' if grouped else 'record'} out: mean squared error of "
                                            "the predicted gaps (points²)",
                               "error": {("inf" if math.isinf(a) else str(a)): round(e, 3) for a, e in search.items()}}
    return out


def signals_used(calibration: dict[str, Any]) -> bool:
    """Whether any signal has a weight (``False``: the calibration is the strategies' base rates alone)."""
    return any(c.get(k, 0.0) != 0.0 for c in calibration["strategies"].values() for k in calibration["signals"])


def load_calibration(path: Path | None = None) -> dict[str, Any] | None:
    """The calibration file's coefficients, or ``None`` (the advice then falls back to its tiers) when there is
    none or it was fitted on signals this version does not measure (an older file)."""
    path = Path(path) if path is not None else CALIBRATION_PATH
    if not path.is_file():
        return None
    calibration = json.loads(path.read_text())
    return calibration if set(calibration.get("signals", ())) <= set(SIGNALS) else None


def advise(signals: dict[str, Any], calibration: dict[str, Any], *, allowed: list[str] | None = None,
           metric: str = "accuracy") -> dict[str, Any]:
    """Rank the calibrated strategies for ``signals``.

    Returns ``{"strategy", "scores" (expected gap in points, by strategy), "ranking", "decided_by",
    "contributions" (per signal, to the margin of the first over the second), "margin_points", "metric" (asked for),
    "calibrated_metric" (the one the gaps were learnt in; None when the file does not say)}``;
    ``allowed`` restricts the ranking (the strategies that fit a budget)."""
    learnt = {"metric": metric, "calibrated_metric": calibration.get("metric")}
    x = signal_vector(signals)
    z = {k: 0.0 if math.isnan(x[k]) else (x[k] - calibration["mean"][k]) / calibration["std"][k]
         for k in calibration["signals"]}
    coefs = {s: c for s, c in calibration["strategies"].items() if allowed is None or s in allowed}
    scores = {s: c["intercept"] + sum(c[k] * z[k] for k in calibration["signals"]) for s, c in coefs.items()}
    ranking = sorted(scores, key=scores.get, reverse=True)
    if not ranking:
        return {"strategy": None, "scores": {}, "ranking": [], "decided_by": None, "contributions": {}, "margin_points": None,
                **learnt}
    first = ranking[0]
    second = ranking[1] if len(ranking) > 1 else None
    contributions: dict[str, float] = {}
    if second is not None:
        a, b = coefs[first], coefs[second]
        contributions = {k: (a[k] - b[k]) * z[k] for k in calibration["signals"]}
        contributions["base rate"] = a["intercept"] - b["intercept"]
    decided = max(contributions, key=lambda k: contributions[k]) if contributions else "base rate"
    return {
        "strategy": first, "scores": scores, "ranking": ranking, "decided_by": decided,
        "contributions": contributions, "margin_points": scores[first] - scores[second] if second else None,
        "inputs": x, "base_rates_only": not signals_used(calibration), **learnt,
    }


def learnt_in_other_metric(advice: dict[str, Any]) -> str:
    """The clause that says the calibration learnt its gaps in another metric than the one asked for ("" when it
    learnt them in that one)."""
    from tunelab.advice.choose import metric_label

    asked, learnt = advice.get("metric", "accuracy"), advice.get("calibrated_metric")
    if learnt == asked:
        return ""
    what = f"validation {metric_label(learnt)} only" if learnt else "a metric its file does not name"
    return (f"the calibration learnt the strategies' gaps in {what}, none in {metric_label(asked)}: this is its "
            f"{metric_label(learnt) if learnt else 'own'} ranking, not one learnt for {metric_label(asked)}")


def _probe_text(advice: dict[str, Any]) -> str:
    """The head probe as the advice reports it: in the metric asked for (``features``), else the calibration's input."""
    from tunelab.advice.choose import metric_label

    features, x = advice.get("features") or {}, advice.get("inputs", {})
    gain = features.get("probe_score_gain", x.get("probe_gain") if x else None)
    if gain is None or (isinstance(gain, float) and math.isnan(gain)):
        return "head probe not run (a class has a single training example, which no fold can hold out)"
    score = features.get("probe_score")
    metric = metric_label(features.get("probe_metric") or advice.get("metric", "accuracy"))
    return (f"head probe {metric} {score:.3f}, " if score is not None else "head probe ") + \
        f"{gain:.2f} of the way from the majority class to perfect{f' {metric}' if score is None else ''}"


def explain(advice: dict[str, Any]) -> str:
    """One sentence: what is advised, by how much it is expected to lead (in the metric the calibration learnt), and
    which signal decided; where the metric asked for is another, it says so."""
    from tunelab.advice.choose import metric_label

    if advice["strategy"] is None:
        return "no calibrated strategy to advise"
    ranking = advice["ranking"]
    runner = ranking[1] if len(ranking) > 1 else None
    x = advice.get("inputs", {})
    facts = (f"{10 ** x['log10_examples_per_class']:.0f} labels per class on average, {_probe_text(advice)}, "
             f"LogME {x['logme']:.2f}") if x else ""
    learnt = advice.get("calibrated_metric")
    unit = f"{metric_label(learnt)} points" if learnt else "points"
    lead = (f", expected {advice['margin_points']:.1f} {unit} ahead of {runner} on validation" if runner else "")
    decided = SIGNAL_LABELS.get(advice["decided_by"], advice["decided_by"])
    if advice.get("base_rates_only"):
        decided += (": on datasets left out of the calibration, the signals did not predict the strategies' gaps better "
                    "than these averages, so they carry no weight")
    other = learnt_in_other_metric(advice)
    return (f"calibrated advice: {advice['strategy']}{lead}; decided by {decided}" + (f" ({facts})" if facts else "")
            + (f"; {other}" if other else ""))


def explain_states(advice: dict[str, Any]) -> list[str]:
    """The measured signals (keys of ``recommend``'s ``signals``) that :func:`explain`'s sentence states: the head probe
    as :func:`_probe_text` says it (in the accuracy as well when that is its metric) and LogME."""
    if advice["strategy"] is None or not advice.get("inputs"):
        return []
    features = advice.get("features") or {}
    gain = features.get("probe_score_gain", advice["inputs"].get("probe_gain"))
    probe = ["probe_accuracy", "probe_gain", "probe_metric", "probe_score", "probe_score_gain"]
    if gain is None or (isinstance(gain, float) and math.isnan(gain)):
        stated = probe  # "head probe not run": every probe value is None
    elif features.get("probe_score") is None:
        stated = ["probe_gain"]
    else:  # in the metric asked for; that is the accuracy's own numbers when the metric is accuracy
        stated = probe if features.get("probe_metric", "accuracy") == "accuracy" else probe[2:]
    return [*stated, "logme"]
