"""The raw, column-oriented form every reader returns before validation and splitting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: Column names that datasets commonly give the text and the label (Hugging Face's SST-2 "sentence", review corpora's
#: "review", intent sets' "intent", ...): taken when the asked-for column is missing and exactly one of them is there.
TEXT_ALIASES = ("sentence", "review", "content", "document", "body", "comment", "message", "utterance", "tweet",
                "abstract", "description", "question", "query", "headline")
LABEL_ALIASES = ("labels", "category", "class", "target", "sentiment", "intent", "topic")


def brief(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: safe to put in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


@dataclass
class Table:
    """Rows read from one source, kept as plain Python lists per column.

    ``origin`` names the source in messages (a file path or a built-in name). ``unit`` and
    ``numbers`` say how to point at a row: ``numbers[i]`` is the 1-based line, row or chunk number
    of row ``i`` in that source, so errors can name the exact place even after filtering.
    """

    columns: dict[str, list[Any]]
    origin: str
    unit: str = "row"
    numbers: list[int] | None = None
    task_hint: str | None = None
    class_names: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def number(self, i: int) -> int:
        """The 1-based number of row ``i`` in its source."""
        return self.numbers[i] if self.numbers is not None else i + 1

    def where(self, rows: list[int], limit: int = 5) -> str:
        """``"rows 2, 5, 9"`` (the first ``limit`` of ``rows``, 0-based in, 1-based out)."""
        shown = ", ".join(str(self.number(i)) for i in rows[:limit])
        more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
        unit = self.unit if len(rows) == 1 else f"{self.unit}s"
        return f"{unit} {shown}{more}"

    def take(self, rows: list[int]) -> Table:
        """A new table with only ``rows`` (0-based), keeping their original numbers."""
        return Table(
            columns={name: [values[i] for i in rows] for name, values in self.columns.items()},
            origin=self.origin,
            unit=self.unit,
            numbers=[self.number(i) for i in rows],
            task_hint=self.task_hint,
            class_names=self.class_names,
        )


@dataclass
class RawData:
    """What a spec resolves to: one table to split, or tables the user already split.

    ``tables`` maps ``"all"`` to the single table, or ``"train"``/``"validation"``/``"test"`` to a
    user-given split (validation and test may be missing and are then carved out of train).
    """

    tables: dict[str, Table]
    source: str
    user_split: bool = False
    builtin: bool = False
    warnings: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    """A folder of split files: each split's file (``{"train": Path("kaggle/train.csv")}``), which :attr:`source`
    lists (:func:`tunelab.data.readers.folder_source`); empty for any other source."""

    def copy(self) -> RawData:
        """A copy to read as data again (:func:`tunelab.data.load.load_task_data` renames its columns, leaves an
        unlabelled split out and rewrites :attr:`source` as it reads): this one stays as it was read. The rows'
        lists are shared, not copied."""
        tables = {k: replace(t, columns=dict(t.columns), warnings=list(t.warnings)) for k, t in self.tables.items()}
        return replace(self, tables=tables, warnings=list(self.warnings), files=dict(self.files))
