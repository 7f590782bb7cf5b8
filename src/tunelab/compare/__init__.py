"""Many runs: every strategy (x seed x data fraction) in its own process, then the recommendation and report.

>>> from tunelab.compare import compare
"""

from tunelab.compare.runner import CompareOptions, CompareResult, compare

__all__ = ["CompareOptions", "CompareResult", "compare"]
