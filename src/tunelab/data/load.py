"""Any data spec (built-in name, file, folder) into a validated, split :class:`TaskData`."""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from tunelab.data.builtin import BUILTINS, package_dir, read_builtin, unknown_builtin
from tunelab.data.chat import CHAT_COLUMNS, chat_messages, is_chat, render
from tunelab.data.readers import (
    IN_MEMORY_FORMS,
    SPLIT_ALIASES,
    SUPPORTED_EXTENSIONS,
    folder_source,
    read_in_memory,
    read_path,
)
from tunelab.data.splits import (
    Columns,
    carve,
    check_fractions,
    example_groups,
    example_keys,
    expand,
    fingerprint,
    kept_note,
    nested_order,
    take,
    three_way,
    unmeasured_notes,
)
from tunelab.data.table import LABEL_ALIASES, TEXT_ALIASES, RawData, Table, brief
from tunelab.data.types import TaskData
from tunelab.data.validate import (
    all_numeric,
    as_text,
    check_classes,
    check_not_an_id,
    check_train_has_every_class,
    label_keys,
    label_names_for,
    no_label_given,
    other_task,
    raw_labels,
    require_column,
    texts,
    written_otherwise,
)
from tunelab.errors import DataError, some_of

TASKS = ("classification", "causal-lm")
SPLITS = ("train", "validation", "test")


def load_task_data(
    spec: str | os.PathLike[str] | Any,
    *,
    task: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    split: bool = True,
) -> TaskData:
    """Load a built-in dataset, a data file or a folder as train/validation/test splits.

    ``spec`` is a built-in name (see :func:`list_datasets`), a ``.csv``/``.tsv``/``.jsonl``/``.json``/
    ``.parquet``/``.txt`` file, a folder saved with ``save_to_disk``, a folder of ``train.*``/
    ``validation.*``/``test.*`` files, or data in memory: a ``datasets.Dataset`` or ``DatasetDict``, a pandas
    ``DataFrame``, a list of dicts (one per example), a dict of columns (``{"text": [...], "label": [...]}``) or a
    dict of splits (``{"train": frame, "test": frame}``), read as their saved forms are. A user-given split (those folders, a DatasetDict, or a
    ``split`` column) is respected; otherwise the rows are split with ``seed``, stratified by label.
    ``task`` is inferred when ``None``. Every problem with the data raises :class:`DataError`.
    ``split=False`` (scoring a model on every row: ``tunelab evaluate --split all``): every row goes to ``train``, in
    the file's order (a given split's train, validation, test), validation and test are empty, and nothing that only
    a split needs is asked of the data (three different texts, a training example of every class, two classes: a
    held-out file of one class is scored as it is).

    >>> data = load_task_data("rotten-tomatoes")  # doctest: +SKIP
    >>> data.label_names, len(data.train)  # doctest: +SKIP
    (['fresh', 'rotten'], 3404)
    """
    if task is not None and task not in TASKS:
        raise DataError(f"--task {task!r} is not a task; use one of {', '.join(TASKS)}")
    check_fractions(validation_fraction, test_fraction)
    given = _given_splits(spec, task, text_column, label_column)
    raw, tables, first, chosen, warnings = given.raw, given.tables, given.first, given.task, given.warnings
    text_column, pair_column, label_column = given.text_column, given.pair_column, given.label_column
    if chosen == "classification":
        parts, names = _classification(tables, text_column, label_column, warnings, pair_column, training=split)
    else:
        parts, names = _causal(tables, text_column, label_column, task is not None, warnings), []
    if not split:
        return _task_data(chosen, _unsplit(parts), names, raw.source, warnings)
    try:
        splits = _split(parts, validation_fraction, test_fraction, seed, warnings, names)
    except DataError as err:  # too few rows: say which data
        if first.unit == "chunk":  # plain text (.txt, .md, a folder of them): the examples are chunks, not lines
            size = sum(len(t) for t in first.columns.get("text", []))
            raise DataError(f"{first.origin}: {err} (plain text is read for language modelling, cut into chunks "
                            f"of about 1,000 to 2,000 characters: its {size:,} characters make {first.num_rows}; give "
                            "at least about 3,000, or a .csv or .jsonl for a table of examples)") from err
        raise DataError(f"{first.origin}: {err}") from err
    if chosen == "classification":
        check_train_has_every_class(parts, splits["train"]["label"], names, first.origin, label_column)
    return _task_data(chosen, splits, names, raw.source, warnings)


class _Given(NamedTuple):
    """The data as given, before any example is built: its tables by split (an unlabelled validation or test split
    left out), the table the columns are read from, the task and the columns chosen, and what was said."""

    raw: RawData
    tables: dict[str, Table]
    first: Table
    task: str
    text_column: str
    pair_column: str | None
    label_column: str
    warnings: list[str]


