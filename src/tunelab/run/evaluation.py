"""Score a saved artifact on data (``tunelab evaluate``)."""

from __future__ import annotations

import logging
import math
import os
from typing import Any, NamedTuple

import numpy as np
import torch

from tunelab.errors import ConfigError, DataError, setting, setting_as, some_of


def run_split_settings(path, info: dict) -> dict:
    """How training read and split its data (seed, fractions, columns): recorded in ``tunelab.json``; for a folder
    written before it was, the ``run_config.yaml`` beside ``model/``; else tunelab's defaults."""
    from tunelab.config import TrainConfig, saved_settings
    from tunelab.run.artifacts import find_model_dir

    keys = ("seed", "validation_fraction", "test_fraction", "text_column", "label_column", "max_eval_samples", "data")
    if info.get("split"):
        return {k: info["split"][k] for k in keys if k in info["split"]}
    recorded = saved_settings(find_model_dir(path).parent / "run_config.yaml")
    if recorded is not None:
        return {k: recorded[k] for k in keys if k in recorded}
    defaults = TrainConfig()  # not its data: the default dataset is no record of what the run read
    return {k: getattr(defaults, k) for k in keys if k != "data"}


class RecordedData(NamedTuple):
    """The data a run trained on, as :func:`recorded_data` found it: its name (a built-in or a path) and, where the run
    recorded a fingerprint of its rows, the data as the check read and split it (``None`` where nothing was read), which
    :func:`evaluate_artifact` scores rather than read a big file a second time; and the file as the check read it
    (:class:`~tunelab.data.table.RawData`, ``None`` for a built-in), which another split (``all``), seed or column is
    made of rather than read again."""

    spec: str
    read: Any = None
    raw: Any = None


def recorded_data(path) -> RecordedData:
    """The data the run in ``path`` trained on, as its ``tunelab.json`` records it (:func:`run_split_settings`): what
    :func:`evaluate_artifact` scores when given no data. A built-in name, or a file or folder still where it was and
    as it was (its rows, read and split as the run did, against the run's fingerprint of them,
    :func:`_trained_fingerprint`); data given in memory, a path that has moved or gone, data that has changed, or a
    folder that records none raise :class:`~tunelab.errors.ConfigError`, one line saying to give the data."""
    import json
    from pathlib import Path

    from tunelab.data import BUILTIN_DATASETS, load
    from tunelab.run.artifacts import find_model_dir
    from tunelab.run.progress import library_bars_off
    from tunelab.run.training import IN_MEMORY

    folder = find_model_dir(path)
    try:
        info = json.loads((folder / "tunelab.json").read_text())
    except (OSError, ValueError):
        info = {}
    data = run_split_settings(folder, info).get("data")
    give = "pass --data (from Python: evaluate_artifact(run, data)) with the data to score"
    if not data:
        raise ConfigError(f"{path} does not record the data it trained on (saved before tunelab kept it): {give}")
    data = str(data)
    if data.startswith(IN_MEMORY):
        raise ConfigError(f"{path} trained on data given in memory ({data}), which cannot be read again: {give}")
    if data not in BUILTIN_DATASETS and not Path(data).expanduser().exists():
        raise ConfigError(f"{path} trained on {data}, which is no longer there (moved or deleted): {give}")
    fingerprint = _trained_fingerprint(folder, info)
    if not fingerprint:  # a run saved before it was kept: nothing to check it against
        return RecordedData(data)
    with library_bars_off():
        raw = None if data in BUILTIN_DATASETS else load.resolve(data)  # a built-in's tables are cached: not read again
        read = _load_as_trained(data if raw is None else raw, info, run_split_settings(folder, info))
    if read.split_fingerprint != fingerprint:  # scored as it is now, its split would be another
        raise ConfigError(f"{path} trained on {data}, which has changed since (its rows are not the ones the run "
                          "recorded): a split made of it now is not the run's, and its test rows may be ones the model "
                          f"trained on; to score it as it is now, {give}")
    return RecordedData(data, read, raw)


