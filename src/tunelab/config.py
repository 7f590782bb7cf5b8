"""Typed, self-validating run configuration.

Every option of ``tunelab train`` lives here. A config can come from a YAML file, command-line flags
override it, and the fully resolved config is written next to every result (``config.yaml``) so that
``tunelab train --config DIR/config.yaml`` repeats the run exactly.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import numbers
import os
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tunelab.errors import ConfigError, as_flags, setting
from tunelab.io import folder_problem

DEFAULT_EPOCHS = 3.0
#: The shortest ``--max-length`` a run takes (a text needs room besides its special tokens).
MIN_MAX_LENGTH = 8
#: Each numeric option's range, as (whether a value fits, what it must be, an example, what leaving out an option
#: whose default is None gives): :meth:`TrainConfig.problems` says all three when a value does not fit.
RANGES: dict[str, tuple[Callable[[float], bool], str, str, str]] = {
    "epochs": (lambda v: 0 < v < math.inf, "positive and finite", "1 or 0.5", "3 (more where 3 make under 60 optimizer steps)"),
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2^32)", "0 or 7", ""),  # numpy's and scikit-learn's seeds
    "warmup_ratio": (lambda v: 0 <= v < 1, "in [0, 1) (a share of the training steps)", "0.1", ""),
    "weight_decay": (lambda v: 0 <= v < math.inf, "0 or more", "0 or 0.1", ""),
    "lora_alpha": (lambda v: v > 0, "positive (the adapter's scale, alpha / r)", "8 or 32", ""),
    "lr": (lambda v: 0 < v < math.inf, "positive and finite", "2e-5 or 1e-3", "the strategy's default"),
    "head_lr": (lambda v: 0 < v < math.inf, "positive and finite", "1e-3", "2e-3"),
    **{name: (lambda v: v >= 1, "at least 1", example, "") for name, example in (
        ("batch_size", "16"), ("lora_r", "4 or 16"), ("num_virtual_tokens", "10"), ("save_steps", "500"),
        ("gradient_accumulation_steps", "2"))},
    "max_length": (lambda v: v >= MIN_MAX_LENGTH, f"at least {MIN_MAX_LENGTH}", "64 or 256",
                   "128 (classification) or 256 (causal LM), capped by the model"),
    "max_train_samples": (lambda v: v >= 1, "at least 1", "1000", "every training example"),
    "max_eval_samples": (lambda v: v >= 1, "at least 1", "500", "every validation and test example"),
    "layers": (lambda v: v >= 1, "at least 1", "2", "the top 2 blocks (every block of a model with fewer)"),
    "lora_layers": (lambda v: v >= 1, "at least 1", "4", "every block"),
    "data_fraction": (lambda v: 0 < v <= 1, "in (0, 1]", "0.5", ""),
    "validation_fraction": (lambda v: 0 < v < 0.5, "in (0, 0.5)", "0.2", ""),
    "test_fraction": (lambda v: 0 < v < 0.5, "in (0, 0.5)", "0.1", ""),
    "lora_dropout": (lambda v: 0 <= v < 1, "in [0, 1)", "0.1", ""),
    "micro_batch_tokens": (lambda v: v >= 0, "0 (no cap) or positive", "2048 or 0", ""),
    "layer_lr_decay": (lambda v: 0 < v <= 1, "in (0, 1]", "0.9", ""),
}


def _number(value: float) -> str:
    """An option's value as written in a message: ``-3``, ``1.5``, ``inf``, ``2e-05``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def out_of_range(flag: str, rule: str, value: float, example: str, unset: str) -> str:
    """The one-line message of a numeric option outside its range, whatever the command: what it must be, what was
    given, and what to do (``example`` to pass; ``unset``: what leaving the option out gives).

    >>> out_of_range("--seeds", "at least 1", 0, "3", "one seed")
    '--seeds must be at least 1, got 0: pass e.g. 3, or leave it out for one seed'
    """
    return f"{flag} must be {rule}, got {_number(value)}: pass e.g. {example}, or leave it out for {unset}"


def counts_below_one(counts: Mapping[str, tuple[Any, str, str]], *, flags: Mapping[str, str] | None = None) -> list[str]:
    """:func:`out_of_range` of each whole-number option of a function below 1 (``None``: left out), named as the
    caller spells it (:func:`~tunelab.errors.setting`; ``flags``: a flag whose name is not the keyword's). ``counts``
    maps a keyword to (its value, an example, what leaving it out gives).

    >>> counts_below_one({"timed_steps": (0, "10", "its default, 5"), "num_examples": (None, "500", "1000")})
    ['timed_steps= must be at least 1, got 0: pass e.g. 10, or leave it out for its default, 5']
    """
    return [out_of_range(setting(name, flag=(flags or {}).get(name)), "at least 1", value, example, unset)
            for name, (value, example, unset) in counts.items() if value is not None and value < 1]


#: torch's names of the precisions (``--base-dtype float32``, as torch, peft and the Trainer's users write them), read as
#: the short names the settings keep (and run_config.yaml records).
DTYPE_SPELLINGS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
#: The precision settings and the short names each takes (``auto`` aside; what :meth:`TrainConfig.validate` accepts): a
#: torch spelling of another (``--base-dtype float16``) stays as typed, and is refused as unknown.
DTYPE_SETTINGS = {"base_dtype": ("fp32", "bf16"), "cache_precision": ("fp32", "bf16"), "precision": ("fp32", "bf16", "fp16")}

