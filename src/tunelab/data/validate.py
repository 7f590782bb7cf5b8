"""Checks on columns, texts and labels; each problem becomes one actionable DataError line."""

from __future__ import annotations

import contextlib
import difflib
import math
import re
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from tunelab.data.table import Table, brief
from tunelab.errors import DataError, some_of

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WHOLE = re.compile(r"-?(0|[1-9]\d*)(\.0*)?")  # how a whole number is written as one (a float column's 1.0 too)


_TASK_FIXED: ContextVar[bool] = ContextVar("task_fixed", default=False)


@contextlib.contextmanager
def task_fixed() -> Iterator[None]:
    """Data read for a model that has its task already (``evaluate``): no message suggests ``--task``, and a split
    too small to make says how to score the file whole."""
    token = _TASK_FIXED.set(True)
    try:
        yield
    finally:
        _TASK_FIXED.reset(token)


def scoring_hint() -> str:
    """Where the data is read for a trained model (:func:`task_fixed`): how to score a held-out file whole, which
    is what a split too small to make means there (training's remedies do not apply)."""
    return "; to score every row of a file held out from training, pass --split all" if _TASK_FIXED.get() else ""


def other_task(suggestion: str) -> str:
    """``suggestion`` (to pass ``--task causal-lm``), or nothing where the task is fixed (:func:`task_fixed`)."""
    return "" if _TASK_FIXED.get() else suggestion


def _columns_hint(table: Table) -> str:
    names = table.column_names
    shown = ", ".join(brief(n) for n in names[:15]) + (
        f" and {len(names) - 15} more" if len(names) > 15 else ""
    )
    hint = ""
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        hint = " (the header looks delimited by another character: save it as comma-separated CSV, or .tsv)"
    return f"columns found: {shown or 'none'}{hint}"


def require_column(table: Table, column: str, role: str, taken: tuple[str | None, ...] = ()) -> None:
    """Raise a DataError naming the columns found if ``column`` is missing.

    ``role`` is ``"text"`` or ``"label"``; the message suggests the matching ``--text-column`` or
    ``--label-column`` flag (and ``--task causal-lm`` when a label column is missing). A column ``taken`` as the text
    is never suggested as the label (``--label-column text2`` on text/label suggested ``text``).
    """
    if column in table.columns:
        return
    close = difflib.get_close_matches(column, [n for n in table.column_names if n not in taken], n=1, cutoff=0.5)
    suggestion = f" (did you mean --{role}-column {close[0]}?)" if close else ""
    extra = other_task("; or pass --task causal-lm to train a language model on the text alone") if role == "label" else ""
    if role == "label" and _TASK_FIXED.get():  # evaluate: a file without labels is one to label, not to score
        extra = "; a file without labels cannot be scored: tunelab predict RUN --file FILE labels it"
    flags = _yes_no_columns(table) if role == "label" else []
    if len(flags) >= 2:  # toxic, insult, threat: one 0/1 column per label
        extra = (f"; {some_of(flags, 4)} each hold 0/1, as a multi-label (one-hot) table does: tunelab trains one "
                 f"label per example, so train one classifier per column (--label-column {flags[0]}, ...)") + extra
    if role == "text":
        extra = f", or two names, --text-column {_pair_example(table)}, for a pair of texts (NLI, paraphrase, question and passage)"
    raise DataError(
        f"{table.origin}: no {role} column '{column}'; {_columns_hint(table)}; "
        f"pass --{role}-column NAME{suggestion}{extra}"
    )


def _yes_no_columns(table: Table) -> list[str]:
    """The columns that hold nothing but 0 and 1 (as numbers, strings or booleans), both of them."""
    def flag(value: Any) -> str | None:
        text = str(value).strip().casefold()
        return {"0": "0", "1": "1", "false": "0", "true": "1", "0.0": "0", "1.0": "1"}.get(text)

    found = []
    for name in table.column_names:
        values = {flag(v) for v in table.columns[name]}
        if values == {"0", "1"}:
            found.append(name)
    return found