def _given_splits(spec: Any, task: str | None, text_column: str, label_column: str) -> _Given:
    """Read ``spec`` and choose its task and columns as :func:`load_task_data` does (one place: both it and
    :func:`own_splits` read data so)."""
    text_column, pair_column = _text_columns(text_column)
    raw = spec.copy() if isinstance(spec, RawData) else read_in_memory(spec)  # RawData: a file read once, read again
    if raw is None:
        if not isinstance(spec, str | os.PathLike):
            raise DataError(f"data must be a built-in name, a path, or {IN_MEMORY_FORMS} in memory; got a "
                            f"{type(spec).__name__}")
        raw = resolve(os.fspath(spec))
    warnings = list(raw.warnings)
    if raw.builtin:
        given = [f"--{flag} {value}" for flag, value, own in (("text-column", ",".join(filter(None, (text_column, pair_column))), "text"),
                                                              ("label-column", label_column, "label")) if value != own]
        if given:  # a built-in has its own columns: say so rather than ignore the option in silence
            warnings.append(f"{spec} is a built-in dataset with the columns 'text' and 'label': {' and '.join(given)} "
                            "ignored (the options name the columns of your own files)")
        text_column, pair_column, label_column = "text", None, "label"
    tables = _split_by_column(raw, text_column, label_column, warnings)
    first = tables["train"] if "train" in tables else tables["all"]
    if not raw.builtin and pair_column is None:
        asked, text_column = text_column, _column_for(first, text_column, TEXT_ALIASES, "text", warnings)
        _same_name_in_every_split(tables, first, asked, text_column, TEXT_ALIASES, "text", warnings)
    if not raw.builtin:
        asked, label_column = label_column, _column_for(first, label_column, LABEL_ALIASES, "label", warnings)
        _same_name_in_every_split(tables, first, asked, label_column, LABEL_ALIASES, "label", warnings)
    chosen = infer_task(task, first, text_column, label_column)
    if chosen == "classification":
        _leave_out_unlabelled(raw, tables, first, label_column, warnings)
    if chosen == "classification" and label_column in (text_column, pair_column):
        raise DataError(f"{first.origin}: column {brief(label_column)} is both the label column and a text column "
                        "(--text-column): the model would read the answer in its input; give --text-column and "
                        "--label-column different columns")
    if pair_column is not None and chosen != "classification":
        raise DataError(f"--text-column {text_column},{pair_column} names a text pair, which only classification "
                        "takes; a causal LM trains on one text column")
    return _Given(raw, tables, first, chosen, text_column, pair_column, label_column, warnings)


def own_splits(spec: str | os.PathLike[str] | Any, text_column: str = "text", label_column: str = "label",
               task: str | None = None) -> list[str]:
    """Which of ``validation`` and ``test`` the data brings itself (a ``split`` column, a folder's
    ``validation.*`` / ``test.*`` files, a DatasetDict's splits; not one left out as unlabelled, which is carved from
    train): the splits that ``--validation-fraction`` / ``--test-fraction`` do not cut. Reads the data as
    :func:`load_task_data` does (:func:`_given_splits`); a problem with it raises :class:`DataError` as there."""
    tables = _given_splits(spec, task, text_column, label_column).tables
    return [split for split in SPLITS[1:] if split in tables]


def _text_columns(text_column: str) -> tuple[str, str | None]:
    """``"premise,hypothesis"`` -> ``("premise", "hypothesis")`` (a text pair: NLI, paraphrase, question and
    passage); one name -> ``(name, None)``."""
    names = [n.strip() for n in str(text_column).split(",")]
    if len(names) == 1:
        return names[0], None
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise DataError(f"--text-column {text_column!r}: give one column, or two different ones separated by a comma "
                        "for a text pair (e.g. --text-column premise,hypothesis)")
    return names[0], names[1]


def _same_name_in_every_split(tables: dict[str, Table], first: Table, asked: str, chosen: str, aliases: tuple[str, ...],
                              role: str, warnings: list[str]) -> None:
    """Each other split's column for ``role``, found as the training split's was (:func:`_column_for`), under the name
    the training split's has (a folder whose train.csv says review/sentiment and test.csv text/label)."""
    for table in tables.values():
        if table is first or chosen in table.columns:
            continue
        own = _column_for(table, asked, aliases, role, warnings)
        if own in table.columns:
            table.columns[chosen] = table.columns.pop(own)


def _leave_out_unlabelled(raw: RawData, tables: dict[str, Table], first: Table, label_column: str,
                          warnings: list[str]) -> None:
    """A given validation or test split without labels (a competition's test.csv beside its train.csv, the answers
    kept back: no label column, or one left empty in every row, as pandas writes a column of NaN; or the test rows of
    a 'split' column) cannot score: it is left out, said, and that split carved from train, as a saved split whose
    labels are all hidden is (:func:`tunelab.data.readers`); the data's source no longer lists it as read
    (:func:`~tunelab.data.readers.folder_source`)."""
    if label_column not in first.columns:
        return

    def unlabelled(table: Table) -> bool:
        return label_column not in table.columns or no_label_given(table, label_column)

    left_out: list[str] = []
    for split in [s for s, table in tables.items() if table is not first and unlabelled(table)]:
        table = tables.pop(split)
        if split in raw.files:
            left_out.append(split)
        rows = table.origin == first.origin  # a 'split' column's rows, not a file of their own
        why = (f"it has no label column {brief(label_column)} ({first.origin} has), so it" if label_column not in table.columns
               else f"{'their' if rows else 'its'} column {brief(label_column)} is empty in every row, so "
                    f"{'they' if rows else 'it'}")
        warnings.append(f"left out {f'the {split} rows of ' if rows else ''}{table.origin}: {why} cannot score "
                        f"(unlabelled, as a competition's test set); the {split} split is carved from train instead")
    if left_out:
        raw.source = folder_source(raw.files, tuple(left_out))


