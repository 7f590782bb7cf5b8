"""Adaptation strategies, one module each, registered by name (``tunelab strategies`` lists them)."""

from tunelab.strategies import bitfit, full, gradual, head, last_n, peft_methods  # noqa: F401  (registration)
from tunelab.strategies.base import (
    STRATEGIES,
    Kind,
    Strategy,
    default_comparison,
    get_strategy,
    merge_problem,
    register_strategy,
    strategy_kind,
    strategy_names,
    trainable_parameters,
)

__all__ = [
    "STRATEGIES",
    "Kind",
    "Strategy",
    "default_comparison",
    "get_strategy",
    "merge_problem",
    "register_strategy",
    "strategy_kind",
    "strategy_names",
    "trainable_parameters",
]