def _trained_fingerprint(folder, info: dict) -> str | None:
    """The fingerprint of the data as the run split it (:attr:`tunelab.data.TaskData.split_fingerprint`), as
    ``tunelab.json`` records it or, for a run saved before it did, the run's ``metrics.json`` beside ``model/``;
    ``None`` where neither does."""
    from tunelab.io import read_json

    if (info.get("split") or {}).get("fingerprint"):
        return info["split"]["fingerprint"]
    try:
        return read_json(folder.parent / "metrics.json")["meta_info"].get("split_fingerprint")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _load_as_trained(data_spec: Any, info: dict, recorded: dict, *, text_column: str | None = None,
                     label_column: str | None = None, seed: int | None = None, split: bool = True):
    """``data_spec`` (or the :class:`~tunelab.data.table.RawData` read of it) read as the run read its data
    (:func:`run_split_settings`: its seed, fractions and columns, unless given) for its model's task; ``split=False``:
    every row, unsplit."""
    from tunelab.data import load_task_data
    from tunelab.data.validate import task_fixed

    fractions = {k: recorded[k] for k in ("validation_fraction", "test_fraction") if k in recorded}
    with task_fixed():  # the model's: no data error suggests another --task
        return load_task_data(data_spec, task=info["task"], text_column=text_column or recorded.get("text_column") or "text",
                              label_column=label_column or recorded.get("label_column") or "label",
                              seed=recorded.get("seed", 42) if seed is None else seed, split=split, **fractions)


def _warn_if_other_data(data_spec: str, trained_on: str | None, scored: int, rows: int, split: str) -> None:
    """A split of data the model did not train on is a part of it chosen for nothing: say how much, and that
    ``--split all`` scores every row."""
    import logging

    from tunelab.run.artifacts import data_reference

    if trained_on is None or data_reference(data_spec) == trained_on:
        return
    logging.getLogger("tunelab").warning(
        f"{data_spec} is not the data this model trained on ({trained_on}): its {split} split, {scored} of its {rows} "
        f"rows, is scored; {setting('split', 'all')} scores every row")


def _warn_if_redrawn(data_spec: str, recorded: dict, scored, trained, split: str, seed: int | None) -> None:
    """The data the run trained on, split with another seed than the run's: its ``split`` is another draw, holding rows
    the run trained on. ``trained``: the run's own training split where it was read (no ``--data``): they are counted."""
    import json

    from tunelab.run.artifacts import data_reference

    run_seed = recorded.get("seed", 42)
    if seed is None or seed == run_seed or split == "train" or data_reference(data_spec) != recorded.get("data"):
        return

    def key(row: dict) -> str:  # a row by its texts (the label is what is scored)
        return json.dumps({k: v for k, v in row.items() if k != "label"}, sort_keys=True, default=str)

    counted = ""
    if trained is not None:
        seen = {key(row) for row in trained}
        counted = f" ({sum(key(row) in seen for row in scored):,} of its {len(scored):,} rows are in the run's training split)"
    logging.getLogger("tunelab").warning(
        f"{setting_as('seed', seed)} is not this run's seed ({run_seed}): the {split} split it draws of {data_spec}, the "
        f"data this run trained on, is not the run's{counted}, so the score is not held out; leave it out to score the "
        f"run's own {split} split")


def _warn_if_changed(data_spec: str, trained_on: str | None, trained_fingerprint: str | None, fingerprint: str,
                     split: str) -> None:
    """The data the run trained on, named again (``--data``), that holds other rows now than the run split
    (:func:`recorded_data` refuses it when not named): its split is another, and may hold rows the model trained on."""
    from tunelab.run.artifacts import data_reference

    if not trained_on or not trained_fingerprint or data_reference(data_spec) != trained_on:
        return
    if fingerprint != trained_fingerprint:
        logging.getLogger("tunelab").warning(
            f"{data_spec} has changed since this run trained on it: its {split} split is not the one the run made, "
            "and may hold rows the model trained on")


