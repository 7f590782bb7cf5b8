"""Adaptation strategies, one module each, registered by name (``tunelab strategies`` lists them); other packages
add theirs through the ``tunelab.strategies`` entry-point group (:mod:`tunelab.strategies.plugins`)."""

from tunelab.strategies import bitfit, full, gradual, head, last_n, peft_methods  # noqa: F401  (registration)
from tunelab.strategies.base import (
    ADVICE_REGIMES,
    STRATEGIES,
    Kind,
    Strategy,
    advice_tiers,
    as_loaded,
    default_comparison,
    get_strategy,
    merge_problem,
    named_strategies,
    options_not_read,
    register_strategy,
    strategy_kind,
    strategy_names,
    trainable_parameters,
)
from tunelab.strategies.plugins import load_plugins

load_plugins()

__all__ = [
    "ADVICE_REGIMES",
    "STRATEGIES",
    "Kind",
    "Strategy",
    "advice_tiers",
    "as_loaded",
    "default_comparison",
    "get_strategy",
    "merge_problem",
    "named_strategies",
    "options_not_read",
    "register_strategy",
    "strategy_kind",
    "strategy_names",
    "trainable_parameters",
]