def _column_for(table: Table, column: str, aliases: tuple[str, ...], role: str, warnings: list[str]) -> str:
    """``column`` if the table has it; else the one column that is it in other letter case, or else, when ``column`` is
    the default name (``role``: nobody named a column), the one column named like one of ``aliases`` (said in a
    warning); else ``column`` (and the check that follows names what is there). A column the user named is never
    swapped for an alias: ``--text-column body`` on a file without ``body`` is a typo to report, not a guess to make."""
    if column in table.columns:
        return column
    by_lower: dict[str, list[str]] = {}
    for name in table.column_names:
        by_lower.setdefault(str(name).strip().lower(), []).append(name)
    same = by_lower.get(column.lower(), [])
    found = same if len(same) == 1 or column != role else [n for a in aliases for n in by_lower.get(a, [])]
    if len(found) != 1:
        return column
    warnings.append(f"{table.origin}: no column '{column}'; using '{found[0]}' as the {role} "
                    f"(pass --{role}-column NAME to choose another)")
    return found[0]


SUPPORTED_TABLES = tuple(kind for kind in SUPPORTED_EXTENSIONS if kind != ".txt")
"""The file kinds that hold a table of examples (a ``.txt`` holds plain text)."""


def texts_of_table(path: str | os.PathLike, text_column: str = "text") -> tuple[list[str], str] | None:
    """The non-empty texts of a table file's text column (``text_column``, or the one column named like a text), and
    the column read; None for a file that is not a table (plain text: one input a line). Two columns
    (``"premise,hypothesis"``, a text pair) give each row's two texts joined by a tab, as ``predict`` takes a pair; a
    row with either one empty is left out."""
    from tunelab.data.readers import file_suffixes, read_file

    path = Path(path)
    suffix = file_suffixes(path)[0]
    if suffix not in SUPPORTED_TABLES and (suffix != ".txt" or not _holds_a_table(path)):
        return None  # plain text (a spreadsheet's tab-separated .txt is the table it holds, as training reads it)
    table = read_file(path)
    first, second = _text_columns(text_column)
    columns = [_column_for(table, first, TEXT_ALIASES, "text", []), *([second] if second else [])]
    for column in columns:
        require_column(table, column, "text")

    # each cell read as training reads a text: a list (a chat file's messages) is refused, not printed as a repr
    rows = zip(*([as_text(table, c, i, v) for i, v in enumerate(table.columns[c])] for c in columns))
    return ["\t".join(row) for row in rows if all(v.strip() for v in row)], ",".join(columns)


def _holds_a_table(path: Path) -> bool:
    """Whether a ``.txt`` file is a spreadsheet's tab-separated table (:func:`tunelab.data.readers.tab_table`). An
    empty or undecodable one is no table: read as plain text, the caller says what is wrong with it in its own words."""
    from tunelab.data.readers import read_utf8, tab_table

    try:
        return tab_table(read_utf8(path)) is not None
    except DataError:
        return False


def resolve(spec: str) -> RawData:
    """A built-in name, or an existing path; anything else is an error with suggestions."""
    if spec in BUILTINS:
        return read_builtin(spec)
    path = Path(spec).expanduser()
    if path.exists():
        return read_path(path)
    if _looks_like_path(spec):
        raise DataError(
            f"{spec}: no such file or folder; check the path, or name a built-in dataset ({', '.join(BUILTINS)})"
        )
    raise unknown_builtin(spec)


def _looks_like_path(spec: str) -> bool:
    return any(c in spec for c in "/\\") or spec.startswith((".", "~")) or bool(Path(spec).suffix)


def infer_task(task: str | None, table: Table, text_column: str, label_column: str) -> str:
    """The task asked for, or the one the data implies (labels: classification; text or chat: causal-lm)."""
    unlabelled_chat = is_chat(table) and label_column not in table.columns
    if task == "classification" and (table.task_hint == "causal-lm" or unlabelled_chat):
        raise DataError(
            f"{table.origin}: holds {'conversations' if 'messages' in table.columns else 'plain text'} without labels, "
            "so it cannot be used for classification; "
            "give a file with text and label columns" + other_task(", or use --task causal-lm")
        )
    if task is not None:
        return task
    if table.task_hint is not None:
        return table.task_hint
    if label_column in table.columns and (text_column in table.columns or not is_chat(table)):
        return "classification"
    if is_chat(table):
        return "causal-lm"
    require_column(table, text_column, "text")
    require_column(table, label_column, "label", (text_column,))
    return "classification"


