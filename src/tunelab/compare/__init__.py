"""Many runs: every strategy (x seed x data fraction) in its own process, then the recommendation and report.

>>> from tunelab.compare import compare

``tunelab.compare(...)`` calls the same function: this package is callable (it was a module, which a notebook's
``tunelab.compare(base, ["head", "lora"])`` could not call, or no attribute of ``tunelab`` at all until imported).
"""

import inspect
import sys
import types

from tunelab.compare.runner import CompareOptions, CompareResult, compare

__all__ = ["CompareOptions", "CompareResult", "compare"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> CompareResult:
        """:func:`tunelab.compare.runner.compare`."""
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
# what `inspect.signature(tunelab.compare)` (a notebook's `compare?`, an editor's hint) shows: the function's parameters,
# not the module's (*args, **kwargs) (`from tunelab import compare` gives this module)
__signature__ = inspect.signature(compare)
