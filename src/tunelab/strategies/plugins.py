"""Strategies from other packages: the ``tunelab.strategies`` entry-point group.

A package adds a strategy to every tunelab command (``train``, ``compare``, ``strategies``, the Python API) by
declaring its :class:`~tunelab.strategies.base.Strategy` subclass in its ``pyproject.toml``::

    [project.entry-points."tunelab.strategies"]
    ln-tuning = "my_package.module:LayerNormTuning"

``examples/plugins/tunelab_ln_tuning`` is a whole one. The entry points are read once, when
:mod:`tunelab.strategies` is first imported, in every process (the workers of a comparison too). A plugin that
cannot be imported, or that :func:`~tunelab.strategies.base.registration_problem` refuses (the same check as
``register_strategy``'s: not a ``Strategy``, a required attribute or method missing or of the wrong type, a name
already registered), is left out with one warning naming it: a broken plugin never stops tunelab, and never replaces a
built-in strategy. Options that are no TrainConfig field are refused when the strategy is chosen
(:meth:`tunelab.config.TrainConfig.problems`), and every other strategy works on.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

from tunelab.strategies.base import STRATEGIES, register_strategy

GROUP = "tunelab.strategies"
logger = logging.getLogger("tunelab")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _register(point: EntryPoint) -> str | None:
    """Register the strategy ``point`` names; return why it was left out, or ``None``."""
    try:
        loaded = point.load()
    except Exception as exc:  # noqa: BLE001 - a third-party import can fail in any way
        return f"it could not be imported ({_first_line(exc)})"
    try:
        register_strategy(loaded)  # again, harmless, where the module registered itself on import
    except TypeError as exc:  # register_strategy's refusal, the one line to warn with
        return str(exc)
    return None


def load_plugins() -> list[str]:
    """Register every strategy declared under :data:`GROUP`; return the names registered.

    A strategy is called by its class's ``name``; an entry point named otherwise registers it all the same, with a
    warning that gives the name to use (``--strategy alias`` would otherwise be an unknown strategy, unexplained)."""
    before = set(STRATEGIES)
    for point in entry_points(group=GROUP):
        problem = _register(point)
        if problem:
            logger.warning("strategy plugin '%s' (%s) left out: %s", point.name, point.value, problem)
            continue
        name = getattr(point.load(), "name", None)
        if name != point.name:
            logger.warning("strategy plugin '%s' (%s) is registered as '%s', its class's name: use --strategy %s, "
                           "or name the entry point '%s'", point.name, point.value, name, name, name)
    return [name for name in STRATEGIES if name not in before]