def _split_by_column(raw: RawData, text_column: str, label_column: str, warnings: list[str]) -> dict[str, Table]:
    """A single table with a ``split`` column becomes a user-given split; one that names no split anywhere means
    something else, and is ignored with a warning."""
    table = raw.tables.get("all")
    if table is None or "split" not in table.columns or "split" in (text_column, label_column):
        return raw.tables
    groups: dict[str, list[int]] = {}
    bad: list[int] = []
    for i, value in enumerate(table.columns["split"]):
        split = SPLIT_ALIASES.get(str(value).strip().lower()) if value is not None else None
        if split is None:
            bad.append(i)
        else:
            groups.setdefault(split, []).append(i)
    if bad and not groups:
        warnings.append(f"{table.origin}: column 'split' names no split (train, validation or test) in any row, so it is "
                        "not read as the split; the data is split by --validation-fraction and --test-fraction")
        return raw.tables
    if bad:
        value = table.columns["split"][bad[0]]
        what = "is empty" if value is None or not str(value).strip() else f"holds {brief(value)}"
        raise DataError(
            f"{table.origin}: column 'split' {what} at {table.where(bad)}; "
            "give each row train, validation (or valid, dev) or test, or rename the column if it means something else"
        )
    if "train" not in groups:
        raise DataError(
            f"{table.origin}: column 'split' has no 'train' rows; mark the training rows with train"
        )
    raw.source = f"{raw.source}, split by its 'split' column"
    return {split: table.take(rows) for split, rows in groups.items()}


def _decimal_classes(labels: list[Any], column: str, warnings: list[str]) -> bool:
    """Whether labels that hold decimal numbers (``1.1``, ``2.5``) are class names: when they repeat as classes do (at
    most half the rows hold a value used once), they are read as written, with a warning; a quantity that is mostly
    distinct stays an error (:func:`~tunelab.data.validate.label_keys`: tunelab classifies, it does not regress)."""
    from tunelab.data.validate import number_of

    decimal = [v for v in labels if isinstance(number_of(v), float)]
    if not decimal:
        return False
    counts = Counter(str(v) for v in labels)
    if sum(c == 1 for c in counts.values()) > 0.5 * len(labels):
        return False
    shown = ", ".join(brief(v) for v in sorted(set(map(str, decimal)))[:4])
    warnings.append(f"column {brief(column)} holds decimal numbers ({shown}): read as {len(counts)} class names as "
                    "written (tunelab classifies; it does not predict a quantity)")
    return True


def _warn_numbers_written_apart(labels: list[Any], column: str, warnings: list[str]) -> None:
    """Labels read as names that write one number in two ways (``01`` and ``1``): two classes, as the file has them;
    said, in case they were meant as one."""
    from tunelab.data.validate import number_of

    forms: dict[int | float, set[str]] = {}
    for label in set(labels):
        number = number_of(label)
        if number is not None:
            forms.setdefault(number, set()).add(str(label))
    apart = sorted(sorted(f) for f in forms.values() if len(f) > 1)
    if apart:
        shown = "; ".join(" and ".join(brief(f) for f in group) for group in apart[:3])
        warnings.append(f"column {brief(column)}: {shown} write the same number but are different classes (labels are "
                        "read as names as written); if they are one class, write them alike")


def _warn_numbers_merged(tables: dict[str, Table], keys: dict[str, list[Any]], column: str, warnings: list[str]) -> None:
    """Integer labels written in more than one way (``1`` and ``1.0``, as pandas writes integer labels in a column with
    missing values): one class each, as the number they write; said, with which spellings went into which class."""
    forms: dict[int, list[str]] = {}
    for name, table in tables.items():
        for value, key in zip(table.columns[column], keys[name], strict=True):  # no label is missing (raw_labels)
            spelling = value.strip() if isinstance(value, str) else str(value)
            if spelling not in forms.setdefault(key, []):
                forms[key].append(spelling)
    merged = [(key, sorted(spellings, key=len)) for key, spellings in sorted(forms.items()) if len(spellings) > 1]
    if merged:
        shown = "; ".join(f"{' and '.join(brief(s) for s in spellings)} as {key}" for key, spellings in merged[:4])
        warnings.append(f"column {brief(column)}: labels that write one whole number are read as one class: {shown}"
                        f"{' ...' if len(merged) > 4 else ''} (pandas writes integer labels as 1.0 in a column with "
                        "missing values); if they are different classes, give them names")


