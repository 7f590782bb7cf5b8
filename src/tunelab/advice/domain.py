"""How far a task's text is from pre-training, on one scale whatever signal measured it.

``tunelab recommend`` measures the domain with the signal the model allows (a decoder's LM-loss ratio, an encoder's
masked-LM pseudo-loss ratio, or, for an encoder without an MLM head, the cosine distance of embedding centroids) and
the tokenizer's fragmentation. Their units differ: a ratio near 1 is close for the loss signals, a cosine distance of
0.2 is close for the centroids. Each signal is read against its own thresholds (:data:`DOMAIN_THRESHOLDS`, *moderate
from* and *far from*, set from the measurements in :mod:`tunelab.advice.recommend`):

* :func:`level`: *close* / *moderate* / *far*;
* :func:`farness`: the same reading as a number, ``(value - moderate) / (far - moderate)``: 0 at the start of
  *moderate*, 1 at the start of *far*, below 0 when close. This is what the calibrated advice takes, so that a model
  measured by one signal and a model measured by another land on the same scale (the raw values do not: an LM-loss
  ratio of 1.0 is close, a centroid distance of 1.0 is farther than any measured).
"""

from __future__ import annotations

#: (moderate from, far from) for each domain signal.
DOMAIN_THRESHOLDS: dict[str, tuple[float, float]] = {
    "lm_loss_ratio": (1.1, 1.4),
    "mlm_loss_ratio": (1.1, 1.4),
    "centroid_distance": (0.4, 0.85),
    "fragmentation_ratio": (1.15, 1.4),
    "unk_share": (0.002, 0.01),
}


def level(name: str, value: float) -> str:
    """*close*, *moderate* or *far* for signal ``name``.

    >>> level("lm_loss_ratio", 1.2), level("centroid_distance", 0.9)
    ('moderate', 'far')
    """
    moderate, far = DOMAIN_THRESHOLDS[name]
    return "far" if value >= far else "moderate" if value >= moderate else "close"


def farness(name: str, value: float) -> float:
    """Signal ``name``'s value on the common scale: 0 where *moderate* starts, 1 where *far* starts.

    >>> farness("lm_loss_ratio", 1.4), farness("centroid_distance", 0.4), round(farness("lm_loss_ratio", 1.0), 3)
    (1.0, 0.0, -0.333)
    """
    moderate, far = DOMAIN_THRESHOLDS[name]
    return (float(value) - moderate) / (far - moderate)
