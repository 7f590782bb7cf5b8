"""Seeded train/validation/test splits (stratified where the classes allow it) and fingerprints."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunelab.errors import DataError

Columns = dict[str, list[Any]]


def example_groups(columns: Columns) -> list[list[int]]:
    """Row ids grouped by identical example (its text, with its pair for a text pair), groups in order of their
    first row: the unit a split moves, so that no copy of a training text is validated or tested on."""
    keys = example_keys(columns)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def example_keys(columns: Columns) -> list[str]:
    """One string per row that is equal exactly when two rows hold the same example."""
    if "text_pair" in columns:
        return [f"{t}\x00{p}" for t, p in zip(columns["text"], columns["text_pair"], strict=True)]
    return list(columns["text"])


def expand(groups: list[list[int]], chosen: Sequence[int]) -> list[int]:
    """The rows of the chosen groups, in the groups' order (singleton groups: ``chosen`` itself)."""
    return [row for group in chosen for row in groups[group]]


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Both fractions in (0, 1) and together below 1."""
    for flag, value in (("--validation-fraction", validation_fraction), ("--test-fraction", test_fraction)):
        if not 0 < value < 1:
            raise DataError(f"{flag} is {value}; give a fraction between 0 and 1 (e.g. 0.1)")
    if validation_fraction + test_fraction >= 1:
        raise DataError(
            f"--validation-fraction {validation_fraction} and --test-fraction {test_fraction} leave no training "
            "data; make their sum below 1"
        )


def take(columns: Columns, rows: Sequence[int]) -> Columns:
    """The given rows of every column."""
    return {name: [values[i] for i in rows] for name, values in columns.items()}


def carve(
    rows: list[int],
    labels: list[int] | None,
    size: int,
    seed: int,
    what: str,
    warnings: list[str],
    names: list[str] | None = None,
    kept_classes: set[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Split ``rows`` into (kept, carved) with ``size`` carved rows, stratified on ``labels`` if possible.

    ``labels`` (if given) are indexed by row id. A class with a single row among ``rows`` cannot be on both
    sides: its row stays with the kept (training) rows, with a warning, and the other classes are stratified
    as usual, so one rare class neither unstratifies the split nor, by the seed's luck, leaves itself without
    a training example. Stratification needs at least one row per class on each side; otherwise the split is
    plain random with a warning. ``kept_classes``, when given, collects the classes kept whole in training
    instead of warning about them (the caller says it once for several carves).
    """
    from sklearn.model_selection import train_test_split

    if len(rows) - size < 1 or size < 1:
        raise DataError(
            f"only {len(rows)} examples to split into train and {what}; give at least 3 examples "
            "(more for a useful evaluation)"
        )
    pool, reserved = list(rows), []
    stratify = None
    if labels is not None:
        counts = Counter(labels[i] for i in rows)
        single = sorted(c for c, k in counts.items() if k < 2)
        if single and len(rows) - len(single) - size >= 1:
            pool = [i for i in rows if counts[labels[i]] >= 2]
            reserved = [i for i in rows if counts[labels[i]] < 2]
            if kept_classes is None:
                warnings.append(kept_note(single, names, f" left for the {what} split", f"the {what} split does not measure"))
            else:
                kept_classes.update(single)
        y = [labels[i] for i in pool]
        reason = _cannot_stratify(y, size, len(pool) - size, names)
        if reason is None:
            stratify = y
        else:
            one_each = _one_of_each(pool, labels, seed)  # a random carve could take every example of a class
            if len(pool) - len(one_each) >= size:
                pool = [i for i in pool if i not in set(one_each)]
                reserved += one_each
                reason += "; one example of each class kept in training"
            warnings.append(f"{what} split is not stratified: {reason}")
    kept, carved = train_test_split(pool, test_size=size, random_state=seed, shuffle=True, stratify=stratify)
    return list(kept) + reserved, list(carved)


def _one_of_each(rows: list[int], labels: list[int], seed: int) -> list[int]:
    """One row of each class among ``rows``, drawn with ``seed``."""
    order = np.random.default_rng(seed).permutation(len(rows))
    first: dict[int, int] = {}
    for k in order:
        first.setdefault(labels[rows[k]], rows[k])
    return sorted(first.values())


def kept_note(classes: list[int], names: list[str] | None, left: str, unmeasured: str) -> str:
    """``class 'x' has a single example{left}: kept in training, so {unmeasured} ...``"""
    shown = ", ".join(f"'{names[c] if names is not None else c}'" for c in classes[:5])
    more = f" and {len(classes) - 5} more" if len(classes) > 5 else ""
    one = len(classes) == 1
    return (f"{'class' if one else 'classes'} {shown}{more} {'has' if one else 'have'} a single example{left}: kept "
            f"in training, so {unmeasured} {'it' if one else 'them'} (add examples of a class to have it measured)")


