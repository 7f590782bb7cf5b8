"""The metrics tunelab ranks strategies by: their names, which way is better, and each task's default.

One place for these facts: the run record (:mod:`tunelab.run.record`), the statistics
(:mod:`tunelab.advice.stats`, :mod:`tunelab.advice.curves`), the recommendation and the report all read
them from here. Pure Python, so any module may import it.

>>> primary_metric("classification"), task_metrics("causal-lm")
('accuracy', ('perplexity', 'loss'))
>>> higher_is_better("perplexity")
False
"""

from __future__ import annotations

import math
import re
from typing import Any

from tunelab.errors import setting

IGNORE_INDEX = -100
"""The label a loss skips (PyTorch's ``cross_entropy`` default, the convention transformers' models and collators
follow): a causal LM's padding, and wherever nothing is predicted."""

#: Whether larger is better, per metric.
HIGHER_IS_BETTER: dict[str, bool] = {"accuracy": True, "f1_macro": True, "loss": False, "perplexity": False}

#: The values each metric can take: accuracy and macro-F1 in [0, 1], loss >= 0, perplexity >= 1.
METRIC_RANGE: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "perplexity": (1.0, math.inf),
    "loss": (0.0, math.inf),
}


def in_range(value: float, metric: str) -> float:
    """``value`` moved into ``metric``'s range (:data:`METRIC_RANGE`; unchanged for a metric without one): an
    interval's bound past the range (Student's t on three seeds' spread near accuracy 1) holds the same truth there.

    >>> in_range(1.03, "accuracy"), in_range(-0.2, "loss"), in_range(0.4, "perplexity"), in_range(7.0, "auc")
    (1.0, 0.0, 1.0, 7.0)
    """
    lo, hi = METRIC_RANGE.get(metric, (-math.inf, math.inf))
    return min(max(value, lo), hi)


#: The metrics a comparison can rank by, per task; the first is the task's default.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro"),
    "causal-lm": ("perplexity", "loss"),
}


#: The metrics that are the exponential of another, each with the one it exponentiates (perplexity = exp(loss)).
EXPONENTIAL_OF: dict[str, str] = {"perplexity": "loss"}


def same_measurement(metric: str, recorded: float, value: float) -> bool:
    """Whether two values of ``metric`` are one measurement summed two ways (a run's ``metrics.json``, a float32 sum;
    its saved outputs read again, a float64 one), not two definitions: within 1e-6 of each other, perplexity on the
    loss it is the exponential of (:data:`EXPONENTIAL_OF`). A float32 step of a random-init LM's loss (10.775324 vs
    10.775323 nats: 9.4e-8 of it) moved its perplexity by 1.0e-6 (47,826.0 vs 47,825.9), beyond 1e-6 of the value.

    >>> same_measurement("perplexity", 47825.97985, 47825.93127), same_measurement("accuracy", 0.80, 0.81)
    (True, False)
    """
    if metric in EXPONENTIAL_OF and recorded > 0 and value > 0:
        recorded, value = math.log(recorded), math.log(value)
    return math.isclose(recorded, value, rel_tol=1e-6, abs_tol=1e-9)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (``accuracy``, ``f1_macro``) or worse (``loss``,
    ``perplexity``). Raises ``ValueError`` for a metric tunelab does not know."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(HIGHER_IS_BETTER)}") from None


def canonical_metric(name: str) -> str:
    """The metric ``name`` means: itself when known, else the known metric with the same words in any case or order,
    joined by ``_``, ``-`` or spaces; ``name`` unchanged when there is none (callers refuse it, see
    :func:`metric_suggestion`).

    >>> canonical_metric("macro-F1"), canonical_metric("f1-macro"), canonical_metric("Accuracy"), canonical_metric("auc")
    ('f1_macro', 'f1_macro', 'accuracy', 'auc')
    """
    if name in HIGHER_IS_BETTER:
        return name
    words = sorted(word for word in re.split(r"[\s_\-]+", str(name).strip().lower()) if word)
    return next((known for known in HIGHER_IS_BETTER if sorted(known.split("_")) == words), name)


def metric_suggestion(name: str) -> str:
    """`` (did you mean f1_macro?)`` for an unknown metric close to a known one, else ""."""
    import difflib

    close = difflib.get_close_matches(str(name).strip().lower().replace("-", "_"), list(HIGHER_IS_BETTER), n=1,
                                      cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def primary_metric(task: str) -> str:
    """The metric a comparison ranks by unless told otherwise: accuracy for classification, perplexity
    for causal LM."""
    return TASK_METRICS.get(task, TASK_METRICS["classification"])[0]


def task_metrics(task: str) -> tuple[str, ...]:
    """The metrics that apply to ``task``."""
    return TASK_METRICS.get(task, TASK_METRICS["classification"])


def macro_classes(labels: Any) -> list[Any]:
    """The classes macro F1 averages over on a split: those with a gold example in it, the same for every strategy
    scored there. A class with gold examples that is never predicted scores 0; a class predicted but absent from the
    gold labels is left out (its predictions are wrong ones of the gold classes, and lower their recall). scikit-learn's
    default takes the classes of the gold *or* predicted labels, so a strategy that never predicted a class absent
    from the split was averaged over fewer classes than one that predicted it: two strategies on different scales.

    >>> macro_classes([2, 0, 2])
    [0, 2]
    """
    import numpy as np

    return np.unique(np.asarray(labels)).tolist()


def classification_scores(labels: Any, predictions: Any) -> dict[str, float]:
    """``accuracy`` and ``f1_macro`` of ``predictions`` against the gold ``labels`` (one split): macro F1 over
    :func:`macro_classes`. Every place that scores a classifier (training, saved outputs, the head probe; the
    bootstrap's additive form agrees exactly) uses this.

    >>> scores = classification_scores([0, 0, 1, 1], [0, 2, 1, 1])  # class 2: predicted, with no gold example
    >>> scores["accuracy"], round(scores["f1_macro"], 3)
    (0.75, 0.833)
    """
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(labels, predictions)),
            "f1_macro": float(f1_score(labels, predictions, labels=macro_classes(labels), average="macro",
                                       zero_division=0))}


def metric_problem(metric: str, task: str) -> str | None:
    """Why ``--metric metric`` cannot rank a comparison (or the advice) of ``task``, or None when it can: a metric
    tunelab does not know, or one of another task."""
    if metric in task_metrics(task):
        return None
    if metric not in HIGHER_IS_BETTER:
        return f"{setting('metric', metric)} is unknown{metric_suggestion(metric)}: use one of {', '.join(HIGHER_IS_BETTER)}"
    return f"{setting('metric', metric)} does not apply to {task}: use one of {', '.join(task_metrics(task))}"