def _classification(
    tables: dict[str, Table], text_column: str, label_column: str, warnings: list[str], pair_column: str | None = None,
    *, training: bool = True,
) -> tuple[dict[str, Columns], list[str]]:
    """Texts (and their pairs: ``text_pair``) and label ids per table, and the label names (from train when the user
    split the data). ``training`` False (every row scored by a trained model): one class is enough."""
    values: dict[str, tuple[list[str], list[Any]]] = {}
    pairs: dict[str, list[str]] = {}
    for name, table in tables.items():
        require_column(table, text_column, "text")
        if pair_column is not None:
            require_column(table, pair_column, "text")
            pairs[name] = texts(table, pair_column)
        require_column(table, label_column, "label", (text_column, pair_column))
        values[name] = (texts(table, text_column), raw_labels(table, label_column))
    reference = "train" if "train" in tables else "all"
    declared = tables[reference].class_names.get(label_column)
    numeric = declared is None and all(all_numeric(labels) for _, labels in values.values())
    if numeric and _decimal_classes(values[reference][1], label_column, warnings):
        numeric = False
    if declared is None and not numeric:
        _warn_numbers_written_apart([v for _, labels in values.values() for v in labels], label_column, warnings)
    keys = {
        name: label_keys(labels, tables[name], label_column, numeric) for name, (_, labels) in values.items()
    }
    names = label_names_for(keys[reference], declared)
    present = {str(k) for k in keys[reference]}
    if training:
        check_classes(names, present, tables[reference].origin, label_column)
    _check_unseen(tables, keys, present, label_column)
    _warn_absent_classes(tables, keys, present, label_column, warnings)
    check_not_an_id(keys[reference], tables[reference].origin, label_column)
    if numeric:
        _warn_numbers_merged(tables, keys, label_column, warnings)
    index = {n: i for i, n in enumerate(names)}
    parts = {
        name: {"text": values[name][0], "label": [index[str(k)] for k in labels]}
        | ({"text_pair": pairs[name]} if pairs else {})
        for name, labels in keys.items()
    }
    _warn_conflicting_labels(parts, names, warnings)
    if numeric:
        ids, names = names, _names_from_column(tables, keys, names, label_column, warnings)
        if training and names == ids and ids != [str(i) for i in range(len(ids))]:
            _warn_ids_renumbered(ids, label_column, warnings)
    else:
        _warn_near_duplicate_labels(names, label_column, warnings)
        _warn_odd_label_names(names, parts[reference]["label"], label_column, warnings)
        _warn_combined_labels(names, label_column, warnings)
    return parts, names


def _warn_ids_renumbered(ids: list[str], column: str, warnings: list[str]) -> None:
    """Integer labels that are not 0 to n-1 (stars 1 to 5, ids 0, 1, 3): each is a class name, and the model's class
    ids are its outputs 0 to n-1, so a raw argmax is not the label the file writes: said, with how to read it."""
    last = len(ids) - 1
    warnings.append(f"column '{column}' holds the integer labels {some_of(ids, 6)}, not 0 to {last}: each is a class "
                    f"name, and the model numbers its outputs 0 to {last} (its config's id2label maps {last} to "
                    f"'{ids[-1]}'), so read predictions by name (tunelab predict and pipeline('text-classification') "
                    "do), not as the argmax's index")


#: How R, Excel and pandas write a missing value out ("none" is left out: it is a common class name).
MISSING_SPELLINGS = frozenset({"nan", "-nan", "na", "n/a", "#n/a", "null", "<na>", "nat"})


def _warn_odd_label_names(names: list[str], labels: list[int], column: str, warnings: list[str]) -> None:
    """Class names that look like a mistake: a missing value written out ('NaN', 'N/A', 'null'), or integer ids
    beside words (0, 1, 'positive', 'negative': a half-recoded column). Each stays a class, with a warning."""
    counts = [labels.count(i) for i in range(len(names))]
    missing = [(n, c) for n, c in zip(names, counts) if n.strip().casefold() in MISSING_SPELLINGS]
    if missing:
        shown = ", ".join(f"{brief(n)} ({c} row{'s' if c != 1 else ''})" for n, c in missing)
        warnings.append(f"column '{column}': {shown} looks like a missing value written out, and trains as a class of "
                        "its own; if those rows have no label, drop them")
    ids = [n for n in names if n.strip().lstrip("+-").isdigit()]
    words = [n for n in names if n not in ids and n.strip().casefold() not in MISSING_SPELLINGS]
    if ids and words:
        warnings.append(f"column '{column}' mixes integer ids ({', '.join(brief(n) for n in ids[:4])}) and names "
                        f"({', '.join(brief(n) for n in words[:4])}): each is a class of its own, {len(names)} in all; "
                        "if an id and a name mean one class, write them alike")


def _warn_combined_labels(names: list[str], column: str, warnings: list[str]) -> None:
    """Class names that list other classes ('a,b', "['a', 'b']", 'a|b'): a multi-label column. tunelab trains one label
    per example, so each combination is a class of its own: said, with what to do."""
    def parts(name: str) -> list[str]:
        return [p for p in (p.strip(" '\"").casefold() for p in re.split(r"[,;|]", name.strip().strip("[]"))) if p]

    known = {" ".join(parts(n)) for n in names}
    combined = [n for n in names if (len(parts(n)) > 1 and any(p in known for p in parts(n)))
                or re.fullmatch(r"\[.*\]", n.strip())]  # a list written out ("['a', 'b']")
    if combined:
        shown = ", ".join(brief(n) for n in combined[:4]) + (" ..." if len(combined) > 4 else "")
        warnings.append(f"column '{column}': {shown} look{'s' if len(combined) == 1 else ''} like lists of labels, as a "
                        "multi-label column holds; tunelab trains one label per example, so each combination is a class of its own "
                        "(for several labels an example, train one classifier per label, with yes/no labels)")