def _cannot_stratify(y: list[int], size: int, rest: int, names: list[str] | None) -> str | None:
    counts = Counter(y)
    smallest, count = min(counts.items(), key=lambda item: (item[1], item[0]))
    if count < 2:
        name = names[smallest] if names is not None else smallest
        return f"class '{name}' has only {count} example"
    if size < len(counts) or rest < len(counts):
        return f"{size} rows cannot hold one example of each of {len(counts)} classes"
    return None


def split_sizes(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation, test) sizes: each at least 1 row, rounded from the fractions."""
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * validation_fraction))
    if n - n_test - n_val < 1:
        from tunelab.data.validate import scoring_hint

        raise DataError(f"only {n} example{'s' if n != 1 else ''}; give at least 3 so that train, validation and test each get one"
                        + scoring_hint())
    return n_val, n_test


def three_way(
    n: int,
    labels: list[int] | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    warnings: list[str],
    names: list[str] | None = None,
) -> dict[str, list[int]]:
    """Row ids for train/validation/test, seeded, stratified on ``labels`` where possible."""
    n_val, n_test = split_sizes(n, validation_fraction, test_fraction)
    kept_for_test: set[int] = set()
    kept_for_validation: set[int] = set()
    rest, test = carve(list(range(n)), labels, n_test, seed, "test", warnings, names, kept_for_test)
    train, validation = carve(rest, labels, n_val, seed, "validation", warnings, names, kept_for_validation)
    if kept_for_test:
        warnings.append(kept_note(sorted(kept_for_test), names, "", "neither validation nor test measures"))
    if kept_for_validation - kept_for_test:
        warnings.append(kept_note(sorted(kept_for_validation - kept_for_test), names, " once test was split off",
                                   "validation does not measure"))
    if labels is not None:
        warnings += unmeasured_notes(labels, train, {"validation": validation, "test": test},
                                     kept_for_test | kept_for_validation, names)
    return {"train": train, "validation": validation, "test": test}


def unmeasured_notes(labels: list[int], train: Sequence[int], carved: dict[str, Sequence[int]], noted: set[int],
                     names: list[str] | None) -> list[str]:
    """What a stratified split left unmeasured beyond the single examples already ``noted``: a class of a few
    examples (2 of 183 tickets) rounds to none in a carved split of a tenth or a fifth, and is then trained on but
    never validated or tested, which the run should say as it says it of a single example."""
    counts = Counter(labels[i] for i in train)
    for rows in carved.values():
        counts.update(labels[i] for i in rows)
    held = {split: {labels[i] for i in rows} for split, rows in carved.items()}
    missing = {split: sorted(c for c in counts if c not in held[split] and c not in noted) for split in carved}
    nowhere = sorted(set.intersection(*(set(m) for m in missing.values()))) if len(missing) > 1 else []
    notes = []
    if nowhere:
        notes.append(_few_note(nowhere, counts, names, " or ".join(carved), f"neither {' nor '.join(carved)} measures"))
    for split, absent in missing.items():
        rest = [c for c in absent if c not in nowhere]
        if rest:
            notes.append(_few_note(rest, counts, names, split, f"{split} does not measure"))
    return notes


def _few_note(classes: list[int], counts: Counter, names: list[str] | None, where: str, unmeasured: str) -> str:
    """``class 'x' (2 examples) has none in the validation or test split: ...``"""
    shown = ", ".join(f"'{names[c] if names is not None else c}' ({counts[c]} examples)" for c in classes[:5])
    more = f" and {len(classes) - 5} more" if len(classes) > 5 else ""
    one = len(classes) == 1
    return (f"{'class' if one else 'classes'} {shown}{more} {'has' if one else 'have'} no example in the {where} "
            f"split, so {unmeasured} "
            f"{'it' if one else 'them'} (add examples of a class to have it measured)")


def nested_order(labels: list[int] | None, n: int, seed: int) -> list[int]:
    """A seeded order of ``n`` rows whose every prefix keeps the class ratios (nested subsets).

    Each class is shuffled; its k-th row gets the key (k + 0.5) / class_size, and rows are sorted by
    that key with random tie-breaks. A prefix of length m then holds about m * p(class) of each class.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return [int(i) for i in rng.permutation(n)]
    keys = np.empty(n)
    label_array = np.asarray(labels)
    for label in np.unique(label_array):
        members = rng.permutation(np.flatnonzero(label_array == label))
        keys[members] = (np.arange(len(members)) + 0.5) / len(members)
    ties = rng.random(n)
    return [int(i) for i in np.lexsort((ties, keys))]


def fingerprint(task: str, label_names: list[str], splits: dict[str, Columns]) -> str:
    """sha256 over the task, label names and every row of every split, in order."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"task": task, "label_names": label_names}, sort_keys=True).encode())
    for name, columns in splits.items():
        digest.update(f"\x00{name}\x00".encode())
        keys = sorted(columns)
        for row in zip(*(columns[k] for k in keys)):
            digest.update(json.dumps(dict(zip(keys, row)), sort_keys=True).encode())
            digest.update(b"\n")
    return digest.hexdigest()