#: What ``--keep`` may name: the part of a too-long text a classifier reads (:func:`tunelab.run.encoding.encode`).
KEEP_CHOICES = ("start", "end", "start+end")
#: What ``--loss-on`` may name: the tokens of a conversation a causal LM learns to predict.
LOSS_ON_CHOICES = ("assistant", "all")
"""Passes over the training data when ``--epochs`` is not given (and there are at least :data:`MIN_STEPS` steps)."""
MIN_STEPS = 60
"""Optimizer steps a run takes at least when ``--epochs`` is not given: small data trains for more whole epochs.
Three epochs of 100 labels at batch 32 are 12 steps, after which every strategy stayed near chance on
rotten-tomatoes (head 0.50-0.54 test accuracy, minilm); with at least 60 the verdict benchmark's tasks of 50 to
300 labels trained (benchmarks/README.md, "the core tier")."""


def as_config(config: Any, where: str = "config") -> TrainConfig:
    """``config`` as a :class:`TrainConfig`: one as it is, a mapping of settings through :meth:`TrainConfig.from_dict`
    (``train({"model": "minilm", ...})`` failed with ``'dict' object has no attribute 'task'``); anything else is one
    :class:`ConfigError`."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return TrainConfig.from_dict(dict(config), where=where)
    raise ConfigError(f"{where} must be a TrainConfig (or a dict of its settings); got a {type(config).__name__}")


UNRECORDED = {"document_mask": False}
"""Settings added after runs began to write their ``run_config.yaml``, each with the value that a run whose record
lacks it trained with (today's default may differ: packed texts attended across their boundaries before
``document_mask`` existed). :func:`saved_settings` fills them in, so that a comparison reuses such a run only where
the value matches, and ``--resume`` continues it as it started (:func:`unrecorded_settings`)."""


def _recorded(path: str | Path) -> dict[str, Any] | None:
    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return values if isinstance(values, dict) else None


def saved_settings(path: str | Path) -> dict[str, Any] | None:
    """The settings a run wrote when it started (its ``run_config.yaml``) as a mapping, those it started before
    (:data:`UNRECORDED`) with the values it trained with, or None when there is none to read: what ``--resume`` and a
    comparison's reuse compare a run's settings with."""
    values = _recorded(path)
    return None if values is None else with_unrecorded(values)


def with_unrecorded(values: Mapping[str, Any]) -> dict[str, Any]:
    """A run's recorded settings (its ``run_config.yaml``, or its record's ``config``) with those it started before
    (:data:`UNRECORDED`) filled in with the values it trained with."""
    return {**UNRECORDED, **values}


def unrecorded_settings(path: str | Path) -> dict[str, Any]:
    """The :data:`UNRECORDED` settings that the ``run_config.yaml`` at ``path`` lacks, with the values its run trained
    with: what ``--resume`` of a run started before they existed takes, whatever today's default."""
    values = _recorded(path)
    return {} if values is None else {k: v for k, v in UNRECORDED.items() if k not in values}


EXTRA_READ = ("cache_dtype",)
"""The :attr:`TrainConfig.extra` keys tunelab's own code reads, whatever the strategy (the frozen-layer cache's dtype,
:func:`tunelab.run.cache.cache_dtype`); every other key is a strategy's (:meth:`TrainConfig.extra_in_effect`)."""


OPERATIONAL = frozenset({"out", "resume", "overwrite", "cache_dir", "save_steps", "micro_batch_tokens", "report_to"})
"""The settings that change where and how a run is carried out or watched, not what it trains: a comparison reuses a
finished run across them, and ``--resume`` continues an interrupted one across them (every other change is another run)."""