def _warn_if_other_format(data_spec: str, trained_chat: bool | None, chat: bool) -> None:
    """A causal LM scored on conversations when it trained on plain text, or the reverse: its loss is over other
    tokens (a conversation rendered through the chat template, its learnt turns, against a text's every token) and does
    not compare with the run's. ``trained_chat``: the run's record (None: a run saved before it was kept)."""
    if trained_chat is None or bool(trained_chat) == chat:
        return
    formats = {True: "conversations (chat messages)", False: "plain text"}
    logging.getLogger("tunelab").warning(
        f"{data_spec} holds {formats[chat]}, and this model trained on {formats[bool(trained_chat)]}: its loss and "
        "perplexity here do not compare with the run's")


SPLITS = ("train", "validation", "test", "all")
"""What :func:`evaluate_artifact` scores: a split training made of the data, or ``all`` of its rows."""


def evaluate_artifact(path, data_spec: Any = None, *, split: str = "test", text_column: str | None = None,
                      label_column: str | None = None, seed: int | None = None, batch_size: int = 32) -> dict:
    """Score a trained folder (a run's ``--out`` or its ``model/``) on ``data_spec`` (:func:`_evaluate`), without the
    libraries' loading and tokenizing bars. ``data_spec``: a built-in name, a path, or data in memory as
    :func:`~tunelab.run.training.train` takes it (a pandas DataFrame, a list of dicts, a dict of columns or of splits, a datasets Dataset /
    DatasetDict); ``None``: the data the run trained on (:func:`recorded_data`, or what it returned: the data it read
    for its check is scored, not read again). Returns the metrics and what was scored (the split, its number of examples); bad input raises
    :class:`~tunelab.errors.ConfigError` / :class:`~tunelab.errors.DataError`, one line each."""
    from tunelab.run.progress import library_bars_off

    problems = []
    if split not in SPLITS:  # the Python caller's 'dev' failed as a bare KeyError: 'dev'
        problems.append(f"{setting('split', split, quoted=True)} is not a split: use one of {', '.join(SPLITS)} (all: every row, "
                        "unsplit)")
    if seed is not None and not 0 <= seed < 2**32:  # the split's seed, as training's (TrainConfig.problems)
        problems.append(f"{setting('seed')} must be in [0, 2^32), got {seed}: give the seed of the split to score, or leave it "
                        "out for the run's own")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        problems.append(f"{setting('batch_size')} must be a whole number of at least 1, got {batch_size!r}")
    if problems:
        raise ConfigError(problems)
    if data_spec is None:
        data_spec = recorded_data(path)
    read = raw = None
    if isinstance(data_spec, RecordedData):
        data_spec, read, raw = data_spec
    with library_bars_off():
        return _evaluate(path, data_spec, split=split, text_column=text_column, label_column=label_column, seed=seed,
                         batch_size=batch_size, read=read, raw=raw)


def _warn_if_classes_absent(names: list[str], gold: np.ndarray, split: str) -> None:
    """A split without some of the model's classes: its macro F1 averages over the classes it holds
    (:func:`tunelab.metrics.macro_classes`), and nothing measures how the others are recognised; said, as
    compare's reasons say it of validation."""
    from tunelab.metrics import macro_classes

    held = set(macro_classes(gold))
    absent = [name for k, name in enumerate(names) if k not in held]
    if absent:
        where = "the data" if split == "all" else f"the {split} split"
        logging.getLogger("tunelab").warning(
            f"{where} has no example of {some_of(absent)}: nothing measures how {'it is' if len(absent) == 1 else 'they are'} "
            f"recognised here, and its f1_macro averages over the {len(names) - len(absent)} of {len(names)} classes "
            "it holds")