def _pair_example(table: Table) -> str:
    """``premise,hypothesis``: the first two columns that hold words (a hint's example of a text pair), else ``A,B``."""
    def wordy(values: list) -> bool:
        sample = [v for v in values[:50] if isinstance(v, str) and v.strip()]
        return bool(sample) and sum(" " in v.strip() for v in sample) >= len(sample) / 2
    named = [name for name, values in table.columns.items() if wordy(list(values))][:2]
    return ",".join(named) if len(named) == 2 and not any("," in n or len(n) > 40 for n in named) else "A,B"


def texts(table: Table, column: str) -> list[str]:
    """The text column as strings; empty or whitespace-only texts are an error naming their rows."""
    values = table.columns[column]
    out: list[str] = []
    empty: list[int] = []
    for i, value in enumerate(values):
        text = as_text(table, column, i, value)
        if not text.strip():
            empty.append(i)
        out.append(text)
    if empty:
        missing = sum(values[i] is None for i in empty)  # a JSON record without the key, a null, an empty cell
        what = ("missing (no value, or no such key in the record)" if missing == len(empty) else
                "empty or whitespace-only" if not missing else "missing or empty")
        raise DataError(
            f"{table.origin}: {len(empty)} text(s) {what} in column '{column}' at "
            f"{table.where(empty)}; fill them in or remove those rows"
        )
    return out