@dataclass
class TrainConfig:
    """Options of one training run. ``None`` means "the strategy's / model's default"."""

    model: str = "minilm"
    """Built-in name (``tunelab models``), local transformers folder, or hub id."""
    data: str = "rotten-tomatoes"
    """Built-in name (``tunelab datasets``) or a path (CSV, TSV, JSONL, Parquet, TXT, also .gz/.bz2/.xz; a datasets folder)."""
    strategy: str = "full"
    """One of ``tunelab strategies``."""
    task: str | None = None
    """``classification`` or ``causal-lm``; inferred from the data when not given."""
    text_column: str = "text"
    """Column of the texts; two names separated by a comma (``premise,hypothesis``) make each example a pair of texts,
    encoded as the tokenizer encodes pairs (classification)."""
    label_column: str = "label"
    """Column of the class labels (classification)."""
    epochs: float | None = None
    """Passes over the training data; ``None``: 3, or as many whole epochs as make 60 optimizer steps where 3 would
    make fewer."""
    lr: float | None = None
    """Learning rate; ``None`` takes the strategy's default."""
    head_lr: float | None = None
    """Learning rate of the new task head (classification), in its own optimizer group whatever the strategy;
    ``None``: tunelab's head rate, 2e-3 (the body keeps the strategy's --lr)."""
    batch_size: int = 32
    """Examples per batch on each process; an optimizer step takes batch size x processes x
    --gradient-accumulation-steps examples."""
    max_length: int | None = None
    """Maximum tokens per example; ``None``: 128 for classification, 256 for causal LM (capped by the model)."""
    keep: str = "start"
    """Which part of a text longer than --max-length a classifier reads: ``start``, ``end``, or ``start+end`` (a
    quarter from its start, the rest from its end: long reviews and documents; Sun et al. 2019, "How to Fine-Tune
    BERT for Text Classification?"). Single texts; pairs are cut longest first."""
    document_mask: bool = True
    """Causal LM only: each text packed into a block attends only to itself, not to the texts packed before it (each
    block's position ids restart at every text's start; transformers builds the per-text causal mask). Where the model
    or the strategy cannot keep texts apart (a soft prompt every text must see), the run says so and packs as
    before; ``--no-document-mask``: texts attend across their boundaries, as tunelab did before. This is the setting
    as asked (``run_config.yaml``, a record's ``config``); what the run did is its record's
    ``train_info.document_mask`` and its model's ``tunelab.json`` (:func:`tunelab.run.training.document_mask`)."""
    loss_on: str = "assistant"
    """Causal LM trained on conversations (messages, prompt/completion, ShareGPT, Alpaca): ``assistant`` learns the
    assistant's turns only, the rest of each conversation being their context (TRL's ``assistant_only_loss``; its
    default for prompt/completion pairs), end-of-turn markers included; ``all`` learns every token. Plain text
    learns every token either way."""
    seed: int = 42
    """Seed of the run: its train / validation / test split and subsampling, the new weights' initialisation and the
    data order (a comparison's --seeds vary the last two; every run of it keeps the split of this seed)."""
    validation_fraction: float = 0.1
    """Share of the data held out for validation (where strategies are chosen), when the data has no split of its own."""
    test_fraction: float = 0.2
    """Share of the data held out for the test split (reported, never chosen on), when the data has no split of its
    own."""
    max_train_samples: int | None = None
    """Use at most this many training examples (stratified, seeded); handy for quick runs."""
    max_eval_samples: int | None = None
    """Use at most this many validation and test examples each."""
    data_fraction: float = 1.0
    """Train on this fraction of the training split, after --max-train-samples caps it (stratified, seeded, nested:
    a smaller fraction's examples are among a larger one's)."""
    weight_decay: float = 0.01
    """AdamW weight decay of the trained weights (the Trainer's ``weight_decay``)."""
    warmup_ratio: float = 0.06
    """Share of the training steps over which the learning rate rises linearly from 0 (the Trainer's
    ``warmup_ratio``), before it decays linearly."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients add up to one optimizer step (the effective batch grows, memory does not)."""
    # strategy options
    layers: int | None = None
    """``last-n``: how many top blocks train; ``None``: 2, or every block of a model with fewer (ALBERT's one shared
    block)."""
    lora_r: int = 8
    """``lora``: rank of each low-rank adapter (peft's ``r``)."""
    lora_alpha: int = 16
    """``lora``: the adapters' scale, alpha / r (alpha / sqrt(r) with --use-rslora; peft's ``lora_alpha``)."""
    lora_dropout: float = 0.0
    """``lora``: dropout on each adapter's input (peft's default, 0). Above 0 every adapted layer keeps a dropped-out
    copy of its input for the backward pass: on minilm at 32 x 128 tokens 0.1 stored 378 MB more activations."""
    use_dora: bool = False
    """``lora``: weight-decomposed LoRA (DoRA, peft's ``use_dora``): a trained magnitude per output feature beside the
    low-rank direction; more time and memory per step."""
    use_rslora: bool = False
    """``lora``: rank-stabilised scaling alpha / sqrt(r) instead of alpha / r (peft's ``use_rslora``)."""
    lora_layers: int | None = None
    """``lora`` / ``ia3``: adapt only the top K blocks (lets the frozen lower blocks be cached)."""
    lora_target_modules: str | None = None
    """``lora`` / ``ia3``: the modules to adapt instead of the model's own choice (LoRA: every projection in the
    blocks; IA3: keys, values, feed-forward output): ``all-linear``, comma-separated names (q_proj,v_proj) or a regex."""
    num_virtual_tokens: int = 20
    """``prompt-tuning``: length of the learned soft prompt."""
    prompt_init_text: str | None = None
    """``prompt-tuning``: start the soft prompt from this text's token embeddings (peft's ``TEXT`` init: repeated or cut
    to ``--num-virtual-tokens``), e.g. a description of the task; default: random vectors."""
    layer_lr_decay: float = 0.8
    """``gradual``: each block below the top gets this factor of the one above's learning rate."""
    # machinery
    cache: bool = True
    """Compute frozen lower layers once and train the top from the cached output (where it applies)."""
    cache_dir: str | None = None
    """Folder of the frozen-layer cache's features; default ``$TUNELAB_CACHE/features`` (``~/.cache/tunelab``)."""
    cache_precision: str = "auto"
    """Precision of the frozen layers' one pass: ``auto`` (bfloat16 where the hardware multiplies it
    natively — CPUs with AVX512-BF16/AMX, CUDA GPUs from Ampere on — else float32), ``bf16`` or ``fp32``."""
    precision: str | None = None
    """Precision of training and evaluation. Unset: ``bf16`` on a CUDA GPU that multiplies it natively (Ampere
    on), else ``fp32`` (CPUs stay fp32); ``fp32``; ``bf16`` / ``fp16``, mixed precision as transformers'
    ``bf16=True`` / ``fp16=True`` (float32 weights and optimizer state, half-precision autocast compute; fp16
    needs a CUDA GPU); ``auto``: ``bf16`` where the hardware multiplies it natively, else ``fp32``."""
    gradient_checkpointing: bool = False
    """Keep only each block's input and recompute the block in the backward pass (the Trainer's gradient
    checkpointing, non-reentrant): much less activation memory, about a third more time per step."""
    base_dtype: str = "fp32"
    """Strategies that keep every pre-trained weight frozen (PEFT): hold the frozen base in ``bf16`` (half its memory,
    bfloat16 activations; trains under bf16 autocast, adapters and head stay float32) or ``fp32``; ``auto``: bf16
    where the hardware multiplies it natively (CPUs with AVX512-BF16/AMX, CUDA GPUs from Ampere on), and fp32 where
    the frozen-layer cache runs the frozen blocks instead (``bf16`` with the cache is refused)."""
    micro_batch_tokens: int = 1024
    """On one CPU process: train each batch as micro-batches of at most this many padded tokens (rows x longest
    text; each keeps at least 8 rows) and add their gradients. The same gradient as the whole batch; a step's
    stored activations are then those of its largest micro-batch, not of the batch. 0: no cap (batches are still
    cut where that saves padding; see tunelab.run.padding)."""
    recompute_attention: bool = False
    """On CPU, with attention dropout: keep query/key/value and recompute the attention matrix in the backward
    pass instead of storing it — the same results, less memory, more time (see tunelab.run.attention)."""
    out: str | None = None
    """Output folder; default ``runs/<model>-<data>-<strategy>``."""
    overwrite: bool = False
    """Replace tunelab's files of an earlier run in a non-empty --out (your own files there stay)."""
    resume: bool = False
    """Continue the run in --out from its last complete checkpoint, with the settings it started with."""
    save_steps: int = 200
    """Checkpoint every N optimizer steps (and at each epoch end)."""
    merge: bool = False
    """Adapters that can be merged (``tunelab strategies``): also write a merged full model under ``merged/``."""
    trust_remote_code: bool = False
    """Let a checkpoint run the Python code it ships (transformers' ``trust_remote_code``); remote code runs only
    with it."""
    # what adaptation costs the model, and where runs are watched
    forgetting: bool = True
    """Measure how much general ability the run lost, on a reference text that is not the training data
    (decoders: LM-loss change in nats/token; encoders: representation drift, 1 - debiased linear CKA); see
    tunelab.run.forgetting. ``--no-forgetting`` skips it."""
    screening: bool = False
    """A planned comparison's rounds before the last (tunelab.compare.planner): validated once, after training; no
    test evaluation, no forgetting and no saved model. The planner's decision reads the validation metric only, and a screening run
    on a ninth of the data spent most of its time on the rest (bitfit on 33 examples: 2 s training in 22 s)."""
    reference_text: str | None = None
    """The reference text for forgetting: a plain text file (paragraphs separated by blank lines) or a table
    (CSV, TSV, JSON lines, Parquet) of texts in a ``text`` column; default a fixed sample of BBC news (Hamlet when the
    training data is the BBC news)."""
    report_to: str = "none"
    """Experiment trackers, through the Trainer's integrations: ``none``, ``all`` or a comma list
    (``tensorboard,mlflow``; any name transformers accepts). TensorBoard logs go under ``<out>/tensorboard``;
    MLflow follows ``MLFLOW_TRACKING_URI``."""
    auto_batch_size: bool = True
    """On out-of-memory, halve the batch size (accelerate's search) and keep the effective batch. Off when several
    processes train one run (torchrun, accelerate launch): the run's notes say so."""
    extra: dict[str, Any] = field(default_factory=dict)
    """A plugin strategy's own settings, which are not fields here (a strategy's ``options`` must be fields): given
    as ``--extra KEY=VALUE`` flags, an ``extra:`` mapping in a --config YAML or from Python, read with ``config.extra.get(...)``,
    written to run_config.yaml with the rest; a comparison reuses a finished run only where those its strategy reads
    match (:meth:`extra_in_effect`)."""

    def __post_init__(self) -> None:
        """Values from Python in the form the settings keep (:func:`_plain_value`): a ``pathlib.Path`` as a str, a
        NumPy number as a Python one."""
        for f in fields(self):
            setattr(self, f.name, _plain_value(getattr(self, f.name), _kind(f)))
        for name, accepted in DTYPE_SETTINGS.items():  # torch's spelling of a value the setting takes: its short one
            value = getattr(self, name)
            if isinstance(value, str) and DTYPE_SPELLINGS.get(value) in accepted:
                setattr(self, name, DTYPE_SPELLINGS[value])

    def changed_from(self, recorded: Mapping[str, Any], num_blocks: int | None = None) -> list[tuple[str, Any, Any]]:
        """``(setting, recorded value, this value)`` for every setting that describes what a run trains (all but
        :data:`OPERATIONAL`) and differs from the run ``recorded`` (its run_config.yaml or record's ``config``); a
        task left to the data (``None``) is not a difference, nor a setting that neither run's task and strategy
        let take effect (:meth:`without_effect`), nor, given the run's model's ``num_blocks`` (its record's
        ``meta_info``), a strategy option whose two values the strategy resolves alike on that model (``--layers 2``
        and its default, None, on a model of 2 blocks or more: :meth:`~tunelab.strategies.Strategy.resolved_options`)."""
        idle = self.without_effect(self.task or recorded.get("task"))
        mine, recorded = self.to_dict(), dict(recorded)
        if isinstance(recorded.get("extra"), Mapping | None):  # only the keys this strategy or tunelab reads
            mine["extra"] = self.extra_in_effect()
            recorded["extra"] = self.replace(extra=dict(recorded.get("extra") or {})).extra_in_effect()
        return [(name, recorded.get(name), value) for name, value in mine.items()
                if name not in OPERATIONAL and name not in idle and not (name == "task" and value is None)
                and recorded.get(name) != value and not self._resolve_alike(name, recorded.get(name), num_blocks)]

    def extra_in_effect(self) -> dict[str, Any]:
        """The part of :attr:`extra` that can change what a run of this config trains: tunelab's own keys
        (:data:`EXTRA_READ`, the cache's dtype) and those its strategy declares it reads
        (:attr:`~tunelab.strategies.Strategy.extra_options`); all of it where the strategy declares none (a plugin may
        read any key) or is unknown. What a comparison's reuse and ``--resume`` compare (:meth:`changed_from`), what
        the estimate's stored measurements are keyed by (:mod:`tunelab.advice.estimate`), and what ``train`` does not
        call ignored (:func:`~tunelab.strategies.base.unused_options`)."""
        from tunelab.strategies.base import extra_keys_read

        read = extra_keys_read(self.strategy)
        extra = dict(self.extra or {})
        return extra if read is None else {k: v for k, v in extra.items() if k in read or k in EXTRA_READ}

    def changed_from_run(self, recorded: Mapping[str, Any], num_blocks: int | None = None) -> list[tuple[str, Any, Any]]:
        """:meth:`changed_from` the run ``recorded``, on the model of ``num_blocks`` blocks its record says; where it
        says none (a run interrupted before it wrote metrics.json: its run_config.yaml, checkpoint and progress.json
        do not say) and a strategy option differs, on the blocks of this config's model, counted from its config
        (:func:`tunelab.models.model_num_blocks`: the model is a compared setting, so it is the run's model)."""
        from tunelab.strategies import STRATEGIES

        changed = self.changed_from(recorded, num_blocks)
        options = STRATEGIES[self.strategy].options if self.strategy in STRATEGIES else ()
        if changed and num_blocks is None and any(name in options for name, _, _ in changed):
            from tunelab.models import model_num_blocks

            changed = self.changed_from(recorded, model_num_blocks(self.model, trust_remote_code=self.trust_remote_code))
        return changed

    def _resolve_alike(self, name: str, recorded: Any, num_blocks: int | None) -> bool:
        """Whether this config's strategy takes its option ``name`` as ``recorded`` the same as this config's value on
        a model of ``num_blocks`` blocks (unknown: no)."""
        from tunelab.strategies import STRATEGIES

        cls = STRATEGIES.get(self.strategy)
        if cls is None or not isinstance(num_blocks, int) or name not in cls.options:
            return False
        strategy = cls()
        return (strategy.resolved_options(self, num_blocks).get(name)
                == strategy.resolved_options(self.replace(**{name: recorded}), num_blocks).get(name))

    def without_effect(self, task: str | None) -> set[str]:
        """The settings that cannot change what a run of this config trains on ``task`` (``None``: not known yet),
        whatever their value: the options of other strategies that its strategy does not read (``--layers`` of a
        ``head`` run), ``document_mask`` outside a causal LM, or where the strategy puts positions before every
        input (a soft prompt, which every packed text must see: texts attend across their boundaries whatever was
        asked; :func:`tunelab.run.training.document_mask`)."""
        from tunelab.strategies import STRATEGIES, options_not_read

        strategy = STRATEGIES.get(self.strategy)
        idle = options_not_read(self.strategy) if strategy is not None else set()
        if (task is not None and task != "causal-lm") or (strategy is not None and strategy().positions_added(self)):
            idle.add("document_mask")
        return idle

    # ------------------------------------------------------------------ validation
    def epochs_for(self, n_train: int | None, processes: int = 1) -> float:
        """The epochs a run of ``n_train`` training examples takes: ``--epochs`` when given, else
        :data:`DEFAULT_EPOCHS`, raised to whole epochs of at least :data:`MIN_STEPS` optimizer steps (an optimizer
        step takes ``batch_size x gradient_accumulation_steps`` examples from each of ``processes``).

        >>> TrainConfig().epochs_for(2000), TrainConfig().epochs_for(100), TrainConfig(epochs=1).epochs_for(100)
        (3.0, 15.0, 1)
        """
        if self.epochs is not None:
            return self.epochs
        if not n_train:
            return DEFAULT_EPOCHS
        return float(max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / self.steps_per_epoch(n_train, processes))))

    def steps_per_epoch(self, n_train: int, processes: int = 1) -> int:
        """Optimizer steps in an epoch of ``n_train`` examples: each takes ``batch_size x gradient_accumulation_steps``
        examples from each of ``processes``."""
        return max(1, math.ceil(n_train / self.effective_batch_size(processes)))

    def effective_batch_size(self, processes: int = 1) -> int:
        """Examples per optimizer step: ``--batch-size`` (per process, per forward pass) x accumulation x processes."""
        return self.batch_size * self.gradient_accumulation_steps * max(1, processes)

    def batch_text(self, processes: int = 1) -> str:
        """The batch as a model card says it: what an optimizer step takes, and of what, where that is not the one
        ``--batch-size``.

        >>> TrainConfig(batch_size=8).batch_text(), TrainConfig(batch_size=8, gradient_accumulation_steps=2).batch_text(2)
        ('batch size 8', 'batch size 32 per optimizer step (8 per process x 2 accumulation steps x 2 processes)')
        """
        parts = [f"{self.gradient_accumulation_steps} accumulation steps"] if self.gradient_accumulation_steps > 1 else []
        parts += [f"{processes} processes"] if processes > 1 else []
        if not parts:
            return f"batch size {self.batch_size}"
        per = f"{self.batch_size} per process" if processes > 1 else str(self.batch_size)
        return f"batch size {self.effective_batch_size(processes)} per optimizer step ({' x '.join([per, *parts])})"

    def problems(self) -> list[str]:
        """Every problem with these options, each naming the option and what to do."""
        from tunelab.strategies import STRATEGIES, merge_problem, strategy_names
        from tunelab.strategies.base import did_you_mean

        out: list[str] = _type_problems(self)
        if out:  # the checks below compare values: wrong types first
            return out
        if self.strategy not in STRATEGIES:
            out.append(f"{setting('strategy', self.strategy, quoted=True)} is unknown{did_you_mean(self.strategy)}: use one of "
                       f"{', '.join(strategy_names())} "
                       "(a strategy from another package is known once that package is installed)")
        else:
            cls = STRATEGIES[self.strategy]
            unknown = [o for o in cls.options if o not in self.field_names()]
            if unknown:  # a plugin's: its options name the fields it reads
                out.append(f"strategy '{self.strategy}' ({cls.__module__}) has options {', '.join(unknown)}, which "
                           "are not TrainConfig fields: options name the fields a strategy reads, and a plugin's own "
                           "settings go in TrainConfig.extra (--extra KEY=VALUE, or an extra: mapping in a --config YAML)")
        for name, what in (("model", "a built-in name (`tunelab models`), a folder written by save_pretrained or a hub id"),
                           ("data", "a built-in name (`tunelab datasets`), a data file or a folder")):
            if not str(getattr(self, name)).strip():
                out.append(f"{setting(name)} is empty: pass {what}")
        if self.task not in (None, "classification", "causal-lm"):
            out.append(f"{setting('task', self.task, quoted=True)} is unknown: use classification or causal-lm")
        out.extend(self._range_problems())
        if self.resume and self.overwrite:
            out.append(f"{setting('resume', True)} continues the run in {setting('out')} and {setting('overwrite', True)} "
                       "replaces it: give one of them")
        if self.prompt_init_text is not None and not str(self.prompt_init_text).strip():
            out.append(f"{setting('prompt_init_text')} is empty: give the text the soft prompt starts from (e.g. a description of "
                       "the task), or leave it out for a random start")
        if self.keep not in KEEP_CHOICES:
            out.append(f"{setting('keep', self.keep, quoted=True)} is unknown: use {', '.join(KEEP_CHOICES)}")
        if self.loss_on not in LOSS_ON_CHOICES:
            out.append(f"{setting('loss_on', self.loss_on, quoted=True)} is unknown: use {', '.join(LOSS_ON_CHOICES)}")
        if self.merge and self.strategy in STRATEGIES and not STRATEGIES[self.strategy].can_merge:
            out.append(merge_problem(self.strategy))
        if self.precision not in (None, "auto", *DTYPE_SETTINGS["precision"]):
            out.append(f"{setting('precision', self.precision, quoted=True)} is unknown: use auto, bf16, fp16 or fp32")
        elif self.precision == "fp16":
            import torch

            if not torch.cuda.is_available():
                out.append(f"{setting('precision', 'fp16')} needs a CUDA GPU (float16 autocast is not offered on CPU): use "
                           "bf16 or fp32")
        out.extend(self._memory_problems(STRATEGIES))
        if self.cache_precision not in ("auto", *DTYPE_SETTINGS["cache_precision"]):
            out.append(f"{setting('cache_precision', self.cache_precision, quoted=True)} is unknown: use auto, bf16 or fp32")
        if self.report_to not in ("", "none"):
            from tunelab.trackers import parse_report_to

            try:
                parse_report_to(self.report_to)
            except ConfigError as exc:
                out.append(str(exc))
        if self.cache_dir is not None and (problem := folder_problem(self.cache_dir)):
            out.append(f"{setting('cache_dir', self.cache_dir)}: {problem}; choose another {setting('cache_dir')}")
        if self.reference_text is not None:
            from tunelab.data.reference import min_texts, reference_file_paragraphs
            from tunelab.errors import DataError

            try:
                reference_file_paragraphs(self.reference_text, min_texts(self.model, trust_remote_code=self.trust_remote_code))
            except DataError as exc:
                out.append(str(exc))
        if self.lora_target_modules is not None:
            from tunelab.models.targets import spec_problem

            problem = spec_problem(str(self.lora_target_modules))
            if problem:
                out.append(problem)
        return out

    def _range_problems(self) -> list[str]:
        """Each numeric option outside its range (:data:`RANGES`): what it must be, what was given, and what to do
        (an example, and what leaving it out gives)."""
        from dataclasses import MISSING

        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        out = []
        for name, (fits, rule, example, unset) in RANGES.items():
            value = getattr(self, name)
            if value is None or fits(value):
                continue
            default = unset if defaults.get(name) is None else f"its default, {_number(defaults[name])}"
            out.append(out_of_range(setting(name), rule, value, example, default))
        return out

    def _memory_problems(self, strategies) -> list[str]:
        """Problems of --gradient-checkpointing and --base-dtype (what the strategy and hardware allow)."""
        from tunelab.strategies import strategy_names

        out: list[str] = []
        strategy = strategies[self.strategy]() if self.strategy in strategies else None
        if self.gradient_checkpointing and self.recompute_attention:
            out.append(f"{setting('recompute_attention', True)} is part of {setting('gradient_checkpointing', True)} (which "
                       "recomputes whole blocks): drop one")
        if self.gradient_checkpointing and self.cache and strategy is not None and strategy.freezes_prefix(self):
            out.append(f"{setting('gradient_checkpointing', True)} does not combine with the frozen-layer cache that "
                       f"'{self.strategy}' uses (its frozen blocks run once, storing no activations): add "
                       f"{setting('cache', False)}, or drop {setting('gradient_checkpointing', True)}")
        if self.base_dtype not in ("auto", *DTYPE_SETTINGS["base_dtype"]):
            out.append(f"{setting('base_dtype', self.base_dtype, quoted=True)} is unknown: use fp32, bf16 or auto")
        elif self.base_dtype == "bf16":
            bf16 = setting("base_dtype", "bf16")
            if strategy is not None and not strategy.frozen_base:
                out.append(f"{bf16} applies to strategies that keep every pre-trained weight frozen "
                           f"({', '.join(n for n in strategy_names() if strategies[n].frozen_base)}), not to '{self.strategy}' "
                           f"(its pre-trained weights train in float32): drop {setting('base_dtype')} or use fp32")
            if self.cache and strategy is not None and strategy.freezes_prefix(self):
                out.append(f"{bf16} does not combine with the frozen-layer cache that '{self.strategy}' uses here (the "
                           f"cache already runs the frozen blocks once, in bfloat16 where native: {setting('cache_precision')}): "
                           f"add {setting('cache', False)}, or drop {setting('base_dtype')}")
            if self.precision == "fp32":
                out.append(f"{bf16} computes in bfloat16 (bf16 autocast): drop {setting('precision', 'fp32')} or use "
                           f"{setting('precision', 'bf16')}")
            from tunelab.hardware import native_bf16

            if not native_bf16():
                out.append(f"{bf16}: this machine does not multiply bfloat16 natively (no AVX512-BF16/AMX CPU, "
                           "no CUDA GPU from Ampere on), so it would be slower than float32: use fp32 or auto")
        return out

    def validate(self) -> TrainConfig:
        """This config, once every setting is checked (:meth:`problems`); else :class:`ConfigError` naming each."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, as ``run_config.yaml`` holds them."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of the settings."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "config") -> TrainConfig:
        """A config from settings by name (``-`` or ``_``), each converted to its type; an unknown name or a value
        of the wrong type is one :class:`ConfigError` naming ``where`` they came from."""
        known = set(cls.field_names())
        unknown = sorted(k for k in values if k.replace("-", "_") not in known)
        if unknown:  # a Python caller is shown help(TrainConfig), not the command's --help (README: "help(TrainConfig)
            # lists every setting"), and a near miss (epoch) its setting, as compare's unknown keyword is
            import difflib

            close = difflib.get_close_matches(unknown[0].replace("-", "_"), sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close and len(unknown) == 1 else ""
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}{hint}; see "
                              + ("`tunelab train --help`" if as_flags() else "help(TrainConfig)"))
        clean = {k.replace("-", "_"): v for k, v in values.items()}
        return _coerce(cls(**clean), where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """A config from a YAML file of settings (``--config``; a run's ``run_config.yaml``)."""
        return cls.from_dict(load_yaml(path), where=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (this config is left as it is); an unknown setting is a :class:`ConfigError`."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(f"TrainConfig has no setting {', '.join(unknown)}; the settings are "
                              f"{', '.join(self.field_names())}")
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path, comment: str | None = None) -> None:
        """Write the settings as YAML to ``path`` (what :meth:`from_yaml` and ``--config`` read), after ``comment`` as a
        YAML comment line when given."""
        from tunelab.io import atomic_write_text

        header = f"# {comment}\n" if comment else ""
        atomic_write_text(path, header + yaml.safe_dump(self.to_dict(), sort_keys=False))


