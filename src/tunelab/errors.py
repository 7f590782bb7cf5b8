"""Errors a user can act on.

Every problem with the user's input (a file, a column, a flag, a label) is raised as a
:class:`TunelabError` whose message says what is wrong, where, and what to do. The CLI prints
that one line and exits with code 2; it never shows a traceback for them.
"""

from __future__ import annotations


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