def _warn_near_duplicate_labels(names: list[str], column: str, warnings: list[str]) -> None:
    """Labels that differ only in case or spacing ('Positive', 'positive ') are separate classes: say so."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(" ".join(name.casefold().split()), []).append(name)
    alike = [g for g in groups.values() if len(g) > 1]
    if alike:
        shown = "; ".join(" and ".join(brief(n) for n in g) for g in alike[:3]) + (" ..." if len(alike) > 3 else "")
        warnings.append(f"column '{column}': labels that differ only in case or spacing are separate classes ({shown}); "
                        "if they mean one class, write them alike")


def names_column(table: Table, label_column: str) -> str | None:
    """The column that names integer label ids, as Hugging Face / SetFit datasets ship it next to them
    (``label_text``; also ``<label>_text``, ``label_name``, ``<label>_name``), if the table has one."""
    for column in (f"{label_column}_text", "label_text", f"{label_column}_name", "label_name"):
        if column != label_column and column in table.columns:
            return column
    return None


def _names_from_column(tables: dict[str, Table], keys: dict[str, list[Any]], ids: list[str], label_column: str,
                       warnings: list[str]) -> list[str]:
    """The class names for integer label ids (``ids``, their string forms in order) from a column that names them
    (:func:`names_column`), when every table that has it gives each id one name and each name one id; otherwise
    the ids, with a warning that says where the naming breaks."""
    reference = "train" if "train" in tables else "all"
    column = names_column(tables[reference], label_column)
    if column is None:
        return ids
    named: dict[str, str] = {}
    where: dict[str, str] = {}
    for split, table in tables.items():
        if column not in table.columns:
            continue
        for i, (key, name) in enumerate(zip(keys[split], table.columns[column], strict=True)):
            name = str(name).strip() if name is not None else ""
            key = str(key)
            if not name:
                continue
            if named.setdefault(key, name) != name:
                warnings.append(f"column '{column}' names label {key} both {brief(named[key])} ({where[key]}) and "
                                f"{brief(name)} ({table.origin}, {table.where([i])}); the class names stay the label ids")
                return ids
            where.setdefault(key, f"{table.origin}, {table.where([i])}")
    clash = [n for n, c in Counter(named.values()).items() if c > 1]
    missing = [k for k in ids if k not in named]
    if clash or missing:
        why = (f"gives {brief(clash[0])} to several labels" if clash
               else f"leaves label {missing[0]} unnamed")
        warnings.append(f"column '{column}' {why}; the class names stay the label ids")
        return ids
    warnings.append(f"class names from column '{column}': "
                    + ", ".join(f"{k} = {brief(named[k])}" for k in ids[:6]) + (" ..." if len(ids) > 6 else ""))
    return [named[k] for k in ids]


def _warn_absent_classes(tables: dict[str, Table], keys: dict[str, list[Any]], train: set[str], column: str,
                         warnings: list[str]) -> None:
    """A user-given validation or test split without some class of train: nothing measures how that class is
    recognised there, and macro-F1 there averages over the other classes (:func:`tunelab.metrics.macro_classes`)."""
    for split in ("validation", "test"):
        if split in keys and keys[split]:
            absent = sorted(train - {str(k) for k in keys[split]})
            if absent:
                warnings.append(f"{tables[split].origin}: the {split} split has no example of {some_of(absent)} "
                                f"(column '{column}'): nothing measures how {'it is' if len(absent) == 1 else 'they are'} "
                                f"recognised there, and its macro-F1 averages over the {len(train) - len(absent)} "
                                f"of {len(train)} classes it holds")


def _check_unseen(tables: dict[str, Table], keys: dict[str, list[Any]], train: set[str], column: str) -> None:
    """Every label of a user-given validation or test split must also occur in train."""
    for split in ("validation", "test"):
        if split not in keys:
            continue
        unseen = [i for i, k in enumerate(keys[split]) if str(k) not in train]
        if unseen:
            table, label = tables[split], keys[split][unseen[0]]
            alike = written_otherwise([label], sorted(train))
            todo = (f"train writes it {brief(alike[1])} (labels are classes as written): write them alike" if alike
                    else "add training examples of it or remove those rows")
            raise DataError(
                f"{table.origin}: label {brief(label)} (column '{column}') appears in the {split} split at "
                f"{table.where(unseen)} but never in train; {todo}"
            )


def _causal(
    tables: dict[str, Table], text_column: str, label_column: str, explicit: bool, warnings: list[str]
) -> dict[str, Columns]:
    """Texts (and chat messages) per table; labels are not used."""
    parts: dict[str, Columns] = {}
    for name, table in tables.items():
        # the chat column named as the text column (--text-column messages) is read as chat too
        chat_named = text_column in CHAT_COLUMNS
        if is_chat(table) and text_column not in ("text", *table.columns) and not chat_named:
            # a --text-column the rows do not have was ignored in silence, training on the conversations
            chat = next(c for c in CHAT_COLUMNS if c in table.columns)
            raise DataError(f"{table.origin}: no column '{text_column}' (--text-column); its rows are conversations "
                            f"('{chat}'): drop --text-column to train on them, or name one of its columns: "
                            f"{', '.join(map(repr, table.column_names))}")
        if is_chat(table) and (text_column == "text" or text_column not in table.columns or chat_named):
            messages = chat_messages(table)
            parts[name] = {"text": [render(m) for m in messages], "messages": messages}
            if text_column == "text" and "text" in table.columns and name in ("all", "train"):
                # --text-column text cannot be told from the default: which column trains is said, and how to choose
                chat = next(c for c in CHAT_COLUMNS if c in table.columns)
                warnings.append(f"{table.origin}: has both conversations ('{chat}') and a 'text' column: training on "
                                "the conversations; to train on the plain text, rename its column and pass "
                                "--text-column NEW_NAME (or drop the conversations)")
        else:
            require_column(table, text_column, "text")
            parts[name] = {"text": texts(table, text_column)}
            if explicit and label_column in table.columns and name in ("all", "train"):
                warnings.append(f"column '{label_column}' ignored: causal-lm trains on the text alone")
    if len({tuple(sorted(p)) for p in parts.values()}) > 1:
        raise DataError(
            "the splits mix chat rows (messages) and plain text rows; give every split in the same format"
        )
    return parts


def _warn_conflicting_labels(parts: dict[str, Columns], names: list[str], warnings: list[str]) -> None:
    """The same example under different labels is label noise no model can fit: say how often, with one case."""
    seen: dict[str, set[int]] = {}
    for columns in parts.values():
        for key, label in zip(example_keys(columns), columns["label"], strict=True):
            seen.setdefault(key, set()).add(label)
    torn = [(key, labels) for key, labels in seen.items() if len(labels) > 1]
    if torn:
        key, labels = torn[0]
        warnings.append(
            f"{len(torn)} {'text carries' if len(torn) == 1 else 'texts carry'} more than one label (e.g. "
            f"{brief(key.split(chr(0))[0])} as {' and '.join(repr(names[i]) for i in sorted(labels))}); no model can "
            "fit both, so check those labels"
        )


def _repeats_note(groups: list[list[int]], how: str) -> list[str]:
    """``N examples repeat an earlier text exactly; kept, {how}`` when any group holds copies."""
    repeated = sum(len(group) - 1 for group in groups)
    said = "1 example repeats" if repeated == 1 else f"{repeated} examples repeat"
    return [f"{said} an earlier text exactly; kept, {how}"] if repeated else []


def _overlap_notes(parts: dict[str, Columns]) -> list[str]:
    """For a user-given split: how many validation / test rows repeat a training example exactly."""
    train = set(example_keys(parts["train"]))
    notes = []
    for split in ("validation", "test"):
        if split in parts:
            copies = sum(key in train for key in example_keys(parts[split]))
            if copies:
                notes.append(
                    f"{copies} of the {len(parts[split]['text'])} rows of your {split} split repeat a training text "
                    f"exactly, so its metric is optimistic on them; remove them from {split} for an unbiased estimate"
                )
    return notes


def _split(
    parts: dict[str, Columns],
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    warnings: list[str],
    names: list[str],
) -> dict[str, Columns]:
    """Seeded three-way split of ``parts["all"]``, or the user's split with missing parts carved from train."""
    if "all" in parts:
        columns = parts["all"]
        groups = example_groups(columns)
        labels = columns.get("label")
        n_rows = sum(len(group) for group in groups)
        if len(groups) < 3 and n_rows > len(groups):
            raise DataError(f"only {len(groups)} different texts among {n_rows} rows (every copy of a text stays in one "
                            "split); give at least 3 different texts so that train, validation and test each get one")
        rows = three_way(
            len(groups),
            None if labels is None else [labels[group[0]] for group in groups],
            validation_fraction,
            test_fraction,
            seed,
            warnings,
            names,
        )
        warnings += _repeats_note(groups, "with every copy of a text in the same split, so that no validation or "
                                          "test text is also a training text")
        return {name: take(columns, expand(groups, rows[name])) for name in SPLITS}
    train = parts["train"]
    groups = example_groups(train)
    labels = None if "label" not in train else [train["label"][group[0]] for group in groups]
    kept = list(range(len(groups)))
    carved: dict[str, list[int]] = {}
    noted: set[int] = set()
    for split, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        if split not in parts:
            size = max(1, round(len(groups) * fraction))
            single: set[int] = set()
            kept, carved[split] = carve(kept, labels, size, seed, split, warnings, names, single)
            if single:
                warnings.append(kept_note(sorted(single), names, f" left for the {split} split",
                                          f"the {split} split does not measure"))
            noted |= single
            taken = len(expand(groups, carved[split]))
            warnings.append(f"no {split} split given: took {taken} rows ({fraction:.0%}) of train")
    if carved and labels is not None:
        warnings += unmeasured_notes(labels, kept, carved, noted, names)
    warnings += _repeats_note(groups, "with every copy of a text on one side of the splits carved from train"
                              if carved else "in train, where each copy weighs as one example")
    warnings += _overlap_notes(parts)
    out = {"train": take(train, expand(groups, kept))}
    for split in ("validation", "test"):
        out[split] = parts[split] if split in parts else take(train, expand(groups, carved[split]))
    return out