@functools.cache
def field_docs(cls: type = TrainConfig) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field), one line each: what each
    ``tunelab train`` flag's help and ``help(TrainConfig)`` say of a setting."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (a frozen install): the settings go without their words
        return {}
    body = tree.body[0].body
    return {node.target.id: " ".join(str(nxt.value.value).split()) for node, nxt in zip(body, body[1:], strict=False)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)}


def _settings_doc(cls: type) -> str:
    """The settings of ``cls`` as ``help()`` shows them: each one's name, type, default and docstring (attribute
    docstrings are in the source only: ``help(TrainConfig)`` and a notebook's ``TrainConfig?`` showed none)."""
    docs, lines = field_docs(cls), ["", "Settings (each also a ``tunelab train`` flag: ``max_length`` is ``--max-length``):", ""]
    for f in fields(cls):
        default = repr(f.default) if f.default is not dataclasses.MISSING else f"{f.default_factory.__name__}()"  # type: ignore[misc]
        lines.append(f"{f.name}: {f.type} = {default}")
        lines += textwrap.wrap(docs.get(f.name, ""), 100, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


TrainConfig.__doc__ = (TrainConfig.__doc__ or "") + "\n" + _settings_doc(TrainConfig)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise ConfigError(f"config file {path} {what}: pass an existing YAML file to --config")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML: fix it or pass options as flags") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return values


def _yaml_kind(value: Any) -> str:
    """What YAML made of a value, in its words: ``list`` for a sequence, ``mapping`` for a dict."""
    return "list" if isinstance(value, list | tuple) else "mapping" if isinstance(value, Mapping) else type(value).__name__


_TYPES = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


def _kind(f: dataclasses.Field) -> str:
    """A setting's type without ``| None`` (its annotation is a string: ``"int | None"`` -> ``"int"``)."""
    return str(f.type).split(" ")[0]


def _plain_value(value: Any, kind: str) -> Any:
    """``value`` of a setting of type ``kind`` as the settings keep it: a path (``pathlib.Path``, any
    ``os.PathLike``) where a str goes as that str, a NumPy scalar (``np.bool_``, ``np.int64``, ``np.str_``: a value from
    an array or a DataFrame row of a sweep; ``np.bool_`` was refused as "a bool", and ``run_config.yaml`` could not
    write any of them) as the Python value it holds, another number where a number goes as the Python number;
    anything else as it is, for :func:`_type_problems` to judge."""
    if kind == "str" and isinstance(value, os.PathLike):
        return os.fspath(value)
    numpy = sys.modules.get("numpy")  # not imported: no value can be one of its scalars
    if numpy is not None and isinstance(value, numpy.generic) and kind in _TYPES:
        return value.item()
    if kind in ("int", "float") and isinstance(value, numbers.Real) and not isinstance(value, bool | int | float):
        if isinstance(value, numbers.Integral):
            return int(value)
        return float(value) if kind == "float" else value
    return value


def _type_problems(config: TrainConfig) -> list[str]:
    """Fields of the wrong type (a config built in Python is not coerced as YAML and flags are, :func:`_coerce`):
    ``max_length="32"`` would fail later in a comparison, ``layers=1.5`` inside a strategy."""
    out = []
    for f in fields(config):
        value, kind = getattr(config, f.name), _kind(f)
        if kind not in _TYPES:
            continue
        if value is None:
            if "None" not in str(f.type):  # model=None failed deep inside as "expected str ..., not NoneType"
                out.append(f"option {f.name} is None; give {'an' if kind == 'int' else 'a'} {kind}, or leave it out "
                           f"for its default, {f.default!r}")
            continue
        if not isinstance(value, _TYPES[kind]) or (kind != "bool" and isinstance(value, bool)):
            from tunelab.data.readers import IN_MEMORY_FORMS

            hint = (f"; data in memory goes to train(config, data=...): a TaskData, {IN_MEMORY_FORMS}"
                    if f.name == "data" else "")
            if f.name == "model" and hasattr(value, "save_pretrained"):  # a loaded model or tokenizer
                hint = ("; tunelab loads the model (and its tokenizer) from a name or a folder: save a loaded one with "
                        "model.save_pretrained(folder) and tokenizer.save_pretrained(folder), then give model=folder")
            shown = f"{value!r:.60} (a {type(value).__name__})" if isinstance(value, str | int | float) else \
                f"a {type(value).__name__}"
            out.append(f"option {f.name} is {shown}; give {'an' if kind == 'int' else 'a'} {kind}{hint}")
    return out


def _coerce(config: TrainConfig, where: str) -> TrainConfig:
    """Check YAML values against the field types (YAML may give "3e-4" as a string, 3 as int for a float)."""
    problems = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "extra":  # a plugin's settings: a mapping (``extra: {rank: 64}``), read with .get
            if value is not None and not isinstance(value, Mapping):
                problems.append(f"{where}: option extra has value {value!r:.60}, expected a mapping of KEY: VALUE "
                                "(e.g. extra: {rank: 64})")
            continue
        if value is None:
            continue
        kind = str(f.type)
        if kind.startswith("str") and not isinstance(value, str):  # YAML reads ``out: 2024`` as a number
            problems.append(f"{where}: option {f.name} has value {value!r:.60}, expected str (quote it: {f.name}: "
                            f"\"{value}\")" if isinstance(value, int | float) else
                            f"{where}: option {f.name} is a {_yaml_kind(value)}; give a str")
            continue
        try:
            if kind.startswith("float"):
                setattr(config, f.name, float(value))
            elif kind.startswith("int") and not isinstance(value, bool):
                if float(value) != int(float(value)):
                    raise ValueError
                setattr(config, f.name, int(float(value)))
            elif kind.startswith("bool") and not isinstance(value, bool):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{where}: option {f.name} has value {value!r}, expected {kind.split(' ')[0]}")
    if problems:
        raise ConfigError(problems)
    return config
