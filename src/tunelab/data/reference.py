"""General-English reference texts: what "general ability" is measured on (domain signals before
training, forgetting after it).

The default is a fixed, seeded sample of the BBC news articles (the ``bbc-text`` built-in). When the
training data *is* that reference, another packaged text stands in (Hamlet), so a run is never
measured on its own training data; a user's own reference is a plain text file, one text per
blank-line-separated paragraph.
"""

from __future__ import annotations

import random
from pathlib import Path

from tunelab.errors import DataError, setting, setting_as

#: The forgetting measures (:mod:`tunelab.run.forgetting`): a decoder's language-model loss change, an encoder's
#: representation drift. Here, below the config, which checks a ``--reference-text``'s length for its model's measure.
LM_LOSS = "lm_loss_change"
DRIFT = "representation_drift"

#: The fewest reference texts each measure reads, and why: what refuses a shorter ``--reference-text`` before training
#: (:func:`min_texts`, checked by the config). With the biased estimator, 2 texts read a drift of 0 whatever the model
#: did (a run with 2 paragraphs reported 0.000 [0.000, 0.000] after bitfit).
MIN_TEXTS = {
    DRIFT: (5, "an encoder's representation drift (debiased CKA needs 4 texts, Song et al.'s unbiased HSIC dividing "
               "by n - 3, and its jackknife interval one more)"),
    LM_LOSS: (2, "a decoder's language-model loss change with an interval (the interval resamples the texts: one "
                 "text leaves it [v, v])"),
}


def measure_for(model: str, *, trust_remote_code: bool = False) -> str | None:
    """The forgetting measure of ``model`` (a built-in, folder or hub id): :data:`LM_LOSS` where its checkpoint holds a
    pre-trained LM head, else :data:`DRIFT`, as :func:`tunelab.run.forgetting.measure_run` chooses it; ``None`` where
    its config cannot be read."""
    from tunelab.models import has_lm_head

    head = has_lm_head(model, trust_remote_code=trust_remote_code)
    return None if head is None else LM_LOSS if head else DRIFT


def min_texts(model: str, *, trust_remote_code: bool = False) -> tuple[int, str]:
    """(the fewest reference texts, why) for ``model``'s measure (:data:`MIN_TEXTS`); the largest where the measure is
    not known."""
    measure = measure_for(model, trust_remote_code=trust_remote_code)
    return MIN_TEXTS[measure] if measure is not None else max(MIN_TEXTS.values())


DEFAULT_REFERENCE = "bbc-text"
ALTERNATE_REFERENCE = "hamlet"
# built-ins that hold the default reference's articles
_SAME_AS_DEFAULT = {"bbc-text", "bbc-news"}


def reference_texts(n: int = 64, seed: int = 0, *, source: str = DEFAULT_REFERENCE) -> list[str]:
    """``n`` reference texts from the built-in ``source`` (its training split), seeded."""
    from tunelab.data.load import load_task_data

    ref = load_task_data(source, seed=seed)
    texts = [t for t in ref.train["text"] if t.strip()]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def reference_file_paragraphs(user_file: str | Path, need: tuple[int, str] | None = None) -> list[str]:
    """The texts of a ``--reference-text`` file: a table's (CSV, TSV, JSON lines, JSON, Parquet, compressed too) text
    column (``text``, or the one column named like a text), as ``predict --file`` reads one; else the file's
    paragraphs (separated by blank lines), read as ``--data`` reads plain text (UTF-8 with or without a BOM, UTF-16 /
    UTF-32 with one, compressed). :class:`DataError` for a file that is missing, unreadable or holds fewer texts than
    ``need`` says, (fewest, what they serve): the run's forgetting measure's
    (:func:`min_texts`), checked before training (the measurement comes after it)."""
    from tunelab.data.chunking import split_paragraphs
    from tunelab.data.load import texts_of_table
    from tunelab.data.readers import read_utf8

    if not str(user_file).strip():  # Path("") is the working folder, said to be "a folder"
        raise DataError(f"{setting('reference_text')} is empty: pass a plain text file (paragraphs separated by blank lines), or "
                        "leave it out for the built-in reference")
    path = Path(user_file)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise DataError(f"{setting('reference_text', str(path))} {what}: pass a plain text file (paragraphs separated by blank lines)")
    try:
        table = texts_of_table(path)
        texts = table[0] if table else split_paragraphs(read_utf8(path))
    except DataError as exc:  # the reader's line names the file and what is wrong with it
        raise DataError(setting_as("reference_text", str(exc))) from exc
    fewest, why = need or (1, "a forgetting measure")
    if len(texts) < fewest:
        what = (f"{len(texts)} non-empty text(s) in its column {table[1]}; give at least {fewest}" if table else
                f"{len(texts)} paragraph(s); give at least {fewest}, separated by blank lines (lines without a "
                "blank line between them are one paragraph)")
        raise DataError(f"{setting('reference_text', str(path))} holds {what}: fewer cannot show {why}")
    return texts


def reference_for(training_data: str, user_file: str | None = None, *, n: int = 64, seed: int = 0) -> tuple[str, list[str]]:
    """(name, texts) of the reference for a run trained on ``training_data``."""
    if user_file:
        paragraphs = reference_file_paragraphs(user_file)
        return str(user_file), random.Random(seed).sample(paragraphs, min(n, len(paragraphs)))
    source = ALTERNATE_REFERENCE if training_data in _SAME_AS_DEFAULT else DEFAULT_REFERENCE
    return source, reference_texts(n, seed, source=source)
