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
A domain that was not measured counts as the benchmark's mean (it moves no score).
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
RIDGE_ALPHA = 3.0
"""Ridge penalty in standardised units: with about ten tasks, strong shrinkage towards the mean gap."""


def signal_vector(signals: dict[str, Any]) -> dict[str, float]:
    """The model's inputs from a record's (or ``recommend``'s) measured signals."""
    domain = signals.get("domain") or {}
    method = domain.get("domain_signal")
    distance = domain.get(method) if method else None
    measured = method in DOMAIN_THRESHOLDS and isinstance(distance, (int, float)) and math.isfinite(distance)
    return {
        "log10_examples_per_class": math.log10(max(float(signals["examples_per_class"]), 1.0)),
        "probe_gain": float(signals["probe_gain"]),
        "logme": float(signals["logme"]),
        "domain_farness": farness(method, distance) if measured else math.nan,
    }


def _gaps(record: dict[str, Any]) -> dict[str, float]:
    """Each strategy's validation metric minus the best one's, in points."""
    values = {s: v["validation"] for s, v in record["strategies"].items() if v.get("validation") is not None}
    best = max(values.values())
    return {s: 100.0 * (v - best) for s, v in values.items()}


def fit_calibration(records: list[dict[str, Any]], *, alpha: float = RIDGE_ALPHA) -> dict[str, Any]:
    """Fit the per-strategy ridge regressions on benchmark records; return the JSON-ready coefficients."""
    X = np.array([[signal_vector(r["signals"])[k] for k in SIGNALS] for r in records], dtype=float)
    mean = np.nanmean(X, axis=0)
    X = np.where(np.isnan(X), mean, X)  # a signal a record lacks counts as the mean, as in advise
    std = X.std(0)
    std[std < 1e-9] = 1.0
    Z = (X - mean) / std
    gaps = [_gaps(r) for r in records]
    strategies = sorted({s for g in gaps for s in g})
    coefficients = {}
    for s in strategies:
        rows = [i for i, g in enumerate(gaps) if s in g]
        z, y = Z[rows], np.array([gaps[i][s] for i in rows])
        b = y.mean()
        zc = z - z.mean(0)
        w = np.linalg.solve(zc.T @ zc + alpha * np.eye(len(SIGNALS)), zc.T @ (y - b))
        b = b - z.mean(0) @ w
        coefficients[s] = {"intercept": round(float(b), 4), **{k: round(float(v), 4) for k, v in zip(SIGNALS, w)},
                           "tasks": len(rows), "mean_gap_points": round(float(y.mean()), 3)}
    return {
        "model": "per strategy: validation metric minus the task's best (points) = intercept + sum_k w_k * z_k, "
                 "z_k = (signal_k - mean_k) / std_k; ridge, alpha in standardised units",
        "alpha": alpha,
        "signals": list(SIGNALS),
        "mean": {k: round(float(v), 6) for k, v in zip(SIGNALS, mean)},
        "std": {k: round(float(v), 6) for k, v in zip(SIGNALS, std)},
        "strategies": coefficients,
    }


def load_calibration(path: Path | None = None) -> dict[str, Any] | None:
    """The calibration file's coefficients, or ``None`` (the advice then falls back to its tiers) when there is
    none or it was fitted on signals this version does not measure (an older file)."""
    path = Path(path) if path is not None else CALIBRATION_PATH
    if not path.is_file():
        return None
    calibration = json.loads(path.read_text())
    return calibration if set(calibration.get("signals", ())) <= set(SIGNALS) else None


def advise(signals: dict[str, Any], calibration: dict[str, Any], *, allowed: list[str] | None = None) -> dict[str, Any]:
    """Rank the calibrated strategies for ``signals``.

    Returns ``{"strategy", "scores" (expected gap in points, by strategy), "ranking", "decided_by",
    "contributions" (per signal, to the margin of the first over the second), "margin_points"}``;
    ``allowed`` restricts the ranking (the strategies that fit a budget)."""
    x = signal_vector(signals)
    z = {k: 0.0 if math.isnan(x[k]) else (x[k] - calibration["mean"][k]) / calibration["std"][k]
         for k in calibration["signals"]}
    coefs = {s: c for s, c in calibration["strategies"].items() if allowed is None or s in allowed}
    scores = {s: c["intercept"] + sum(c[k] * z[k] for k in calibration["signals"]) for s, c in coefs.items()}
    ranking = sorted(scores, key=scores.get, reverse=True)
    if not ranking:
        return {"strategy": None, "scores": {}, "ranking": [], "decided_by": None, "contributions": {}, "margin_points": None}
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
        "inputs": x,
    }


def explain(advice: dict[str, Any]) -> str:
    """One sentence: what is advised, by how much it is expected to lead, and which signal decided."""
    if advice["strategy"] is None:
        return "no calibrated strategy to advise"
    ranking = advice["ranking"]
    runner = ranking[1] if len(ranking) > 1 else None
    x = advice.get("inputs", {})
    facts = (f"{10 ** x['log10_examples_per_class']:.0f} labels per class, head probe {x['probe_gain']:.2f} of the way "
             f"from the majority class to perfect, LogME {x['logme']:.2f}") if x else ""
    lead = (f", expected {advice['margin_points']:.1f} points ahead of {runner} on validation" if runner else "")
    return (f"calibrated advice: {advice['strategy']}{lead}; decided by {SIGNAL_LABELS.get(advice['decided_by'], advice['decided_by'])}"
            + (f" ({facts})" if facts else ""))
