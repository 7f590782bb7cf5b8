"""One training path for every strategy, built on the transformers ``Trainer``.

Strategies differ only where they really differ (what trains, parameter groups, callbacks, how the
result is saved); everything else — data, tokenization, length-grouped dynamic padding, the frozen
prefix cache, checkpoints, resume, guards and measurement — is shared here.

>>> from tunelab import TrainConfig, train
>>> record = train(TrainConfig(model="minilm", data="rotten-tomatoes", strategy="lora", epochs=1))  # doctest: +SKIP
>>> record["metrics"]["test"]["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from tunelab.config import TrainConfig, as_config, saved_settings, unrecorded_settings
from tunelab.data.types import TaskData
from tunelab.errors import ConfigError, StrategyError, TrainingError, TunelabError, setting, setting_change
from tunelab.io import folder_part, resumed_default
from tunelab.metrics import IGNORE_INDEX
from tunelab.models import (
    load_model,
    load_tokenizer,
    max_input_length,
    model_layout,
    probe_logits,
    probe_pass,
    read_last_token_from_mask,
    resolve_model,
    unused_trainable,
)
from tunelab.models.loading import check_token_ids
from tunelab.run import ranks
from tunelab.run.attention import off_reason as attention_off
from tunelab.run.attention import recompute_attention
from tunelab.run.heap import limit_onednn_primitive_cache, peak_rss_mb, release_free_heap, start_run_peak
from tunelab.run.outputs import AS_LOADED, ExampleOutputs, OutputCollector, reduce_logits
from tunelab.run.packing import (
    LM_PACKING_ROWS,
    TARGET_TEXTS_COLUMN,
    TEXT_COLUMN,
    WHOLE_SPLITS,
    lm_blocks,
    target_texts,
)
from tunelab.run.progress import ProgressFile, RunProgress, library_bars_off, mark_done
from tunelab.run.record import Artifact, MetaInfo, Metrics, RunRecord, TrainInfo, library_versions, run_params
from tunelab.run.tracking import log_record, tracking
from tunelab.strategies import as_loaded, get_strategy, trainable_parameters
from tunelab.trackers import parse_report_to

# run.progress (above) imports the Trainer's callbacks (transformers' trainer modules, torch._dynamo): with this module, before a
# run's process group exists. Imported inside the run instead (session 42, for the advice's start-up), they left the
# group's gloo threads standing at exit under torchrun (tests/test_distributed.py, "gloo threads at exit: 3"); so
# library_bars_off, which the advice uses, stays in run.progress too (a module of its own saved no import).

log = logging.getLogger("tunelab")

DEFAULT_MAX_LENGTH = {"classification": 128, "causal-lm": 256}


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA peak allocated when on GPU, else peak RSS."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def default_out_dir(config: TrainConfig, *, hashed: bool = True) -> Path:
    """Where a run writes when no ``out`` is given: ``runs/MODEL-DATA-STRATEGY``, each the last part of its path or hub
    id, data in memory by what it is (``in-memory-Dataset-40-rows-`` and a hash: it was ``in-memory Dataset (40
    rows)``, spaces and brackets), every part one shell word (:func:`tunelab.io.folder_part`; ``hashed=False``: the
    name it had before the hash)."""
    data = str(config.data)
    data = data if data.startswith(IN_MEMORY) else Path(data).name  # its name may hold a '/' (a folder's: "d/ (...)")
    parts = (Path(str(config.model)).name, data, config.strategy)
    return Path("runs") / "-".join(folder_part(part, hashed=hashed) or "data" for part in parts)


def run_out_dir(config: TrainConfig) -> Path:
    """The run's folder: ``config.out``, else :func:`default_out_dir`, or under ``resume`` the folder of its former
    name where a run started there (:func:`tunelab.io.resumed_default`)."""
    if config.out:
        return Path(config.out)
    return resumed_default(lambda hashed: default_out_dir(config, hashed=hashed), config.resume)


# ----------------------------------------------------------------------------- data


def load_data(config: TrainConfig, *, whole: bool = False) -> TaskData:
    """The run's data: loaded, split (seeded), then cut to ``--max-train-samples`` and ``--data-fraction`` of those
    (:func:`training_examples`) and ``--max-eval-samples``; ``whole``: split only (a comparison reads the full
    training split's size)."""
    from tunelab.data import load_task_data

    data = load_task_data(
        config.data,
        task=config.task,
        text_column=config.text_column,
        label_column=config.label_column,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    return data if whole else _cut(data, config)


def _cut(data: TaskData, config: TrainConfig) -> TaskData:
    """``--max-train-samples`` and ``--data-fraction`` of the training split (:func:`training_examples`), and
    ``--max-eval-samples`` of the others."""
    from tunelab.data import subsample_train

    size = training_examples(len(data.train), config.data_fraction, config.max_train_samples)
    if size < len(data.train):  # the first rows of one seeded order: every smaller run's rows are among a larger one's
        data = subsample_train(data, size / len(data.train), config.seed)
    limit_evaluation(data, config.max_eval_samples)
    return data


IN_MEMORY = "in-memory"
"""How a run's config names data passed to :func:`train` in memory (``in-memory <its source>``)."""


def given_data(config: TrainConfig, data: Any) -> tuple[TrainConfig, TaskData]:
    """Data passed to :func:`train` in memory: a :class:`TaskData` as it is, or a ``datasets`` Dataset /
    DatasetDict or a pandas DataFrame read and split as a file would be (the config's columns, fractions and
    seed); then cut as loaded data is (:func:`_cut`), and named for what it is. A path or a built-in name is the
    config's ``data``, loaded as such (:func:`load_data`). ``config.data`` would otherwise
    name the config's default dataset in the record, the model card and ``run_config.yaml``."""
    import dataclasses
    import hashlib

    from tunelab.data import load_task_data

    if isinstance(data, str | os.PathLike):  # a file or a built-in name (train(config, data="reviews.csv")): the
        config = config.replace(data=os.fspath(data))  # config's data, as compare and recommend take it; it was
        return config, load_data(config)  # recorded as "in-memory reviews.csv (CSV, 60 rows)", no path to read again
    if not isinstance(data, TaskData):
        data = load_task_data(data, task=config.task, text_column=config.text_column, label_column=config.label_column,
                              validation_fraction=config.validation_fraction, test_fraction=config.test_fraction,
                              seed=config.seed)
    source = data.source or type(data).__name__
    name = source if source.startswith(IN_MEMORY) else f"{IN_MEMORY} {source}"
    data = _cut(dataclasses.replace(data), config)  # a copy: the caller's TaskData keeps its splits
    if not data.fingerprint:  # what the record and the frozen-layer cache know the data by
        parts = [getattr(ds, "_fingerprint", "") or str(len(ds)) for ds in data.splits().values()]
        data.fingerprint = hashlib.sha256("|".join([data.task, *data.label_names, *parts]).encode()).hexdigest()[:16]
    return config.replace(data=name), data


def training_examples(n_split: int, fraction: float = 1.0, max_train_samples: int | None = None) -> int:
    """The training examples of a run: ``fraction`` (``--data-fraction``) of the examples it may use, the training
    split cut to ``--max-train-samples``. So ``--max-train-samples 240 --data-fractions 0.25,1`` trains on 60 and
    240 examples, the 60 among the 240.

    >>> training_examples(3404), training_examples(3404, 0.25), training_examples(3404, 0.25, 240)
    (3404, 851, 60)
    """
    usable = min(n_split, max_train_samples) if max_train_samples else n_split
    return max(1, round(usable * fraction))


def limit_evaluation(data: TaskData, max_eval_samples: int | None) -> None:
    """``--max-eval-samples``: the first so many examples of the validation and test splits (None: all)."""
    if max_eval_samples:
        n = int(max_eval_samples)
        data.validation = data.validation.select(range(min(n, len(data.validation))))
        data.test = data.test.select(range(min(n, len(data.test))))


def _prepared(strategy, model, layout, config: TrainConfig):
    """``strategy.prepare``, and at least one weight left to train. A strategy from another package (a plugin) that
    fails is named in one line; a built-in's failure keeps its traceback (a bug of tunelab's). A strategy that works
    by block is refused on a body whose layers are not one list of blocks."""
    problem = layout.blocks_problem() if strategy.needs_blocks else None
    if problem:
        from tunelab.strategies import STRATEGIES, strategy_names

        others = ", ".join(n for n in strategy_names() if not STRATEGIES[n].needs_blocks and config.task in STRATEGIES[n].tasks)
        raise StrategyError(f"{config.strategy} cannot apply to this {layout.family} model: {problem}, and it works by "
                            f"block; use one of {others}")
    try:
        model = strategy.prepare(model, layout, config)
    except TunelabError:
        raise
    except Exception as exc:
        where = f"{type(strategy).__module__}.{type(strategy).__qualname__}"
        if where.startswith("tunelab."):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StrategyError(f"strategy '{config.strategy}' ({where}, a plugin) failed to prepare the model: "
                            f"{type(exc).__name__}{': ' + first if first else ''}; fix the plugin or choose another "
                            "strategy (`tunelab strategies` lists them)") from exc
    if not any(p.requires_grad for p in model.parameters()):
        raise StrategyError(f"strategy '{config.strategy}' left no weight of the model trainable: its prepare() must "
                            "leave some parameter with requires_grad=True")
    return model


def resolve_max_length(config: TrainConfig, task: str, model, tokenizer) -> int:
    """``--max-length``, or the task's default, checked against what ``model`` (a module or a config) takes
    with the positions the run's strategy adds to every input (:meth:`Strategy.positions_added`)."""
    from tunelab.config import MIN_MAX_LENGTH

    strategy = get_strategy(config.strategy)
    reserved = strategy.positions_added(config)
    total = max_input_length(model, tokenizer)  # a config's limit builds a model on the meta device: once, not per use
    limit = max_input_length(model, tokenizer, reserved=reserved) if reserved else total
    if reserved and limit < MIN_MAX_LENGTH:
        raise ConfigError(f"{config.strategy} puts {reserved} positions before every input ({strategy.adds(config)}), "
                          f"which leaves {limit} of this model's {total} for the text: put at most "
                          f"{max(total - MIN_MAX_LENGTH, 0)} before it")
    if config.max_length is not None and config.max_length > limit:
        why = ""
        if reserved and limit < total:
            why = f" with {config.strategy}, which puts {reserved} positions before every input ({strategy.adds(config)})"
        raise ConfigError(f"--max-length {config.max_length} is beyond this model's maximum of {limit}{why}: "
                          f"use at most {limit}")
    return config.max_length or min(DEFAULT_MAX_LENGTH[task], limit)


def _map_fingerprint(data: TaskData, split: str, tokenizer, max_length: int, keep: str = "start",
                     loss_on: str = "all", keep_tail: bool = False) -> str:
    """A cheap fingerprint for ``datasets.map``: without it, datasets pickles and hashes the whole
    tokenizer on every call (seconds each)."""
    import hashlib

    split_fp = getattr(data.splits()[split], "_fingerprint", "")
    key = f"{data.fingerprint}|{split}|{split_fp}|{tokenizer.name_or_path}|{len(tokenizer)}|{max_length}|{data.task}|{keep}|{loss_on}|texts|positions-eos-opens|target-texts|tail-{keep_tail}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


SEQUENCES_SAMPLE_ROWS = 5 * LM_PACKING_ROWS


def _truncated(tokenizer, ds, max_length: int, lengths: list[int], rows: int = 1000) -> int:
    """How many texts (or pairs) of ``ds`` are longer than ``max_length`` tokens whole: cut, not just as long as
    the limit (a text of exactly ``max_length`` tokens keeps every one). Only the rows whose encoding (``lengths``)
    reached the limit can have been cut, and only those are tokenized again, whole: a split of long documents paid
    for a second whole pass over every text, in every run."""
    at_limit = [i for i, n in enumerate(lengths) if n >= max_length]
    if not at_limit:
        return 0
    ds = ds.select(at_limit)
    count = 0
    for i in range(0, len(ds), rows):
        batch = ds[i : i + rows]
        lengths = tokenizer(batch["text"], batch.get("text_pair"), truncation=False, verbose=False)["input_ids"]
        count += sum(len(ids) > max_length for ids in lengths)
    return count


def sequences_per_example(config: TrainConfig, data: TaskData) -> float:
    """Training sequences (what a step's batch holds) per training example of ``data``: 1 for classification; for a
    causal LM, the blocks of the run's max length that the training texts pack into, per text (more than 1 for
    long documents, less for short chats). The planner counts a round's minimum in sequences."""
    if data.task != "causal-lm" or not len(data.train):
        return 1.0
    from tunelab.models.loading import load_model_config, load_tokenizer

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model_config = load_model_config(config.model, trust_remote_code=config.trust_remote_code)
    max_length = resolve_max_length(config, data.task, model_config, tokenizer)
    rows = min(len(data.train), SEQUENCES_SAMPLE_ROWS)  # the split's first rows (it is shuffled): the ratio, cheaply
    blocks = sum(len(lm_blocks(data.train[i : min(i + LM_PACKING_ROWS, rows)], tokenizer, max_length,
                                config.loss_on)[0])
                 for i in range(0, rows, LM_PACKING_ROWS))
    return blocks / rows


def _sorted_by_length(ds):
    """``ds.sort("length")``, without the deprecation warning pyarrow 25 gives for how datasets asks it to sort (a
    library's, about its own call, on every evaluation split)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Specifying null_placement in SortOptions", category=FutureWarning)
        return ds.sort("length")


def tokenize(data: TaskData, tokenizer, max_length: int, *, limit: int | None = None,
             keep: str = "start", loss_on: str = "all",
             whole: tuple[str, ...] = WHOLE_SPLITS) -> tuple[dict[str, Any], list[str]]:
    """Tokenize every split. Classification: one example per text (or text pair: ``text_pair``, encoded as the
    tokenizer encodes pairs, BERT's ``[CLS] a [SEP] b [SEP]``), cut to ``max_length`` (the longer of the pair
    first; of a single text, the part ``keep`` names: :func:`tunelab.run.encoding.encode`); where training texts
    were cut and the model reads more (``limit``), the warning says how to keep more.
    Causal LM: texts joined with EOS and cut into blocks of ``max_length`` tokens; ``loss_on="assistant"``
    predicts only the assistant's turns of conversations (:func:`lm_blocks`); the splits ``whole`` names keep each
    packing batch's last, shorter block (every text scored), the others drop it (training's blocks full)."""
    from tunelab.run.encoding import encode as encode_texts

    warnings: list[str] = []
    out = {}
    if data.task == "classification":
        if data.text_pairs and keep != "start":
            raise ConfigError(f"--keep {keep} applies to single texts; text pairs are cut longest first: "
                              "leave --keep at start")

        def encode(batch):
            enc = encode_texts(tokenizer, batch["text"], batch.get("text_pair"), max_length, keep)
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            enc["labels"] = batch["label"]
            return enc

        for split, ds in data.splits().items():
            if not len(ds):  # an empty split (data loaded unsplit, every row in train): nothing to encode
                out[split] = ds
                continue
            tok = ds.map(
                encode,
                batched=True,
                remove_columns=ds.column_names,
                desc=f"tokenizing {split}",
                new_fingerprint=_map_fingerprint(data, split, tokenizer, max_length, keep),
            )
            truncated = _truncated(tokenizer, ds, max_length, tok["length"])
            if truncated:
                more = (f" (--max-length up to {limit} keeps more of each, at more time and memory per step)"
                        if split == "train" and limit is not None and max_length < limit < 10**9 else "")
                if split == "train" and keep == "start" and not data.text_pairs:
                    more += "; their starts were kept: --keep start+end or end reads their ends too"
                unit = "pairs (each cut longest first)" if data.text_pairs else "texts"
                warnings.append(f"{truncated} of {len(tok)} {split} {unit} were truncated to {max_length} tokens{more}")
            # evaluation in length order: less padding per batch, same metrics
            out[split] = tok if split == "train" else _sorted_by_length(tok)
        return out, warnings

    if keep != "start":  # said once, not ignored in silence
        warnings.append(f"--keep {keep} does not apply to a causal LM, whose texts are packed whole into blocks of "
                        "--max-length tokens, not cut: ignored")

    if data.conversations and not getattr(tokenizer, "chat_template", None):
        # said at training time, not only in the model card: the user may expect the model's own turn format
        warnings.append("the tokenizer has no chat template: conversations are read as plain 'role: content' lines "
                        "(user: ..., then assistant: ...); the saved tokenizer gets that format as its chat template, "
                        "so predict and apply_chat_template prompt the model as it was trained")

    def encode_lm(batch, indices, keep_tail):
        blocks, labels, texts, positions = lm_blocks(batch, tokenizer, max_length, loss_on,
                                                      first=indices[0] if indices else 0, keep_tail=keep_tail)
        return {"input_ids": blocks, "labels": labels, "length": [len(b) for b in blocks],
                TEXT_COLUMN: [owners[0] for owners in texts], TARGET_TEXTS_COLUMN: target_texts(labels, texts),
                "position_ids": positions}

    chat = loss_on == "assistant" and data.conversations
    for split, ds in data.splits().items():
        if not len(ds):  # an empty split (data loaded unsplit, every row in train): nothing to encode
            out[split] = ds
            continue
        out[split] = ds.map(
            encode_lm,
            batched=True,
            with_indices=True,
            batch_size=LM_PACKING_ROWS,
            fn_kwargs={"keep_tail": split in whole},
            remove_columns=ds.column_names,
            desc=f"tokenizing {split}",
            new_fingerprint=_map_fingerprint(data, split, tokenizer, max_length, loss_on=loss_on,
                                             keep_tail=split in whole),
        )
        if len(out[split]) == 0:
            raise TrainingError(f"the {split} split has no text left after tokenization: give it more text"
                                + (" (or --loss-on all: every block of it was a conversation's context, with none "
                                   "of the assistant's turns to learn)" if chat else ""))
    if chat and len(out["train"]):
        labels = out["train"]["labels"]
        learnt = sum(sum(t != IGNORE_INDEX for t in row[1:]) for row in labels)
        total = sum(len(row) - 1 for row in labels)
        warnings.append(f"loss on the assistant's turns only: {learnt:,} of the training split's {total:,} "
                        "predicted tokens are targets, the rest is context (--loss-on all learns every token)")
    return out, warnings


# ----------------------------------------------------------------------------- metrics


def classification_metrics(eval_pred) -> dict[str, float]:
    from tunelab.metrics import classification_scores

    preds, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(preds, tuple):
        preds = preds[0]
    if preds.ndim > 1:
        preds = preds.argmax(-1)
    return classification_scores(labels, preds)


def clean_metrics(raw: dict[str, float], prefix: str, task: str) -> dict[str, float]:
    out = {k[len(prefix) + 1 :]: float(v) for k, v in raw.items() if k.startswith(prefix + "_")}
    out = {k: v for k, v in out.items() if k in {"accuracy", "f1_macro", "loss"}}
    if task == "causal-lm" and "loss" in out:
        out["perplexity"] = float(math.exp(min(out["loss"], 50)))
    return out


# ----------------------------------------------------------------------------- trainer


def loss_over_step_targets(task: str) -> bool:
    """Whether the task's training loss is the sum of its targets' losses divided by the targets of the whole step
    (transformers' ``num_items_in_batch``: every batch a step accumulates, on every process), as a causal LM's
    next-token loss is when the model takes it (its ``forward(**kwargs)``, or its declared ``accepts_loss_kwargs``:
    transformers' own decision stands). Otherwise (classification: one target a row) the loss is a mean over the
    batch, whatever the model's signature says: the Trainer is told that the model takes no loss arguments, and it
    divides each batch's loss by the accumulation steps itself. Either way batch 4 x accumulation 2 trains the step
    that batch 8 trains (tested), the promise of the out-of-memory retry's halved batch."""
    return task == "causal-lm"


def make_trainer_class():
    """The ``Trainer`` subclass every run uses. Built in a function (a class body of ~80 lines, longer than
    the house's 60) so that importing tunelab does not import transformers' Trainer."""
    from transformers import Trainer

    class TunelabTrainer(Trainer):
        """``Trainer`` plus strategy parameter groups, non-finite loss and gradient guards and timed evaluation."""

        tunelab_param_groups: list[dict] | None = None
        eval_seconds: float = 0.0
        tunelab_outputs: OutputCollector | None = None  # the compute_metrics hook, keeping per-example outputs
        tunelab_eval_outputs: ExampleOutputs | None = None  # those of the latest evaluation of eval_dataset
        _tunelab_staging: str | None = None  # where resilience.save_checkpoint_atomically stages a save
        tunelab_clock: Any = None  # () -> the run's training seconds so far (evaluations out, a resumed run's earlier part in)
        tunelab_data: str | None = None  # the run's data fingerprint, kept in each checkpoint for a resume to check
        tunelab_interrupt: Any = None  # the Ctrl-C handler of the train() call (resilience.interrupt_handler)
        tunelab_final_checkpoint: bool = True
        """Whether the checkpoint that ``save_strategy="steps"`` writes at the last step is kept. It guards the
        evaluation and the save after training; a screening run saves no model and is cheaper to train again than
        that checkpoint is to write (minilm full fine-tuning, 14 steps: 0.74 s of 10.7 s; gigabytes on a large model)."""

        def _get_output_dir(self, trial):
            return self._tunelab_staging or super()._get_output_dir(trial)

        def _save_checkpoint(self, model, trial):
            from tunelab.run.resilience import save_checkpoint_atomically, write_train_seconds

            if not self.tunelab_final_checkpoint and self.state.global_step >= self.state.max_steps:
                return

            def save():
                super(TunelabTrainer, self)._save_checkpoint(model, trial)
                if self.tunelab_clock is not None and ranks.is_main():  # the run's training time so far, for a resume
                    write_train_seconds(Path(self._tunelab_staging) / f"checkpoint-{self.state.global_step}",
                                        self.tunelab_clock(), ranks.Launch.current(), self.tunelab_data)

            save_checkpoint_atomically(self, save)

        def _get_train_sampler(self, train_dataset=None):
            from tunelab.run.resilience import epoch_seeded

            self._tunelab_sampler = epoch_seeded(super()._get_train_sampler(train_dataset), self.args.data_seed or self.args.seed)
            return self._tunelab_sampler

        def _get_eval_sampler(self, eval_dataset):
            # the evaluation splits are already in length order (tokenize); transformers would group them by
            # length in an order drawn from the run's seed, and the per-example outputs of two seeds would then
            # list the same examples in different orders: the comparison over seeds could not be paired. Over
            # several processes, None: accelerate deals the batches out in order and gathers them back in order
            if eval_dataset is None:
                return super()._get_eval_sampler(eval_dataset)
            if self.args.world_size > 1:
                return None
            from torch.utils.data import SequentialSampler

            return SequentialSampler(eval_dataset)

        def _run_epoch(self, *args, **kwargs):
            # the epoch a run resumes in skips its first batches through accelerate's SkipBatchSampler; over
            # several processes that wraps the sampler three deep, where set_epoch no longer reaches it, and the
            # resumed epoch would take the first epoch's order: tell the sampler its epoch here, every epoch
            sampler = getattr(self, "_tunelab_sampler", None)
            if hasattr(sampler, "set_epoch") and "epoch" in kwargs:
                sampler.set_epoch(kwargs["epoch"])
            return super()._run_epoch(*args, **kwargs)

        def create_optimizer(self, model=None):
            if self.optimizer is None and self.tunelab_param_groups is not None:
                # the optimizer Trainer would build (``args.optim``: fused AdamW where torch has it), over the
                # strategy's groups (discriminative / per-stage learning rates) split for weight decay
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = optimizer_cls(self._split_decay(self.tunelab_param_groups), **optimizer_kwargs)
                return self.optimizer
            return super().create_optimizer(model) if model is not None else super().create_optimizer()

        def _split_decay(self, groups: list[dict]) -> list[dict]:
            """Each strategy group split as ``Trainer`` does it: weight decay for weights, none for
            biases and normalisation parameters."""
            decay = set(self.get_decay_parameter_names(self.model))
            names = {id(p): n for n, p in self.model.named_parameters()}
            out = []
            for group in groups:
                rest = {k: v for k, v in group.items() if k != "params"}
                params = list(group["params"])
                for wd, chosen in (
                    (self.args.weight_decay, [p for p in params if names.get(id(p)) in decay]),
                    (0.0, [p for p in params if names.get(id(p)) not in decay]),
                ):
                    if chosen:
                        out.append({**rest, "params": chosen, "weight_decay": wd})
            return out

        # Per-step costs that grow with the model, not with what trains: a cached run keeps its whole frozen body
        # in place, so Trainer's parameter count (a walk of every module, for the FLOPs log) and its clipping
        # over ``model.parameters()`` would visit every frozen weight at every step. The count does not change
        # during a run, and a frozen weight has no gradient to clip: the result is the same.
        _tunelab_n_params: int | None = None

        def floating_point_ops(self, inputs):
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if self._tunelab_n_params is None:
                self._tunelab_n_params = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs[main].numel() * self._tunelab_n_params

        def _clip_grad_norm(self, model):
            if self.optimizer is None or self.is_deepspeed_enabled or self.is_fsdp_enabled or self._has_mixed_mesh_grads(model):
                return super()._clip_grad_norm(model)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            return self.accelerator.clip_grad_norm_(params, self.args.max_grad_norm)

        def _get_grad_norm(self, model, grad_norm=None):
            # Trainer computes the (pre-clip) norm of all gradients at every step anyway: one scalar tells
            # whether any gradient holds NaN or inf, and only then are the parameters searched for the culprit
            norm = super()._get_grad_norm(model, grad_norm=grad_norm)
            if norm is not None and not math.isfinite(float(norm)):
                bad = next(
                    (n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()),
                    f"the gradient norm ({float(norm)})",
                )
                raise TrainingError(
                    f"non-finite gradient in {bad} at step {self.state.global_step + 1}: the learning rate "
                    f"({self.args.learning_rate:g}) is likely too high for this strategy (or the data holds extreme "
                    "values); lower --lr"
                )
            return norm

        _tunelab_loss_share: float = 1.0  # the share of the batch's rows in the micro-batch being trained
        tunelab_micro_tokens: int | None = None  # the most padded tokens a micro-batch holds (--micro-batch-tokens)

        def training_step(self, model, inputs, num_items_in_batch=None):
            from tunelab.run.padding import split_by_padding

            args = self.args
            parts = None
            if args.device.type == "cpu" and args.world_size == 1:
                # the same batch as micro-batches of similar length, each of at most so many tokens (run.padding)
                parts = split_by_padding(inputs, max_tokens=self.tunelab_micro_tokens)
            if parts is None:
                loss = super().training_step(model, inputs, num_items_in_batch)
            else:
                losses = []
                for part, share in parts:
                    # a loss that is a mean over the part, weighted by its share, is the batch's mean; one that is a
                    # sum over ``num_items_in_batch`` (the targets of all the batches a step accumulates: the
                    # Trainer then scales no loss by the accumulation itself) is the batch's sum over them, given
                    # the part's share of them (share x items); either way the parts add up to the batch's own loss
                    self._tunelab_loss_share = share
                    try:
                        items = None if num_items_in_batch is None else num_items_in_batch * share
                        losses.append(super().training_step(model, part, items))
                    finally:
                        self._tunelab_loss_share = 1.0
                loss = torch.stack(losses).sum()
            if not torch.isfinite(loss).all():
                raise TrainingError(
                    f"non-finite loss ({loss.item()}) at step {self.state.global_step + 1}: the learning rate "
                    f"({self.args.learning_rate:g}) is likely too high for this strategy; lower --lr"
                )
            return loss

        def _train_wrapped_after_evaluation(self) -> None:
            """An evaluation before training (a causal LM's as-loaded validation) has accelerate prepare the model for
            evaluation alone, and accelerate marks it prepared: over several processes the training's prepare then
            left it unwrapped, without DistributedDataParallel, so each process trained its own copy on its share
            of the batches with no gradient exchanged, and the artifact held the main process's copy alone (a resume,
            which reads the saved as-loaded outputs instead, trained wrapped and ended elsewhere). The evaluation's
            preparation is undone here, as accelerate's own unwrapping undoes it, so that training wraps the model."""
            model = self.model
            if self.args.world_size <= 1 or self.model_wrapped is not model or not getattr(model, "_is_accelerate_prepared", False):
                return
            if "_original_forward" in vars(model):  # mixed precision: the autocast wrapper, put on again by training
                model.forward = vars(model).pop("_original_forward")
            del model._is_accelerate_prepared
            self.accelerator._models[:] = [m for m in self.accelerator._models if m is not model]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            share = self._tunelab_loss_share
            if share == 1.0:
                return result
            return (result[0] * share, result[1]) if return_outputs else result * share

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            # the summary of a train() call (train_runtime, train_loss, ...), once a run. A call stopped by Ctrl-C
            # before the last step (the run is not over: its resume sends the summary), and a resumed one that trained
            # no step of its own (its checkpoint was the last step's: the run stopped after training), logged one
            # each, and a tracker held two. Any other stop (a callback's should_training_stop: early stopping, a time
            # limit) ends the run: its one summary is sent
            if "train_runtime" in logs and (self.state.global_step == getattr(self, "_initial_global_step", None)
                                            or (self.tunelab_interrupt is not None
                                                and self.tunelab_interrupt.stopped_unfinished(self.state))):
                return
            super().log(logs, start_time)

        def evaluate(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                # on a fork of the random state: an evaluation draws from it (each DataLoader iterator takes a seed),
                # and a checkpoint saved at an epoch's last step precedes that epoch's evaluation, so a run resumed
                # from it would otherwise shuffle and drop out differently from the uninterrupted run
                with torch.random.fork_rng(devices=[]):
                    result = super().evaluate(*args, **kwargs)
            finally:
                self.eval_seconds += time.perf_counter() - start
            self._train_wrapped_after_evaluation()
            if self.tunelab_outputs is not None and not args and kwargs.get("eval_dataset") is None:
                self.tunelab_eval_outputs = self.tunelab_outputs.latest  # the periodic evaluation of eval_dataset
            return result

    return TunelabTrainer


@dataclass
class PreparedRun:
    config: TrainConfig
    data: TaskData
    model: Any
    tokenizer: Any
    strategy: Any
    layout: Any
    max_length: int
    tokenized: dict[str, Any]
    warnings: list[str]
    starts_as_loaded: bool = False
    """Whether the prepared model computes what the model as loaded computes (checked on the probe input; causal LM
    only): its validation score before the first step is then the model's own, the reference a causal LM's
    adaptation must beat (:func:`_as_loaded_validation`)."""
    document_mask: bool = False
    """Whether each packed text attends only to itself (:func:`document_mask`; causal LM only)."""


def document_mask(config: TrainConfig, task: str, strategy, model) -> tuple[bool, str | None]:
    """Whether a causal LM's packed texts can each attend only to themselves (``--document-mask``, the default), and
    a line saying why not where the run asked for it and cannot: a strategy that puts positions before every input
    (a soft prompt every text must see; peft builds its own mask and drops the position ids), or a model whose
    attention does not keep texts apart by their position ids (:func:`tunelab.models.probe.separates_documents`)."""
    from tunelab.models import separates_documents

    if task != "causal-lm" or not config.document_mask:
        return False, None
    before = "texts packed into a block attend to the texts before them in it, as with --no-document-mask"
    if "document_mask" in config.without_effect(task):
        reserved = strategy.positions_added(config)
        return False, (f"{before}: {config.strategy} puts {reserved} positions before every input "
                       f"({strategy.adds(config)}), which per-text attention would hide from all but the first text")
    if not separates_documents(model):
        kind = getattr(model.config, "model_type", "") or type(model).__name__
        return False, f"{before}: this {kind} model does not keep packed texts apart by their position ids (checked on a probe input)"
    model.config.use_cache = False  # as the Trainer sets it: a key-value cache turns transformers' per-text mask off
    return True, None


def prepare(config: TrainConfig, data: TaskData | None = None) -> PreparedRun:
    config.validate()
    strategy = get_strategy(config.strategy)
    if config.task is not None:  # fail on an impossible strategy/task pair before reading any data
        strategy.check_task(config.task)
    data = data or load_data(config)
    config.task = data.task
    strategy.check_task(data.task)
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    torch.manual_seed(config.seed)  # the new head's initialisation is part of the seeded run
    dtype = base_dtype(config)
    model, tokenizer = load_model(
        config.model,
        task=data.task,
        label_names=data.label_names,
        trust_remote_code=config.trust_remote_code,
        tokenizer=tokenizer,
        dtype=dtype,
    )
    if config.gradient_checkpointing and not model.supports_gradient_checkpointing:  # transformers' own flag
        raise ConfigError([f"--gradient-checkpointing: {type(model).__name__} does not support gradient checkpointing "
                           "(transformers' supports_gradient_checkpointing): drop it; a lower --batch-size or "
                           "--micro-batch-tokens also stores fewer activations"])
    head_note = getattr(model, "tunelab_head_note", None)  # what the classification head starts from, if said
    if data.task == "classification":
        tokenizer.padding_side = "right"
    max_length = resolve_max_length(config, data.task, model, tokenizer)
    layout = model_layout(model)
    as_loaded = probe_logits(model) if data.task == "causal-lm" else None
    model = _prepared(strategy, model, layout, config)
    read_last_token_from_mask(model)  # prompt tuning calls a decoder classifier with embeddings, not ids
    if dtype != torch.float32:  # what trains (adapters, the new head) keeps float32 weights for the optimizer
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    prepared, problem = probe_pass(model)
    starts_as_loaded = (as_loaded is not None and prepared is not None and prepared.shape == as_loaded.shape
                        and torch.allclose(prepared, as_loaded, rtol=1e-4, atol=1e-4))
    if problem:
        kind = getattr(model.config, "model_type", "") or type(model).__name__
        raise StrategyError(f"{config.strategy} cannot run on this {kind} model: its forward pass failed on a probe input "
                            f"({problem}); try another strategy (`tunelab strategies` lists them)")
    separate, why_not = document_mask(config, data.task, strategy, model)
    limit = max_input_length(model, tokenizer, reserved=strategy.positions_added(config))
    tokenized, warnings = tokenize(data, tokenizer, max_length, limit=limit, keep=config.keep,
                                   loss_on=config.loss_on)
    check_token_ids(model, tokenizer, tokenized.values(), config.model)
    if config.screening:  # validated only, never tested: the frozen-layer cache then leaves the test split out too
        tokenized["test"] = tokenized["test"].select([])
    notes = [layout.shared_blocks_note(), strategy.left_pretrained(layout, config), why_not]
    if data.task == "classification":
        notes.append(head_note)
    return PreparedRun(config, data, model, tokenizer, strategy, layout, max_length, tokenized,
                       list(data.warnings) + warnings + [n for n in notes if n], starts_as_loaded, separate)


def base_dtype(config: TrainConfig) -> torch.dtype:
    """The dtype the pre-trained weights are loaded in: bfloat16 when ``--base-dtype`` asks for it (``auto``: where
    the hardware multiplies it natively) and the strategy keeps every pre-trained weight frozen, else float32."""
    from tunelab.run.cache import resolve_precision

    strategy = get_strategy(config.strategy)
    if config.base_dtype == "fp32" or not strategy.frozen_base:
        return torch.float32
    if config.base_dtype == "auto" and config.cache and strategy.freezes_prefix(config):
        return torch.float32  # the frozen-layer cache runs the frozen blocks once (in bf16 where native: --cache-precision)
    return torch.bfloat16 if resolve_precision(config.base_dtype) == "bf16" else torch.float32


def run_precision(config: TrainConfig) -> str:
    """The precision a run of ``config`` trains in: a base held in bfloat16 computes under bf16 autocast."""
    if base_dtype(config) == torch.bfloat16:
        return "bf16"
    return training_precision(config.precision)


def training_precision(setting: str | None) -> str:
    """The precision training runs in: ``auto`` resolves like the cache's (bf16 where it is native); unset
    (``None``): bf16 on a CUDA GPU that multiplies it natively (Ampere on), else fp32 (CPUs stay fp32)."""
    from tunelab.run.cache import native_bf16, resolve_precision

    if setting is None:
        return "bf16" if torch.cuda.is_available() and native_bf16(torch.device("cuda")) else "fp32"
    return "fp16" if setting == "fp16" else resolve_precision(setting)


def limit_onednn_for(config: TrainConfig, *, head_only: bool | None = None) -> str | None:
    """:func:`tunelab.run.heap.limit_onednn_primitive_cache` for a run of ``config``: its training precision,
    and (unless ``head_only`` is given) whether only the head trains. Call it before the first multiply."""
    if head_only is None:
        head_only = get_strategy(config.strategy).trains_only_head(config)
    return limit_onednn_primitive_cache(run_precision(config), head_only=head_only)


@contextlib.contextmanager
def long_lived_objects_frozen():
    """Keep the objects that exist before a run out of the garbage collector's scans while it runs.

    The imported libraries (torch, transformers, datasets, peft, ...) leave some 430,000 tracked
    objects. Trainer and accelerate call ``gc.collect()`` three times per run (at the start of the
    training loop, before the batch-size search, when releasing the optimizer) to hand memory back to
    a GPU, and each full scan of those objects costs about 0.25 s on 2 CPU cores: 0.73 s of a 15 s
    head run, measured. ``gc.freeze()`` moves them to the permanent generation (0.02 s per scan
    left); objects created by the run are collected as usual, and :func:`gc.unfreeze` hands the old
    ones back afterwards. A caller that froze objects on purpose is left alone.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def train(config: TrainConfig | Mapping[str, Any], *, data: Any = None, progress: bool = True) -> dict[str, Any]:
    """Adapt ``config.model`` to ``config.data`` with ``config.strategy``; write the artifact and
    ``metrics.json`` under ``config.out`` and return the run record in its JSON form (a dict, as
    ``metrics.json`` holds it; :func:`train_record` returns the typed :class:`~tunelab.run.record.RunRecord`).
    ``data``: data in memory instead of ``config.data`` (:func:`given_data`: a TaskData, a datasets Dataset or
    DatasetDict, a pandas DataFrame, a list of dicts, a dict of columns or a dict of splits), cut by the config's sample limits as loaded data is.
    ``config`` may also be a dict of its settings."""
    config = as_config(config, "train(config)")
    if data is not None:
        config, data = given_data(config, data)
    return train_record(config, data=data, progress=progress).to_dict()


def train_record(config: TrainConfig | Mapping[str, Any], *, data: TaskData | None = None, progress: bool = True) -> RunRecord:
    """:func:`train`, returning the typed run record."""
    config = as_config(config, "train(config)")
    out = run_out_dir(config)
    config = config if config.out else config.replace(out=str(out))  # resolved once: a former folder said once
    fresh = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    with (long_lived_objects_frozen(), ranks.quiet_unless_main(), callers_random_state(),
          library_bars_off()):  # with progress, the run's own display says the phase; without, nothing does
        try:
            with _held(out):
                record = _train(config, data=data, progress=progress)
        except BaseException:
            if fresh and ranks.is_main():
                _remove_failed_run(out)
            raise
    ranks.shut_down_at_exit()  # a run over several processes (a script of the caller's too): the group goes at exit
    return record


@contextlib.contextmanager
def _held(out: Path):
    """Hold the run's folder for this run (:func:`tunelab.io.folder_lock`, on the main process): a second run into the
    same --out (a retry in another terminal, a requeued job) is refused in one line instead of deleting the first's
    checkpoint as it is written. A folder that cannot be made is left to the checks of the run, which say why."""
    from tunelab.io import folder_lock
    from tunelab.run.isolate import stop_with_parent

    if ranks.distributed() and os.environ.get("TORCHELASTIC_RUN_ID") is not None:
        # a process of torchrun's: its agent killed outright (SIGKILL) cannot stop it, and it trained on, orphaned,
        # and wrote the run's folder beside the run a resume starts. Once the agent is gone it ends as if killed with
        # it (the processes would not stop at one step together to save one checkpoint): the last checkpoint stays
        stop_with_parent(parent=os.getppid(), on_gone=lambda: _launcher_gone(out))
    if not ranks.is_main() or (out.exists() and not out.is_dir()):
        yield
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield
        return
    with folder_lock(out, "tunelab train"):
        yield


def _launcher_gone(out: Path) -> None:
    from tunelab.run import resilience

    print(f"tunelab: error: [rank {ranks.rank()}] torchrun's agent is gone (killed outright): this process stops with it; "
          f"resume from the last checkpoint with {resilience.resume_command(out)}", file=sys.stderr, flush=True)
    os._exit(1)


@contextlib.contextmanager
def callers_random_state():
    """The caller's random streams (Python's, NumPy's, torch's on the CPU and every GPU) as they were before: a run
    seeds them all (transformers' ``set_seed``), and a script that calls :func:`train` between its own seeded draws
    would otherwise continue from the run's seed."""
    import random

    import numpy as np

    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def _remove_failed_run(out: Path) -> None:
    """After a failure in a folder the run created: remove what it wrote (the config, an empty
    ``checkpoints/``, its progress file, its outputs and TensorBoard events, temporaries), unless a complete
    checkpoint is there for ``--resume``: a diverged run left progress.json, and its retry with another --lr was
    refused as a folder that is not empty."""
    from tunelab.io import TMP, remove_leftovers, remove_quietly
    from tunelab.run import resilience
    from tunelab.run.progress import PROGRESS_NAME
    from tunelab.run.tracking import TENSORBOARD_DIR

    if not out.is_dir() or resilience.last_complete_checkpoint(out / resilience.CHECKPOINTS) is not None:
        return
    # what cannot be removed (a read-only folder) stays: the error that failed the run is the one to tell
    for name in (resilience.CHECKPOINTS, "run_config.yaml", PROGRESS_NAME, "outputs", TENSORBOARD_DIR):
        remove_quietly(out / name)
    remove_leftovers(out, TMP, below=False)
    with contextlib.suppress(OSError):
        out.rmdir()  # only when nothing else is left


class TrainerSetup:
    """How a run's ``Trainer`` is built, shared by :func:`train` and the estimate's timed steps
    (:mod:`tunelab.advice.estimate`), so that the estimate measures the steps training takes.

    Built from a prepared run and a folder for its files, it holds the learning rate, the training
    precision and the :class:`InitialWeights` (taken at once, before anything changes the model);
    :meth:`trainer` builds the ``TrainingArguments`` and the ``TunelabTrainer`` with the strategy's
    callbacks and parameter groups; :meth:`attention` is the attention recomputation to train under;
    :meth:`restart` puts everything back for a retry after out-of-memory.
    """

    def __init__(self, run: PreparedRun, out: Path):
        self.run = run
        self.out = Path(out)
        config = run.config
        self.lr = config.lr if config.lr is not None else run.strategy.default_lr
        self.head_lr = run.strategy.head_lr(config)  # the new task head's own group (--head-lr)
        self.precision = run_precision(config)
        self.initial = InitialWeights(run.model, spill=self.out / ".tmp-initial-weights.safetensors", keep=config.auto_batch_size and not ranks.distributed())
        self.display = RunProgress()
        self.outputs = OutputCollector(run.data.task, run.data.label_names)
        self.ddp_unused()  # on the whole model, before the frozen-layer cache takes its lower part away

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """The Trainer's ``compute_metrics``: keeps each example's outputs (:mod:`tunelab.run.outputs`) and
        returns their metrics, which replace the Trainer's ``eval_loss``: accuracy, macro-F1 and the mean loss over
        examples for classification; for a causal LM the loss over every predicted token, where the Trainer's
        mean of batch means weighs a block of few targets (a conversation's short reply) like a full one."""
        return self.outputs(eval_pred)

    def collator(self):
        """The collator of the task (:func:`tunelab.run.padding.task_collator`)."""
        from tunelab.run.padding import task_collator

        return task_collator(self.run.tokenizer, self.run.data.task, self.run.max_length, self.run.document_mask)

    def arguments(self, *, progress: bool, **schedule: Any):
        """``TrainingArguments`` of the run; ``schedule`` sets what differs between a whole run
        (:func:`epoch_schedule`) and a few timed steps (``max_steps``, no evaluation or saving)."""
        from transformers import TrainingArguments

        config, task = self.run.config, self.run.data.task
        values: dict[str, Any] = dict(
            output_dir=str(self.out / "checkpoints"),
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=max(config.batch_size, 64) if task == "classification" else config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=self.lr,
            weight_decay=config.weight_decay,
            lr_scheduler_type="linear",
            seed=config.seed,
            data_seed=config.seed,
            length_column_name="length",
            remove_unused_columns=False,
            report_to=parse_report_to(config.report_to) or "none",
            run_name=self.out.name,
            disable_tqdm=True,  # tunelab.run.progress shows one bar per phase instead of tqdm's
            dataloader_pin_memory=torch.cuda.is_available(),  # the Trainer's default where there is a GPU to copy to
            use_cpu=not torch.cuda.is_available(),
            prediction_loss_only=False,  # reduce_logits keeps two numbers an example, never (batch x length x vocab)
            bf16=self.precision == "bf16",
            fp16=self.precision == "fp16",
            # several processes: the Trainer scales each one's loss by their number for models that divide it by the
            # tokens of the whole batch (causal LM); a classifier averages its own batch (the loss came out doubled)
            average_tokens_across_devices=loss_over_step_targets(task),
            auto_find_batch_size=False,  # tunelab's own search (resilience.run_with_batch_search) also works on CPU
        )
        # non-reentrant: PyTorch's recommended form; it needs no input that requires grad (frozen embeddings).
        # transformers 5.x renamed the option activation_checkpointing (the old name warns at every run)
        name = "activation" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ else "gradient"
        values[f"{name}_checkpointing"] = config.gradient_checkpointing
        values[f"{name}_checkpointing_kwargs"] = {"use_reentrant": False} if config.gradient_checkpointing else None
        values.update(schedule)
        return TrainingArguments(**values)

    def trainer(self, train_ds, eval_ds, collator, *, model=None, progress: bool = False, callbacks=(), **schedule: Any):
        """The ``TunelabTrainer`` over ``train_ds`` (``model``: what it drives, the cache's model when one is used)."""
        run = self.run
        # the cache's top of the model trains the same weights, each of which the probe saw get a gradient or not
        schedule = {**self.ddp_unused(), **schedule}
        trainer = make_trainer_class()(
            model=model if model is not None else run.model,
            args=self.arguments(progress=progress, **schedule),
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            data_collator=collator,
            compute_metrics=self.compute_metrics,
            preprocess_logits_for_metrics=reduce_logits,
            callbacks=run.strategy.callbacks(run.model, run.layout, run.config) + list(callbacks),
        )
        if not loss_over_step_targets(run.data.task):
            # the Trainer passes num_items_in_batch to a model whose forward takes **kwargs and then leaves its loss
            # undivided by the accumulation steps; a classifier's loss is a mean over its own batch that ignores it
            trainer.model_accepts_loss_kwargs = False
        trainer.tunelab_param_groups = run.strategy.param_groups(run.model, run.layout, self.lr, run.config)
        trainer.tunelab_outputs = self.outputs
        trainer.tunelab_final_checkpoint = not run.config.screening
        trainer.tunelab_micro_tokens = run.config.micro_batch_tokens or None
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)  # raw log dicts on the console
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(ProgressFile(self.out))  # followed from outside (compare, another terminal)
        if progress and ranks.is_main():  # one display: every process would draw the same bars and lines
            trainer.add_callback(self.display)
        return trainer

    def ddp_unused(self) -> dict[str, Any]:
        """Several processes: ``ddp_find_unused_parameters`` from one probe pass (:func:`unused_trainable`) on the
        whole model, once per run (it holds for the frozen-layer cache's top part too, which trains the same
        weights in the same computation); nothing where one process trains, where gradient checkpointing decides it (transformers turns
        the search off for it) or where the pass cannot tell."""
        if not hasattr(self, "_ddp_unused"):
            self._ddp_unused: dict[str, Any] = {}
            if ranks.world_size() > 1 and not self.run.config.gradient_checkpointing:
                unused = unused_trainable(self.run.model)
                if unused is not None:
                    self._ddp_unused = {"ddp_find_unused_parameters": bool(unused)}
        return self._ddp_unused

    def attention(self):
        """Context manager: attention recomputation as the config asks (yields whether it is on)."""
        return recompute_attention(self.run.model, self.run.config.recompute_attention)

    def restart(self, trainer) -> None:
        """Back to the initial weights, a fresh optimizer and the same seed (a retry after out-of-memory)."""
        from transformers.trainer_utils import set_seed

        self.initial.restore(self.run.model)
        trainer.optimizer, trainer.lr_scheduler = None, None
        trainer.tunelab_param_groups = self.run.strategy.param_groups(self.run.model, self.run.layout, self.lr, self.run.config)
        set_seed(self.run.config.seed)


MAX_EVALUATIONS = 6
"""Validation passes during a run, at most: one each epoch, or one every k epochs when a run has more than this
many (small data trained for many short epochs: at 50 labels and 30 epochs of 2 steps, evaluating 250
validation examples after each epoch took twice the training's time)."""


def evaluation_schedule(epochs: float, steps_per_epoch: int) -> dict[str, Any]:
    """``TrainingArguments`` for evaluating each epoch, or every ``ceil(epochs / MAX_EVALUATIONS)`` epochs.

    >>> evaluation_schedule(3, 10)
    {'eval_strategy': 'epoch'}
    >>> evaluation_schedule(30, 2)
    {'eval_strategy': 'steps', 'eval_steps': 10}
    """
    every = max(1, math.ceil(epochs / MAX_EVALUATIONS - 1e-9))
    if every == 1:
        return {"eval_strategy": "epoch"}
    return {"eval_strategy": "steps", "eval_steps": every * steps_per_epoch}


def epoch_schedule(config: TrainConfig, n_train: int) -> dict[str, Any]:
    """The ``TrainingArguments`` of a whole run: epochs, warm-up, evaluation (:func:`evaluation_schedule`),
    checkpoints."""
    # several processes: each optimizer step takes a batch from every one of them
    steps_per_epoch = config.steps_per_epoch(n_train, ranks.world_size())
    epochs = config.epochs_for(n_train, ranks.world_size())
    # a screening run is validated once, after training (_final_metrics)
    evaluation = {"eval_strategy": "no"} if config.screening else evaluation_schedule(epochs, steps_per_epoch)
    return dict(
        num_train_epochs=epochs,
        warmup_steps=int(config.warmup_ratio * steps_per_epoch * epochs),
        **evaluation,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 5),
        train_sampling_strategy="group_by_length",
    )


@dataclass
class _Datasets:
    """The tokenized splits a run trains and evaluates on, through the frozen-layer cache when it applies."""

    train: Any
    validation: Any
    test: Any
    collator: Any
    n_tokens: int  # training tokens (before the cache keeps only what the head reads)
    model: Any  # what the trainer drives
    plan: Any = None
    cache_info: dict[str, Any] = field(default_factory=lambda: {"used": False})

    def restore(self, run: PreparedRun) -> None:
        from tunelab.run import cache as frozen_cache

        if self.plan is not None:
            frozen_cache.restore(self.plan, run)


def cache_plan(run: PreparedRun):
    """The frozen-layer cache's plan for ``run`` (:func:`tunelab.run.cache.plan`), None where it does not apply."""
    from tunelab.run import cache as frozen_cache

    return frozen_cache.plan(run) if run.config.cache else None


def _training_datasets(run: PreparedRun, collator, plan) -> _Datasets:
    from tunelab.run import cache as frozen_cache

    splits = (run.tokenized["train"], run.tokenized["validation"], run.tokenized["test"])
    n_tokens = int(sum(splits[0]["length"]))
    if plan is not None and ranks.sharded():
        why = (f"weights sharded across processes ({ranks.sharded()}): the frozen-prefix cache replaces blocks' forward "
               "in place, which a sharding wrapper does not expect")
        frozen_cache.not_used(run, why)
        return _Datasets(*splits, collator, n_tokens, run.model, cache_info={"used": False, "off": why})
    if plan is None:
        return _Datasets(*splits, collator, n_tokens, run.model)
    train_ds, val_ds, test_ds, collator, cache_info = frozen_cache.apply(plan, run, splits, collator=collator)
    return _Datasets(train_ds, val_ds, test_ds, collator, n_tokens, cache_info.get("model", run.model), plan, cache_info)


def _train(config: TrainConfig, *, data: TaskData | None, progress: bool) -> RunRecord:
    from tunelab.run.artifacts import write_artifact

    started = datetime.now(UTC).isoformat(timespec="seconds")
    wall0 = time.perf_counter()
    own_peak = start_run_peak()  # a second run in this process: its peak memory is its own
    with ranks.main_first():  # several processes: the main one checks and prepares out/ before the others read
        config, out, resume_from = _start(config)
        run = prepare(config, data)  # every check on data, model and options happens before out/ is touched
        if not own_peak:
            run.warnings.append("peak memory is this process's since it started, earlier runs in it included: this "
                                "system cannot reset it (compare isolates each run in its own process by default)")
        _open_out_dir(run, out)
    setup = TrainerSetup(run, out)
    plan = cache_plan(run)
    with setup.display.phase("frozen-layer cache", None) if progress and plan is not None and ranks.is_main() else contextlib.nullcontext():
        ds = _training_datasets(run, setup.collator(), plan)
    _check_same_data(run, resume_from)  # before the tracker: a refused resume leaves the run it continues as it was
    # the trackers' callbacks read their settings when built; several processes: the main one tracks
    meta = _meta_info(run)  # once: the tracker's parameters and the record read it
    params = run_params(config.to_dict(), meta.to_dict())
    with tracking(config.report_to if ranks.is_main() else None, out, params, resume=resume_from is not None) as tracked:
        trainer = setup.trainer(ds.train, ds.validation, ds.collator, model=ds.model, progress=progress,
                                **epoch_schedule(config, len(ds.train)))
        trainer.tunelab_data = run.data.fingerprint or None
        as_loaded = _as_loaded_validation(run, trainer, ds, out)
        fit = _fit(setup, trainer, out, resume_from)
        with _interrupts_after_training(out) as doing:
            metrics, outputs = _final_metrics(trainer, ds, run.data.task, test=not config.screening)
            doing("saving the outputs")
            gathered = ranks.gathered_state_dict(trainer)  # FSDP / ZeRO-3: the whole weights, on the main process
            for split, o in outputs.items():  # a causal LM's blocks, each with the text it starts in, and its texts' sums
                _attribute_texts(o, run.tokenized.get(split))
            _written_once(lambda: [o.save(out, split) for split, o in outputs.items()])  # <out>/outputs/<split>.npz
            eval_time = trainer.eval_seconds + ds.cache_info.get("eval_share_s", 0.0)
            _release_training_state(trainer)
            ds.restore(run)
            base_rounded = base_dtype(config) != torch.float32
            if base_rounded:
                # trained under autocast; what follows (forgetting, --merge, the artifact) runs plain float32 forwards
                run.model.float()
            _check_trained(run.model, setup.initial, gathered)
            train_info = _train_info(setup, trainer, ds, fit, eval_time)  # every process (peak memory is gathered)
            train_info.as_loaded_validation = as_loaded
            doing("measuring forgetting")
            train_info.forgetting = _written_once(lambda: _forgetting(run, fit.train_seconds))  # loads a base model
            doing("saving the model")
            # a screening run keeps no model: the planner reads its validation metric, and the final round trains again
            artifact = None if config.screening else _written_once(
                lambda: write_artifact(run, out, metrics=metrics.to_dict(), merge=config.merge, state_dict=gathered,
                                       base_rounded=base_rounded, as_loaded=as_loaded))
        record = RunRecord.success(
            config, started_at=started, wall_time_s=time.perf_counter() - wall0, metrics=metrics,
            meta_info=meta, train_info=train_info, artifact=Artifact.from_dict(artifact) if artifact else None,
        )
        if ranks.is_main():
            log_record(config.report_to, out, tracked, record.to_dict())
    _written_once(lambda: (record.write(out / "metrics.json"), _cleanup_checkpoints(out / "checkpoints"), mark_done(out)))
    return record


@contextlib.contextmanager
def _interrupts_after_training(out: Path):
    """Ctrl-C (or SIGTERM) after the last step (evaluating, measuring forgetting, saving the model): the same message
    as during training, naming the checkpoint of that step and the command that resumes (which evaluates it); it was a
    bare "interrupted" once the evaluation was over. Yields the function that says what the run does now."""
    from tunelab.run import resilience

    doing = ["evaluating"]
    try:
        yield doing.append
    except resilience.RunInterrupted:
        raise
    except KeyboardInterrupt as exc:
        checkpoint = resilience.last_complete_checkpoint(out / resilience.CHECKPOINTS)
        saved = f"the last step's checkpoint is kept in {checkpoint}" if checkpoint else "no checkpoint was saved"
        raise resilience.RunInterrupted(f"stopped after training, while {doing[-1]}; {saved}. Resume with: "
                                        f"{resilience.resume_command(out)}", checkpoint) from exc


def _written_once(write):
    """``write()`` on the main process only, the others waiting for it; its result reaches every process."""
    result = write() if ranks.is_main() else None
    if ranks.distributed():
        result = ranks.gather(result)[0]
    return result


def _start(config: TrainConfig) -> tuple[TrainConfig, Path, Path | None]:
    """The resolved config, its out folder (checked, not yet touched) and the checkpoint to resume from."""
    from transformers.trainer_utils import set_seed

    from tunelab.run import resilience
    from tunelab.run.artifacts import check_out_dir

    config = config.replace()
    config.validate()
    problem = ranks.sharding_problem(get_strategy(config.strategy), merge=config.merge)
    if problem:
        raise ConfigError(problem)
    if ranks.distributed() and not get_strategy(config.strategy).fixed_trainable_set:
        raise ConfigError(
            f"strategy '{config.strategy}' changes which weights train during the run, which several processes "
            "cannot follow (DistributedDataParallel syncs only the weights trainable when it starts): run it in one process"
        )
    limit_onednn_for(config)  # before the cache pass's first bfloat16 multiply (tunelab.run.heap)
    out = run_out_dir(config)
    config.out = str(out)
    if ranks.is_main():  # the others start once the main process has prepared out/ (ranks.main_first)
        check_out_dir(out, overwrite=config.overwrite, resume=config.resume, data=config.data)
    resume_from = resilience.resume_point(out) if config.resume else None
    if resume_from is not None:
        # a run started before a setting existed continues as it trained, not with today's default (config.UNRECORDED)
        config = config.replace(**unrecorded_settings(out / "run_config.yaml"))
        _check_same_run(config, out, resume_from)
    set_seed(config.seed)
    return config, out, resume_from


def _check_same_run(config: TrainConfig, out: Path, checkpoint: Path) -> None:
    """Refuse to continue the checkpoint of ``out`` with settings other than those it was trained with (the
    run_config.yaml the run wrote when it started; :data:`~tunelab.config.OPERATIONAL` ones may change) or over
    another number of processes: the optimizer, schedule and data order come back from the checkpoint, so the
    record would describe training that never happened (a new --lr, a new batch size at half the run), or the
    checkpoint would not load at all (another strategy, model or label set)."""
    from tunelab.run import resilience

    recorded = saved_settings(out / "run_config.yaml")
    launched = resilience.checkpoint_launch(checkpoint)  # as it started: this process may be one of another launch
    changed = config.changed_from_run(recorded) if recorded is not None else []
    if changed:
        shown = ", ".join(setting_change(name, old, new) for name, old, new in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ConfigError(f"{setting('resume', True)} would continue the run in {out} with other settings than it trained "
                          f"with ({shown}{more}): resume it as it started ({resilience.resume_command(out, launched)}), or "
                          f"start again with {setting('overwrite', True)}, or choose another {setting('out')}")
    trained_by, now = launched.processes if launched else None, ranks.world_size()
    if trained_by is not None and trained_by != now:
        raise ConfigError(f"{checkpoint} was trained by {trained_by} process{'es' if trained_by > 1 else ''}, and this "
                          f"resume runs {now}: each step's batch would change from there on. Resume it as it started "
                          f"({resilience.resume_command(out, launched)}), or start again with {setting('overwrite', True)}")


def _check_same_data(run: PreparedRun, checkpoint: Path | None) -> None:
    """Refuse to continue a checkpoint on other data than it trained on: the same --data file edited since (its
    settings unchanged, :func:`_check_same_run` cannot see it), whose rows the resumed epochs would mix in."""
    from tunelab.run import resilience

    trained_on = resilience.checkpoint_data(checkpoint) if checkpoint is not None else None
    if trained_on and run.data.fingerprint and trained_on != run.data.fingerprint:
        raise ConfigError(f"{checkpoint} was trained on other data than {run.config.data} holds now (the file changed "
                          "since the run started): resume it on the data it started with, or start again with "
                          f"{setting('overwrite', True)}")


def _open_out_dir(run: PreparedRun, out: Path) -> None:
    """Make ``out`` ready once every check has passed: clean it as asked, save the run's config."""
    from tunelab.run import resilience
    from tunelab.run.artifacts import prepare_out_dir

    if not ranks.is_main():
        return
    for w in run.warnings:
        log.warning(w)
    prepare_out_dir(out, overwrite=run.config.overwrite, resume=run.config.resume)
    resilience.clean_checkpoint_temporaries(out / resilience.CHECKPOINTS)
    # how it ran is no setting (the launcher's): said where a user reads the settings, as the model card says it
    run.config.save(out / "run_config.yaml", comment=f"repeats this run: {resilience.repeat_command(out)}")


@dataclass
class _Fit:
    notes: list[str]
    seconds: float  # the training loop, its periodic evaluations included
    recomputed: bool
    eval_seconds: float = 0.0  # those evaluations (not the ones after the loop: test, a screening run's validation)

    @property
    def train_seconds(self) -> float:
        """The training loop without its periodic evaluations."""
        return self.seconds - self.eval_seconds


def micro_batches_off(config: TrainConfig) -> str | None:
    """Why ``--micro-batch-tokens`` cuts no batch in a run of ``config`` (the condition of the trainer's
    ``training_step``: one process on a CPU), else ``None``."""
    from tunelab.hardware import build_device

    if ranks.distributed():
        return "micro-batches apply on one process: under torchrun / accelerate launch no batch is cut"
    if build_device().type != "cpu":
        return "micro-batches apply on a CPU: on this GPU no batch is cut (lower --batch-size for less memory)"
    return None


def batch_search_off(config: TrainConfig) -> str | None:
    """The note for a run whose out-of-memory batch search (``--auto-batch-size``, on by default) cannot run because
    several processes train it, else ``None``."""
    if config.auto_batch_size and ranks.distributed():
        return "out-of-memory batch search off: a process that retried alone at a smaller batch would leave the others waiting"
    return None


def _fit(setup: TrainerSetup, trainer, out: Path, resume_from: Path | None) -> _Fit:
    """Train, with Ctrl-C saving a checkpoint and out-of-memory retried at a smaller batch."""
    from tunelab.run import resilience

    config = setup.run.config
    interrupt = resilience.interrupt_handler()
    trainer.add_callback(interrupt)
    trainer.tunelab_interrupt = interrupt
    if resume_from is not None:
        trainer.add_callback(resilience.missed_evaluation(trainer))
    notes: list[str] = []
    start_batch = config.batch_size
    if resume_from is not None:
        start_batch = min(start_batch, resilience.checkpoint_batch_size(resume_from) or start_batch)
        notes.append(f"resumed from {resume_from.name}")
        log.warning(notes[-1])  # now, before training restarts: with the notes after it, it came after an epoch's line
    # asked for (it is off by default) and cannot apply: said once, before training (as --micro-batch-tokens that
    # cuts nothing is); the model is on its training device now
    attention = attention_off(setup.run.model) if config.recompute_attention else None
    if attention:
        notes.append(f"--recompute-attention: {attention}")
        if ranks.local_rank() == 0:
            log.warning(notes[-1])
    said = len(notes)
    notes += [note for note in (ranks.sharding_ignored(), ranks.processes_ignored()) if note]
    # recorded, not said: the search is on by default, so every launch said it, asked for or not (the CLI says it
    # where --auto-batch-size was typed)
    search_off = batch_search_off(config)
    attempts = 0

    def attempt(batch_size: int, accumulation: int):
        nonlocal attempts
        if attempts:  # a retry after out-of-memory starts again from the same weights and seed
            setup.restart(trainer)
        attempts += 1
        trainer.args.per_device_train_batch_size = batch_size
        trainer.args.gradient_accumulation_steps = accumulation
        trainer._train_batch_size = batch_size
        return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    # a resumed run's training time includes the part before its checkpoint (recorded in it): a run interrupted near
    # its end would otherwise seem to train in seconds, and look cheapest beside one that ran in one go
    before = resilience.checkpoint_train_seconds(resume_from) if resume_from is not None else 0.0
    t0, eval0 = time.perf_counter(), trainer.eval_seconds
    trainer.tunelab_clock = lambda: before + time.perf_counter() - t0 - (trainer.eval_seconds - eval0)
    interrupt.install()
    try:
        with setup.attention() as recomputed:
            resilience.run_with_batch_search(
                attempt,
                batch_size=start_batch,
                accumulation=max(1, config.batch_size * config.gradient_accumulation_steps // start_batch),
                enabled=config.auto_batch_size and search_off is None,
                notes=notes,
            )
    except TrainingError as exc:
        raise resilience.with_checkpoint_note(exc, out) from exc
    finally:
        interrupt.uninstall()
        setup.initial.discard()  # the samples stay for the no-change check; the copy (or its file) goes
    if interrupt.stopped_unfinished(trainer.state):
        raise resilience.interrupted_error(out, trainer.state.global_step, trainer.state.max_steps)
    run = setup.run
    notes.append(run.strategy.steps_note(run.layout, config, trainer.state.max_steps))
    for note in notes[said:]:
        if note:
            log.warning(note)
    notes = [note for note in [*notes, search_off] if note]
    return _Fit(notes, before + time.perf_counter() - t0, recomputed, eval_seconds=trainer.eval_seconds - eval0)


def _as_loaded_validation(run: PreparedRun, trainer, ds: _Datasets, out: Path) -> dict[str, float] | None:
    """A causal LM's validation loss and perplexity before its first step, where the prepared model computes what the
    model as loaded computes (:attr:`PreparedRun.starts_as_loaded`), its per-example outputs saved as :data:`AS_LOADED`:
    the reference an adaptation must beat (for a classifier, always predicting the most frequent class is). Not for a
    screening run (the planner does not read it); a resumed run reads what it saved before."""
    if run.data.task != "causal-lm" or not run.starts_as_loaded or run.config.screening:
        return None
    kept = ExampleOutputs.load(out, AS_LOADED)
    if kept is None:
        trainer.evaluate(ds.validation, metric_key_prefix="as_loaded")
        kept = trainer.tunelab_outputs.latest
        if kept is None:
            return None
        _attribute_texts(kept, run.tokenized.get("validation"))
        _written_once(lambda: kept.save(out, AS_LOADED))
    return kept.metrics()


def _attribute_texts(outputs: ExampleOutputs | None, tokenized) -> None:
    """A split's causal-LM outputs (its blocks, in the order they were evaluated) with the text each block starts in
    and each text's summed loss and predicted tokens (:meth:`ExampleOutputs.attribute`); as they are otherwise."""
    import numpy as np

    if outputs is None:
        return
    if tokenized is None or TEXT_COLUMN not in tokenized.column_names or len(tokenized) != len(outputs):
        outputs.attribute(None)
        return
    outputs.texts = np.asarray(tokenized[TEXT_COLUMN], dtype=np.int64)
    outputs.attribute(flat_column(tokenized, TARGET_TEXTS_COLUMN) if TARGET_TEXTS_COLUMN in tokenized.column_names
                      else None)


def flat_column(ds, column: str):
    """A list-of-integers column of ``ds``, row after row, as one int64 array (read from its Arrow table in one piece,
    not as Python lists row by row)."""
    import numpy as np

    data = ds.with_format("arrow")[:][column].combine_chunks()
    return data.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _final_metrics(trainer, ds: _Datasets, task: str, *, test: bool = True) -> tuple[Metrics, dict[str, ExampleOutputs]]:
    """The final validation and test metrics (``test=False``: validation only), and each split's per-example outputs."""
    # the epoch-end evaluation after the last step already measured these weights on the validation split
    last_eval = _final_step_eval(trainer.state.log_history, trainer.state.global_step)
    outputs: dict[str, ExampleOutputs] = {}
    if last_eval is not None:
        validation = clean_metrics(last_eval, "eval", task)
        kept = trainer.tunelab_eval_outputs
    else:
        validation = clean_metrics(trainer.evaluate(ds.validation, metric_key_prefix="validation"), "validation", task)
        kept = trainer.tunelab_outputs.latest
    if kept is None:  # a resumed run that had nothing left to train: measure the same weights again
        trainer.evaluate(ds.validation, metric_key_prefix="validation")
        kept = trainer.tunelab_outputs.latest
    outputs["validation"] = kept
    if not test:
        return Metrics(validation=validation, test=None), outputs
    scores = clean_metrics(trainer.evaluate(ds.test, metric_key_prefix="test"), "test", task)
    outputs["test"] = trainer.tunelab_outputs.latest
    return Metrics(validation=validation, test=scores), outputs


def _train_info(setup: TrainerSetup, trainer, ds: _Datasets, fit: _Fit, eval_time: float) -> TrainInfo:
    run = setup.run
    train_time = fit.train_seconds  # not minus every evaluation: the test split's (and a screening run's only one) come after
    # counted after training: a schedule (gradual unfreezing) may have unfrozen more than at the start
    trainable, total = trainable_parameters(run.model)
    peaks = [round(float(p), 1) for p in ranks.gather(peak_memory_mb())]
    return TrainInfo(
        train_time_s=round(train_time, 3),
        eval_time_s=round(eval_time, 3),
        cache_time_s=round(ds.cache_info.get("build_s", 0.0), 3),
        samples_per_s=round(len(ds.train) * trainer.args.num_train_epochs / max(train_time, 1e-9), 2),
        tokens_per_s=round(ds.n_tokens * trainer.args.num_train_epochs / max(train_time, 1e-9), 1),
        peak_memory_mb=max(peaks),
        peak_memory_mb_per_rank=peaks if len(peaks) > 1 else None,
        world_size=ranks.world_size(),
        memory_kind="cuda" if torch.cuda.is_available() else "rss",
        trainable_params=int(trainable),
        total_params=int(total),
        trainable_share=trainable / total if total else 0.0,
        learning_rate=setup.lr,
        head_learning_rate=setup.head_lr if setup.run.strategy.head_parameter_ids(setup.run.layout) else None,
        batch_size=trainer.args.per_device_train_batch_size,
        gradient_accumulation_steps=trainer.args.gradient_accumulation_steps,
        effective_batch_size=run.config.replace(batch_size=trainer.args.per_device_train_batch_size,
                                                gradient_accumulation_steps=trainer.args.gradient_accumulation_steps
                                                ).effective_batch_size(ranks.world_size()),
        max_length=run.max_length,
        document_mask=run.document_mask if run.data.task == "causal-lm" else None,
        precision=setup.precision,
        attention_recomputed=fit.recomputed,
        num_epochs=float(trainer.args.num_train_epochs),
        steps=int(trainer.state.global_step),
        epochs=_epoch_history(trainer.state.log_history, run.data.task),
        cache={k: v for k, v in ds.cache_info.items() if k != "model"},
        notes=run.warnings + fit.notes,
    )


def _forgetting(run: PreparedRun, train_seconds: float) -> dict[str, Any] | None:
    """The run's forgetting on the reference text (``None`` when switched off); a failure to measure it
    is a note, never a lost run."""
    from tunelab.run import forgetting

    if not run.config.forgetting or run.config.screening:
        return None
    if ranks.shards_weights():  # its forward passes would run on the main process alone, over a shard
        return {"error": f"not measured under {ranks.sharded()} weight sharding: each process holds only a shard of "
                         "the model; load the artifact in one process to measure it"}
    try:
        result = forgetting.measure_run(run.model, run.config, resolve_model(run.config.model), run.tokenizer,
                                         document_mask=run.document_mask)
    except Exception as exc:  # noqa: BLE001 - the trained model is what matters; say why there is no measure
        log.warning(f"forgetting not measured: {' '.join(str(exc).split())}")
        return {"error": " ".join(str(exc).split())}
    out = result.to_dict()
    out["share_of_training_time"] = round(result.time_s / max(train_seconds, 1e-9), 4)
    return out


def _class_counts(data: TaskData) -> dict[str, int] | None:
    """Training examples per class name (classification), None otherwise."""
    if data.task != "classification" or not data.label_names:
        return None
    counts = [0] * len(data.label_names)
    for label in data.train["label"]:
        counts[int(label)] += 1
    return dict(zip(data.label_names, counts, strict=True))


def _scored_texts(tokenized: dict[str, Any]) -> dict[str, int]:
    """Per evaluation split, the texts with a predicted token (:attr:`tunelab.run.record.MetaInfo.scored_texts`)."""
    import numpy as np

    return {split: int(np.unique(flat_column(tokenized[split], TARGET_TEXTS_COLUMN)).size)
            if len(tokenized[split]) and TARGET_TEXTS_COLUMN in tokenized[split].column_names else 0
            for split in WHOLE_SPLITS if split in tokenized}


def _meta_info(run: PreparedRun) -> MetaInfo:
    config, data = run.config, run.data
    return MetaInfo(
        model=config.model,
        model_path=resolve_model(config.model),
        task=data.task,
        data=data.source or config.data,
        data_fingerprint=data.fingerprint,
        split_fingerprint=data.split_fingerprint or None,
        n_train=len(data.train),
        n_validation=len(data.validation),
        n_test=len(data.test),
        scored_texts=_scored_texts(run.tokenized) if data.task == "causal-lm" else None,
        label_names=data.label_names,
        class_counts=_class_counts(data),
        num_blocks=run.layout.num_blocks,
        versions=library_versions(),
        device="cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
    )


def _release_training_state(trainer) -> None:
    """Drop the optimizer and scheduler (Adam keeps two more copies of the trainable weights) once the
    last evaluation has run, so that writing the model does not stack on top of them."""
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.accelerator.free_memory()
    release_free_heap()


def _final_step_eval(log_history: list[dict], global_step: int) -> dict | None:
    """The validation metrics logged at ``global_step`` (the epoch-end evaluation after the last step)."""
    for entry in reversed(log_history):
        if "eval_loss" in entry:
            return entry if entry.get("step") == global_step else None
    return None


class InitialWeights:
    """The trainable weights as they were before training, kept as cheaply as the run allows.

    - ``changed(model)``: did any trainable weight move? Answered from a fixed sample of up to 4,096
      elements per tensor (an optimizer step moves every element with a gradient).
    - ``restore(model)``: put them back, to restart after out-of-memory with a smaller batch. Up to
      ``MEMORY_MB`` they are copied in memory; beyond that (full fine-tuning: the whole model) they are
      written once to ``spill`` on disk, so the run does not carry a second copy of the model in RAM.
    """

    MEMORY_MB = 8.0
    SAMPLE = 4096

    def __init__(self, model, *, spill: Path, keep: bool = True):
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.samples = {n: self._sample(p) for n, p in params.items()}
        self.copies: dict[str, torch.Tensor] | None = None
        self.spill: Path | None = None
        if not keep:
            return
        size_mb = sum(p.numel() * p.element_size() for p in params.values()) / 2**20
        if size_mb <= self.MEMORY_MB:
            self.copies = {n: p.detach().clone() for n, p in params.items()}
        else:
            from safetensors.torch import save_file

            spill.parent.mkdir(parents=True, exist_ok=True)
            save_file({n: p.detach().contiguous() for n, p in params.items()}, str(spill))
            self.spill = spill

    @classmethod
    def _sample(cls, p: torch.Tensor) -> torch.Tensor:
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // cls.SAMPLE)
        return flat[::step][: cls.SAMPLE].clone()

    def changed(self, model) -> bool:
        return any(
            not torch.equal(self._sample(p).to(self.samples[n].device), self.samples[n])
            for n, p in model.named_parameters()
            if n in self.samples
        )

    def changed_in(self, state: dict[str, torch.Tensor]) -> bool:
        """:meth:`changed`, read from a state dict gathered from processes that each held a shard (FSDP,
        ZeRO-3; ZeRO-3 gathers 16-bit weights: the samples are compared in that precision). Names the state
        dict does not have count as changed: nothing proves they stayed."""
        return any(
            n not in state or not torch.equal(self._sample(state[n]).cpu(), self.samples[n].cpu().to(state[n].dtype))
            for n in self.samples
        )

    @torch.no_grad()
    def restore(self, model) -> None:
        params = dict(model.named_parameters())
        if self.copies is not None:
            for n, value in self.copies.items():
                params[n].copy_(value)
        elif self.spill is not None:
            from safetensors import safe_open

            with safe_open(str(self.spill), framework="pt") as f:
                for n in f.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    params[n].copy_(f.get_tensor(n))
        else:
            raise RuntimeError("the initial weights were not kept (auto_batch_size is off)")

    def discard(self) -> None:
        self.copies = None
        if self.spill is not None:
            self.spill.unlink(missing_ok=True)
            self.spill = None


def _check_trained(model, before: InitialWeights, gathered: dict | None = None) -> None:
    """Raise when no trainable weight changed; ``gathered``: the whole weights (on the main process) when
    each process holds only a shard, checked there and the answer shared."""
    changed = before.changed(model) if gathered is None else _written_once(lambda: before.changed_in(gathered))
    if not changed:
        raise TrainingError(
            "no trainable weight changed during training: the learning rate is zero or far too small, or "
            "there were no training steps; raise --lr or --epochs"
        )


def _epoch_history(log_history: list[dict], task: str) -> list[dict]:
    epochs: dict[int, dict] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        e = max(1, math.ceil(entry["epoch"] - 1e-9))
        row = epochs.setdefault(e, {"epoch": e})
        if "loss" in entry:
            row["train_loss"] = float(entry["loss"])
        for k, v in entry.items():
            if k.startswith("eval_") and k[5:] in {"loss", "accuracy", "f1_macro"}:
                row[f"val_{k[5:]}"] = float(v)
        if task == "causal-lm" and "val_loss" in row:
            row["val_perplexity"] = float(math.exp(min(row["val_loss"], 50)))
    return [epochs[k] for k in sorted(epochs)]


def _cleanup_checkpoints(folder: Path) -> None:
    from tunelab.io import remove_tree

    remove_tree(folder)  # at once: a kill half-way kept a checkpoint marked complete without its weights


def build_shared_cache(config, split: int, *, data=None) -> dict[str, Any]:
    """Build (or find) the full-sequence cache at ``split`` for ``config``'s model and data, once,
    before ``compare`` starts its per-strategy runs: every run that freezes at least ``split`` blocks
    then finds it on disk (an exact match, or a base it extends by running only the blocks above)."""
    from tunelab.run import cache as frozen_cache

    if split < 1:
        return {"split": split, "skipped": "nothing frozen below the first block: no shared cache"}
    limit_onednn_for(config, head_only=False)  # the strategies sharing this cache train blocks too
    run = prepare(config.replace(strategy=as_loaded()), data)
    named = {s: run.tokenized[s] for s in frozen_cache.SPLITS}
    precision = frozen_cache.resolve_precision(getattr(config, "cache_precision", "auto"))
    folder, facts = frozen_cache.ensure_features(run, named, split, "all", frozen_cache.cache_dtype(config),
                                                 frozen_cache.cache_root(config), precision)
    return {"split": split, **facts}
