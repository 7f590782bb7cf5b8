"""The examples in tunelab's docstrings are run: a ``>>>`` line that no longer prints what it says fails here (one
printed ``-0.0`` for ``0.0`` unnoticed until session 48, when ``make test`` did not run them)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tunelab


def _modules_with_examples() -> list[str]:
    names = [tunelab.__name__]
    names += [m.name for m in pkgutil.walk_packages(tunelab.__path__, prefix=f"{tunelab.__name__}.")]
    out = []
    for name in sorted(names):
        spec = importlib.util.find_spec(name)
        origin = getattr(spec, "origin", None)
        if origin and origin.endswith(".py") and ">>> " in open(origin, encoding="utf-8").read():
            out.append(name)
    return out


@pytest.mark.parametrize("name", _modules_with_examples())
def test_the_examples_in_its_docstrings_print_what_they_say(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run it: python -m doctest -v)"
