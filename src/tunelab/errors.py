"""Errors a user can act on.

Every problem with the user's input (a file, a column, a flag, a label) is raised as a
:class:`TunelabError` whose message says what is wrong, where, and what to do. The CLI prints
that one line and exits with code 2; it never shows a traceback for them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


class TunelabError(Exception):
    """A problem with the user's input or environment, reported as one actionable line."""

    exit_code = 2


class ConfigError(TunelabError):
    """One or more bad options. ``problems`` holds each one; the message joins them."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class DataError(TunelabError):
    """The data cannot be used as given (missing file, unknown column, malformed line, ...)."""


class ModelError(TunelabError):
    """The model cannot be found or loaded."""


class StrategyError(TunelabError):
    """A strategy was asked for something it cannot do (unknown name, unsupported task, ...)."""


class TrainingError(TunelabError):
    """Training stopped for a reason the user can act on (non-finite loss, nothing learned)."""


def first_line(exc: BaseException) -> str:
    """An exception's first line for a one-line message (its type's name when it says nothing)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def and_list(names: list[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``: names in a sentence.

    >>> and_list(["head"]), and_list(["head", "lora", "full"])
    ('head', 'head, lora and full')
    """
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def some_of(names: list[str], shown: int = 8) -> str:
    """``"a, b, c"`` for a one-line message, or the first ``shown`` names and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(str(n) for n in names[:shown]) + more


FLAGS_ENV = "TUNELAB_SETTINGS_AS_FLAGS"
"""``1`` in the environment of the processes that the ``tunelab`` command starts (a comparison's runs): their messages
name settings as flags too (:func:`setting`)."""
_as_flags = False
_UNSET: Any = object()


@contextlib.contextmanager
def settings_as_flags() -> Iterator[None]:
    """Within it (the ``tunelab`` command, :func:`tunelab.cli.main.main`), :func:`setting` names a setting as its flag;
    outside it, as a Python caller passes it."""
    global _as_flags
    before, _as_flags = _as_flags, True
    try:
        yield
    finally:
        _as_flags = before


def as_flags() -> bool:
    """Whether messages name settings as flags (the command line) rather than as keyword arguments (Python)."""
    return _as_flags or os.environ.get(FLAGS_ENV) == "1"


def setting(name: str, value: Any = _UNSET, *, quoted: bool = False, flag: str | None = None) -> str:
    """The setting ``name`` (with ``value``, when given) as the caller spells it, for a message: its flag on the command
    line, its keyword argument from Python (``TrainConfig(max_length=...)``, ``compare(overwrite=True)``); ``quoted``:
    a flag's value in quotes (an unknown name, whose spaces would not show); ``flag``: the flag's name where it is not
    the keyword's (``run_timeout_s`` is ``--run-timeout``).

    >>> setting("max_length"), setting("overwrite", True), setting("cache", False), setting("keep", "end")
    ('max_length=', 'overwrite=True', 'cache=False', "keep='end'")
    >>> with settings_as_flags():
    ...     setting("max_length"), setting("overwrite", True), setting("cache", False), setting("keep", "end", quoted=True)
    ('--max-length', '--overwrite', '--no-cache', "--keep 'end'")
    """
    if not as_flags():
        return f"{name}=" if value is _UNSET else f"{name}={value!r}"
    dashed = (flag or name).replace("_", "-")
    if value is _UNSET or value is True:
        return f"--{dashed}"
    if value is False:
        return f"--no-{dashed}"
    return f"--{dashed} '{value}'" if quoted else f"--{dashed} {value}"


def setting_as(name: str, text: str) -> str:
    """The setting ``name`` with a value already written as ``text`` (a number as ``:g`` writes it), as the caller
    spells it.

    >>> setting_as("tolerance", "5")
    'tolerance=5'
    >>> with settings_as_flags():
    ...     setting_as("tolerance", "5")
    '--tolerance 5'
    """
    return f"{setting(name)} {text}" if as_flags() else f"{setting(name)}{text}"


def setting_change(name: str, old: Any, new: Any, unset: str = "(default)") -> str:
    """A setting that changed, for a message (``unset``: a value of ``None``, the default). A switch (a bool on either
    side) is spelt whole on both sides, as it is set: ``--cache → --no-cache``, ``cache=True → cache=False``.

    >>> setting_change("lr", 0.001, 0.0001), setting_change("cache", True, False)
    ('lr=0.001 → 0.0001', 'cache=True → cache=False')
    >>> with settings_as_flags():
    ...     setting_change("lr", None, 0.0001), setting_change("cache", True, False), setting_change("merge", None, True)
    ('--lr (default) → 0.0001', '--cache → --no-cache', '--merge (default) → --merge')
    """
    def shown(value: Any) -> str:
        return unset if value is None else str(value)

    if isinstance(old, bool) or isinstance(new, bool):
        def switch(value: Any) -> str:
            return setting_as(name, unset) if value is None else setting(name, value)

        return f"{switch(old)} → {switch(new)}"
    return f"{setting_as(name, shown(old))} → {shown(new)}"
