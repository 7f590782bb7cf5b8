"""How tunelab writes memory and size figures: one unit, one formatter.

Every memory and size figure tunelab records (``peak_memory_mb``, ``size_mb``, ``baseline_memory_mb``, the cache's
store) is bytes / 2**20, a mebibyte (MiB); the ``_mb`` in the field names is older than this label and means the
same unit. Figures labelled MB in earlier recorded measurements (README, ``benchmarks/README.md``) are MiB too.
"""

from __future__ import annotations

#: The unit of every memory and size figure tunelab records: bytes / 2**20.
MEMORY_UNIT = "MiB"


def format_mb(mb: float | None) -> str:
    """A memory or size figure in :data:`MEMORY_UNIT`: ``812 MiB``, ``1,300 MiB``, ``5.3 MiB``; ``–`` when unknown.

    >>> format_mb(1300.4), format_mb(5.25), format_mb(0.012)
    ('1,300 MiB', '5.2 MiB', '0.012 MiB')
    """
    if mb is None:
        return "–"
    if mb < 0.1:
        return f"{mb:.2g} {MEMORY_UNIT}"
    return f"{mb:.1f} {MEMORY_UNIT}" if mb < 10 else f"{mb:,.0f} {MEMORY_UNIT}"


def format_rate(per_s: float | None) -> str:
    """A throughput (samples/s, tokens/s) with the digits that say something: ``2.1``, ``1,234``, and ``0.034`` for a
    slow run, not ``0.0``; ``–`` when unknown.

    >>> format_rate(2.14), format_rate(1234.4), format_rate(0.0342), format_rate(0)
    ('2.1', '1,234', '0.034', '0')
    """
    if per_s is None:
        return "–"
    if per_s == 0:
        return "0"
    if per_s < 0.1:
        return f"{per_s:.2g}"
    return f"{per_s:.1f}" if per_s < 100 else f"{per_s:,.0f}"
