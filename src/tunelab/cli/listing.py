"""Lists for people and for scripts: ``tunelab models | datasets | strategies``.

In a terminal a list is a table whose names are never cut (plain aligned text when the terminal is too
narrow for one); piped it is plain text in aligned columns, and with ``--json`` JSON, so ``tunelab datasets | grep rotten-tomatoes`` and
``tunelab datasets --json | jq`` both work.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def plain_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned plain text: a header line, then one line per row; the last column is not padded."""
    cells = [list(columns)] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        padded = [text.ljust(widths[i]) for i, text in enumerate(line[:-1])] + [line[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


#: A log file's or a pipe's "width": wide enough that no table is folded and no line is cut.
UNFOLDED = 10_000


def output_console():
    """The console a command prints its results on: a terminal's width; for a log file or a pipe, no width at all
    (:data:`UNFOLDED`), so that a table keeps its natural width and a line is one line: folded to 80 or 160 columns,
    the comparison's table split its headers mid-word ("Validatio / n") in every log."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=UNFOLDED)


def print_list(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str,
    as_json: bool = False,
    numeric: Sequence[str] = (),
    wrap: Sequence[str] = ("description", "what_trains", "upstream", "source"),
    stream=None,
) -> None:
    """Print ``rows`` as JSON (``as_json``), a rich table (a terminal) or aligned plain text (a pipe)."""
    stream = stream or sys.stdout
    if as_json:
        stream.write(json.dumps(list(rows), indent=2, default=str) + "\n")
        return
    width = shutil.get_terminal_size().columns
    widest = {c: max([len(c)] + [len(_cell(r.get(c))) for r in rows]) for c in columns}
    # a boxed table needs 3 characters a column; free-text columns need ~20 to be readable
    needed = sum(widest[c] + 3 for c in columns if c not in wrap) + sum(23 for c in columns if c in wrap) + 1
    if not stream.isatty() or needed > width:  # a pipe, or too narrow for a table: whole names, plain text
        stream.write(plain_table(rows, columns) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        if c in wrap:  # free text: takes the room that is left and wraps at word boundaries
            table.add_column(c, ratio=1, overflow="fold")
        else:  # names, kinds and numbers: whole, on one line
            table.add_column(c, justify="right" if c in numeric else "left", no_wrap=True, min_width=widest[c])
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(file=stream, width=width).print(table)