def as_text(table: Table, column: str, i: int, value: Any) -> str:
    """Row ``i``'s cell of a text column as a string ("" when missing); a list or a mapping (a conversation's
    messages) is an error naming the row and column."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise DataError(
        f"{table.origin}: {table.where([i])}, column '{column}' holds a {type(value).__name__}, not text; "
        "give a string in every row or choose another column with --text-column"
    )


def raw_labels(table: Table, column: str) -> list[int | float | str]:
    """Label values as ints, floats or stripped strings; missing labels are an error naming their rows."""
    out: list[int | float | str] = []
    missing: list[int] = []
    for i, value in enumerate(table.columns[column]):
        label = _as_label(table, column, i, value)
        if label is None:
            missing.append(i)
        else:
            out.append(label)
    if missing:
        raise DataError(
            f"{table.origin}: missing label in column '{column}' at {table.where(missing)}; "
            "give every row a label or remove those rows"
        )
    return out


def no_label_given(table: Table, column: str) -> bool:
    """Whether every row of ``column`` lacks a label, as :func:`raw_labels` reads one (None, NaN or blank): a split
    whose answers were kept back."""
    return all(_as_label(table, column, i, value) is None for i, value in enumerate(table.columns[column]))


def _as_label(table: Table, column: str, i: int, value: Any) -> int | float | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):  # a multi-label example (["a", "b"])
        raise DataError(
            f"{table.origin}: {table.where([i])}, column '{column}' holds a list ({brief(value)}), not a class label: "
            "tunelab trains one label per example (single-label classification, not multi-label); for several "
            "labels an example, train one classifier per label with yes/no labels"
        )
    raise DataError(
        f"{table.origin}: {table.where([i])}, column '{column}' holds a {type(value).__name__}, not a class label; "
        "use class names or integer ids"
    )


def written_otherwise(labels: list[Any], known: list[Any]) -> tuple[Any, Any] | None:
    """The first of ``labels`` that is one of ``known`` written otherwise (case or spacing), with that known label, or
    None: what a label unknown only by its spelling is told (labels are classes as written; none is merged in silence)."""
    def norm(value: Any) -> str:
        return " ".join(str(value).casefold().split())

    alike = {norm(k): k for k in known}
    return next(((label, alike[norm(label)]) for label in labels if norm(label) in alike), None)


def all_numeric(values: list[int | float | str]) -> bool:
    """Every label is a number or a numeric string (then integer ids in numeric order are expected). A whole number
    written otherwise than as one (``01``, ``007``, ``+1``) is a name: codes keep their form, and ``01`` and ``1`` stay
    two classes.

    >>> all_numeric(["0", "1", "2.0"]), all_numeric(["01", "1", "02"]), all_numeric(["1.5", "2"])
    (True, False, True)
    """
    for value in values:
        number = number_of(value)
        if number is None or (isinstance(value, str) and isinstance(number, int) and not _WHOLE.fullmatch(value.strip())):
            return False
    return True


def label_keys(values: list[int | float | str], table: Table, column: str, numeric: bool) -> list[int | str]:
    """Labels as integers (``numeric``; fractional numbers are an error) or as their string forms."""
    if not numeric:
        return [str(v) for v in values]
    numbers = [number_of(v) for v in values]
    # Whole numbers are already ints here, so any float left is fractional (or infinite).
    fractional = [i for i, n in enumerate(numbers) if isinstance(n, float)]
    if fractional:
        first = fractional[0]
        raise DataError(
            f"{table.origin}: column '{column}' holds non-integral numbers (e.g. {brief(values[first])} at "
            f"{table.where([first])}), a quantity, not class labels: tunelab classifies (one class per example), it "
            "does not predict a number (regression); give class names or integer ids (e.g. bin the values into low / "
            "high)"
            + other_task(", or pass --task causal-lm if this column is not a label")
        )
    return [int(n) for n in numbers]  # type: ignore[arg-type]


def number_of(value: int | float | str) -> int | float | None:
    """The number a label writes, or None."""
    if isinstance(value, int | float):
        return value
    if len(value) > 100:  # no class id is that long (and int() refuses over 4,300 digits)
        return None
    if _INTEGER.fullmatch(value):
        return int(value)
    if _NUMBER.fullmatch(value):
        number = float(value)
        return int(number) if number.is_integer() else number
    return None


def label_names_for(keys: list[int | str], declared: list[str] | None = None) -> list[str]:
    """Sorted unique string forms (numeric order for integers), or the declared ClassLabel names."""
    if declared is not None:
        return list(declared)
    return [str(k) for k in sorted(set(keys))]  # type: ignore[type-var]


def check_classes(names: list[str], present: set[str], origin: str, column: str) -> None:
    """At least two classes are needed to train a classifier."""
    if len(present) < 2:
        only = ", ".join(brief(n) for n in sorted(present)) or "none"
        raise DataError(
            f"{origin}: column '{column}' has a single class ({only}); a classifier needs at least two, "
            "so add examples of other classes" + other_task(" or pass --task causal-lm")
        )


# a label column holds classes, each repeated; a column whose values mostly occur once is an ID or free text
_MIN_ROWS_FOR_ID_CHECK = 20


def check_not_an_id(keys: list[int | str], origin: str, column: str) -> None:
    """Refuse a label column whose values are mostly unique (an ID or free text, not a class)."""
    counts = Counter(str(k) for k in keys)
    once = sum(1 for c in counts.values() if c == 1)
    if len(keys) >= _MIN_ROWS_FOR_ID_CHECK and once > 0.5 * len(keys):
        raise DataError(
            f"{origin}: column '{column}' does not look like a label: {len(counts):,} distinct values in "
            f"{len(keys):,} rows, {once:,} of them used once (an ID or free text, not a class); pick the column "
            "that holds the class with --label-column" + other_task(", or pass --task causal-lm to train on the text alone")
        )


def check_train_has_every_class(
    parts: dict[str, dict[str, list]], train_labels: list[int], names: list[str], origin: str, column: str
) -> None:
    """Every class must keep at least one training example after validation and test are carved out."""
    in_train = set(train_labels)
    for index, name in enumerate(names):
        if index in in_train:
            continue
        total = sum(part["label"].count(index) for part in parts.values() if "label" in part)
        if scoring_hint():
            raise DataError(f"{origin}: class {brief(name)} has {total} example(s), too few for the split training "
                            f"made{scoring_hint()}")
        raise DataError(
            f"{origin}: class {brief(name)} of column '{column}' has {total} example(s) and none is left for "
            "training once validation and test are split off; add examples of it, merge it into another "
            "class, drop its rows, or give your own train split (a 'split' column or train/test files)"
        )