@torch.inference_mode()
def _evaluate(path, data_spec: Any, *, split: str = "test", text_column: str | None = None,
                      label_column: str | None = None, seed: int | None = None, batch_size: int = 32,
                      read: Any = None, raw: Any = None) -> dict:
    """Score a trained folder on ``data_spec``: ``split`` "all" reads every row, unsplit (a file held out from
    training); a split is the one training made of the data, with the run's seed, fractions and columns unless
    given (:func:`run_split_settings`). ``read``: ``data_spec`` as :func:`recorded_data` read and split it (the run's
    seed, fractions and columns), scored where the split asked for is that one rather than read again; ``raw``: the
    file as it read it, split otherwise (another split, seed or columns) rather than read again."""
    from tunelab.run.artifacts import find_model_dir, load_artifact
    from tunelab.run.cache import build_device
    from tunelab.run.outputs import reduce_logits
    from tunelab.run.packing import TARGET_TEXTS_COLUMN
    from tunelab.run.training import (
        classification_metrics,
        flat_column,
        limit_evaluation,
        tokenize,
    )

    device = build_device()  # the GPU when there is one, as for training
    model, tokenizer, info = load_artifact(path, device)
    recorded = run_split_settings(path, info)
    # split as the run split its data: its fingerprint says whether the rows are still the ones it recorded
    as_run = (seed in (None, recorded.get("seed", 42)) and text_column in (None, recorded.get("text_column"))
              and label_column in (None, recorded.get("label_column")))
    if read is not None and as_run and split != "all":  # split so already by recorded_data's check: not read again
        data = read
    else:  # "all": every row of the data as it is, unsplit; a split: the one training made of it (the same seed)
        data = _load_as_trained(data_spec if raw is None else raw, info, recorded, text_column=text_column,
                                label_column=label_column, seed=seed, split=split != "all")
    text_column = text_column or recorded.get("text_column") or "text"
    for note in data.warnings:  # what reading the data did to it (a label column a language model ignores, ...)
        logging.getLogger("tunelab").warning(note)
    # data in memory by what it is ("in-memory Dataset (60 rows)", as a run trained on it names it), not its str()
    data_spec = os.fspath(data_spec) if isinstance(data_spec, str | os.PathLike) else data.source or "the data in memory"
    if split != "all":  # the run scored the first so many of each split
        rows = sum(len(ds) for ds in data.splits().values())
        whole = len(data.splits()[split])
        limit_evaluation(data, recorded.get("max_eval_samples"))
        if split != "train" and len(data.splits()[split]) < whole:
            logging.getLogger("tunelab").warning(
                f"scoring the first {len(data.splits()[split]):,} of the {whole:,} {split} examples, as the run did "
                f"(it trained with {setting('max_eval_samples', recorded.get('max_eval_samples'))}); "
                f"{setting('split', 'all')} scores every "
                "row of a file held out from training")
        _warn_if_other_data(data_spec, recorded.get("data"), len(data.splits()[split]), rows, split)
        _warn_if_redrawn(data_spec, recorded, data.splits()[split], read.train if read is not None else None, split, seed)
        if as_run:
            _warn_if_changed(data_spec, recorded.get("data"), _trained_fingerprint(find_model_dir(path), info),
                             data.split_fingerprint, split)
    _warn_if_other_format(data_spec, info.get("chat"), data.conversations)
    pairs = data.text_pairs
    if pairs != bool(info.get("text_pair")):
        raise DataError(f"{path} was trained on {'text pairs' if info.get('text_pair') else 'single texts'}, and "
                        f"{setting('text_column', text_column)} gives {'pairs' if pairs else 'one text'} per example: "
                        + (f"name its two text columns, e.g. {setting('text_column', 'premise,hypothesis')}" if info.get("text_pair")
                           else "name one text column"))
    if info["task"] == "classification":
        unknown = sorted(set(data.label_names) - set(info["label_names"]))
        if unknown:
            from tunelab.data.validate import all_numeric, written_otherwise

            ids = all_numeric(data.label_names) and not all_numeric(info["label_names"])  # ids against the model's names
            alike = written_otherwise(unknown, info["label_names"])
            raise DataError(f"{data_spec}: label(s) {some_of(unknown)} were not seen in training (the model knows "
                            f"{some_of(info['label_names'])}); evaluate on data with the model's classes"
                            + (", e.g. the integer ids with their names in a 'label_text' column" if ids else "")
                            + (f"; the model writes {alike[0]!r} as {alike[1]!r} (labels are classes as written): write them alike"
                               if alike else ""))
        remap = [info["label_names"].index(n) for n in data.label_names]
        data.train, data.validation, data.test = (
            ds.map(lambda b: {"label": [remap[x] for x in b["label"]]}, batched=True) for ds in (data.train, data.validation, data.test)
        )
        tokenizer.padding_side = "right"
    # a model trained before --loss-on learnt every token of its conversations
    # every split packed to its last token, "all" (every row in train) too: each text is scored
    tokenized, _ = tokenize(data, tokenizer, info.get("max_length") or 128, keep=info.get("keep", "start"),
                            loss_on=info.get("loss_on", "all"), whole=tuple(data.splits()))
    splits = ["train"] if split == "all" else [split]  # "all": loaded unsplit, every row in train
    from datasets import concatenate_datasets

    ds = concatenate_datasets([tokenized[s] for s in splits])
    from tunelab.run.padding import one_pass_attention, task_collator

    # padded as in training; a causal LM's pads and context tokens are no targets; its packed texts each attend to
    # themselves only where the run's did (a model saved before tunelab kept them apart: as it trained)
    collate = task_collator(tokenizer, info["task"], info.get("max_length"), bool(info.get("document_mask")))
    # token types (the second text of a pair) where the model takes them
    keys = ("input_ids", "attention_mask", "labels", "position_ids") + (("token_type_ids",) if "token_type_ids" in tokenizer.model_input_names else ())
    losses, preds, labels, n, weights = [], [], [], 0, 0
    with one_pass_attention():  # on a GPU: no per-shape cuDNN plans (tunelab.run.padding)
        for i in range(0, len(ds), batch_size):
            rows = ds[i : i + batch_size]
            batch = collate([{k: rows[k][j] for k in keys if k in rows} for j in range(len(rows["input_ids"]))]).to(device)
            out = model(**batch, **({"use_cache": False} if "position_ids" in batch else {}))  # a cache: no per-text mask
            if info["task"] == "classification":
                preds.append(out.logits.argmax(-1).cpu())
                labels.append(batch["labels"].cpu())
                weight = len(rows["input_ids"])  # the loss is a mean over rows
                losses.append(float(out.loss) * weight)
            else:  # summed over the learnt next tokens as the run's evaluation sums them: not the model's own loss,
                # which under a soft prompt also counts each block's first token (predicted by the last virtual one)
                sums, _ = reduce_logits(out.logits, batch["labels"])  # (rows, 2): summed loss, targets
                weight = int(sums[:, 1].sum())
                losses.append(float(sums[:, 0].sum()))
            n += len(rows["input_ids"])
            weights += weight
    result = {"split": split, "examples": n, "loss": sum(losses) / max(weights, 1)}
    if info["task"] != "classification":
        # examples are texts, as a comparison counts them; the model read them packed in blocks of its max length
        # scored_texts: those with a predicted token, the units a comparison's intervals resample: every text but
        # one with nothing to predict (under --loss-on assistant, a conversation with no assistant turn; a text of a
        # single token that opens a block, where no token is predicted)
        result.update(examples=sum(len(data.splits()[s]) for s in splits), blocks=n, target_tokens=weights,
                      scored_texts=len(np.unique(flat_column(ds, TARGET_TEXTS_COLUMN))))
    if info["task"] == "classification":
        from types import SimpleNamespace

        gold = torch.cat(labels).numpy()
        result.update(classification_metrics(SimpleNamespace(predictions=torch.cat(preds).numpy(), label_ids=gold)))
        _warn_if_classes_absent(info.get("label_names") or [], gold, split)
    else:
        result["perplexity"] = math.exp(min(result["loss"], 50))
    return result