def _features(task: str, columns: Columns) -> Any:
    import datasets

    features: dict[str, Any] = {"text": datasets.Value("string")}
    if "text_pair" in columns:
        features["text_pair"] = datasets.Value("string")
    if task == "classification":
        features["label"] = datasets.Value("int64")
    if "messages" in columns:
        features["messages"] = datasets.List(
            {"role": datasets.Value("string"), "content": datasets.Value("string")}
        )
    return datasets.Features(features)


def _unsplit(parts: dict[str, Columns]) -> dict[str, Columns]:
    """Every row of ``parts`` as ``train`` (a given split's parts in the order train, validation, test), with empty
    validation and test splits of the same columns."""
    ordered = [parts[name] for name in ("all", *SPLITS) if name in parts]
    keys = list(ordered[0])
    every = {key: [value for part in ordered for value in part[key]] for key in keys}
    return {"train": every, **{name: {key: [] for key in keys} for name in SPLITS if name != "train"}}


def _task_data(
    task: str, splits: dict[str, Columns], names: list[str], source: str, warnings: list[str]
) -> TaskData:
    import datasets

    features = _features(task, splits["train"])
    built = {name: datasets.Dataset.from_dict(columns, features=features) for name, columns in splits.items()}
    return TaskData(
        task=task,  # type: ignore[arg-type]
        train=built["train"],
        validation=built["validation"],
        test=built["test"],
        label_names=names,
        source=source,
        fingerprint=(digest := fingerprint(task, names, splits)),
        warnings=list(dict.fromkeys(warnings)),
        split_fingerprint=digest,
    )


