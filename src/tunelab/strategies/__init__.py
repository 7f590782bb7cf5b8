"""Adaptation strategies, one module each, registered by name (``tunelab strategies`` lists them)."""

from tunelab.strategies import bitfit, full, gradual, head, last_n, peft_methods  # noqa: F401  (registration)
from tunelab.strategies.base import (
    STRATEGIES,
    Strategy,
    get_strategy,
    register_strategy,
    trainable_parameters,
)

__all__ = ["STRATEGIES", "Strategy", "get_strategy", "register_strategy", "trainable_parameters"]