def subsample_train(data: TaskData, fraction: float, seed: int) -> TaskData:
    """A seeded subset of ``data.train`` (stratified by label); validation and test are unchanged.

    Subsets are nested: with one seed, the rows kept at fraction 0.25 are among those kept at 0.5,
    so a data-fraction curve measures more data, not different data.

    >>> half = subsample_train(load_task_data("rotten-tomatoes"), 0.5, seed=0)  # doctest: +SKIP
    """
    if not 0 < fraction <= 1:
        raise DataError(f"data fraction {fraction} is out of range; give a fraction in (0, 1], e.g. 0.25")
    n = len(data.train)
    size = max(1, round(n * fraction))
    if size >= n:
        return replace(data, warnings=list(data.warnings))
    labels = list(data.train["label"]) if data.task == "classification" else None
    rows = sorted(nested_order(labels, n, seed)[:size])
    warnings = list(data.warnings)
    if labels is not None:
        missing = set(labels) - {labels[i] for i in rows}
        if missing:
            names = ", ".join(data.label_names[i] for i in sorted(missing))
            warnings.append(f"the {size}-row training subset has no examples of: {names}")
    digest = hashlib.sha256(f"{data.fingerprint}|subsample|{size}|{seed}".encode()).hexdigest()
    return replace(
        data,
        train=data.train.select(rows),
        fingerprint=digest,
        source=f"{data.source}; train subsampled to {size} of {n} rows ({fraction:.0%}, seed {seed})",
        warnings=warnings,
    )


def list_datasets() -> list[dict[str, Any]]:
    """The built-in datasets with their task, description, split sizes, labels and source package.

    A dataset whose package is not installed is listed with ``installed: False``, ``rows: None`` and
    the ``install`` command to run.
    """
    out: list[dict[str, Any]] = []
    for builtin in BUILTINS.values():
        entry: dict[str, Any] = {
            "name": builtin.name,
            "task": builtin.task,
            "description": builtin.description,
            "package": builtin.requirement,
            "install": builtin.install,
        }
        try:
            package_dir(builtin.module, builtin.requirement, builtin.name)
            data = load_task_data(builtin.name)
        except DataError as err:
            entry.update(installed=False, rows=None, num_labels=0, label_names=[], error=str(err))
        else:
            rows = {name: len(split) for name, split in data.splits().items()}
            rows["total"] = sum(rows.values())
            entry.update(installed=True, rows=rows, num_labels=data.num_labels, label_names=data.label_names)
        out.append(entry)
    return out


__all__ = ["SUPPORTED_EXTENSIONS", "TASKS", "list_datasets", "load_task_data", "subsample_train"]
