"""Artifacts that load without tunelab: a ``save_pretrained`` folder or a peft adapter folder,
written to a temporary folder beside the target and renamed into place, with a model card.

>>> from tunelab.run.artifacts import load_artifact, predict
>>> model, tokenizer, info = load_artifact("runs/minilm-rotten-tomatoes-lora")  # doctest: +SKIP
>>> predict("runs/minilm-rotten-tomatoes-lora", "a gripping, beautiful film")[0]["label"]  # doctest: +SKIP
'fresh'
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tunelab.errors import ConfigError, TunelabError, first_line, setting
from tunelab.io import LOCK_NAME, TMP, atomic_dir, check_folder, make_folder, remove_leftovers, remove_tree
from tunelab.run.tracking import RUN_STATE, TENSORBOARD_DIR

log = logging.getLogger("tunelab")

MODEL_DIR = "model"


def check_out_dir(out: Path, *, overwrite: bool, resume: bool, data: Any = None) -> None:
    """Raise if ``out`` cannot be used as asked; writes nothing (run it before any validation that may fail). ``data``:
    the run's data, to say when the folder holds a run of other data (:func:`_other_data`) rather than offer to resume."""
    out = Path(out)
    check_folder(out)
    if out.is_dir() and not (overwrite or resume):
        if any(not p.name.startswith(".tmp-") and p.name != LOCK_NAME for p in out.iterdir()):
            other = _other_data(out, data)
            if other:  # two files of one name in two folders share a default folder: not this run to continue
                raise TunelabError(
                    f"output folder {out} holds a run of other data ({other}): choose another {setting('out')}, or "
                    f"pass {setting('overwrite', True)} to replace that run")
            raise TunelabError(
                f"output folder {out} is not empty: pass {setting('overwrite', True)} to replace tunelab's files "
                f"there, {setting('resume', True)} to continue the run, or choose another {setting('out')}"
            )
    if out.is_dir() and overwrite and not resume:
        foreign = foreign_files(out)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise TunelabError(
                f"{setting('overwrite', True)} would delete {foreign[0]}{more}, which no tunelab run wrote: move "
                f"{'them' if more else 'it'} out of the output folder, or choose another {setting('out')}"
            )


def _other_data(out: Path, data: Any) -> str | None:
    """The data the run in ``out`` trained on where it is not ``data``: as its ``model/tunelab.json`` names it (a file
    by its absolute path, :func:`data_reference`), or for a run not yet finished its ``run_config.yaml`` where that
    is a built-in or an absolute path (a relative one was relative to where that run started). ``None`` where it is
    ``data``, or where it is not known."""
    from tunelab.config import saved_settings
    from tunelab.data import BUILTIN_DATASETS
    from tunelab.io import read_json

    if data is None:
        return None
    try:
        recorded = read_json(out / MODEL_DIR / "tunelab.json")["split"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = (saved_settings(out / "run_config.yaml") or {}).get("data")
        if recorded is not None and not (str(recorded) in BUILTIN_DATASETS or Path(str(recorded)).expanduser().is_absolute()):
            recorded = None  # relative to the folder that run started in: not comparable from here
    if recorded is None or data_reference(str(recorded)) in (str(data), data_reference(str(data))):
        return None
    return str(recorded)


REPLACED = ("metrics.json", MODEL_DIR, "checkpoints", "run_config.yaml", "outputs", TENSORBOARD_DIR, RUN_STATE)
"""What ``--overwrite`` replaces in a run's folder: the files and folders a run writes (its TensorBoard events too:
kept, the replaced run's curves were drawn beside the new one's; the name of its MLflow run, which the new run does
not continue). The record first, each folder at once (:func:`tunelab.io.remove_tree`): a kill half-way left the
replaced run's ``metrics.json`` ("finished") beside half its model."""


def foreign_files(out: Path) -> list[Path]:
    """What ``--overwrite`` would delete in ``out`` that no tunelab run wrote: a ``model/`` folder without tunelab's
    ``tunelab.json``, and anything in ``checkpoints/`` other than the Trainer's ``checkpoint-*`` folders, in
    ``outputs/`` other than tunelab's ``*.npz`` files or in ``tensorboard/`` other than event files."""
    out = Path(out)
    model, checkpoints, outputs = out / MODEL_DIR, out / "checkpoints", out / "outputs"
    events = out / TENSORBOARD_DIR
    found: list[Path] = []
    if model.is_dir() and not (model / "tunelab.json").is_file() and any(model.iterdir()):
        found += sorted(p for p in model.rglob("*") if p.is_file())
    if checkpoints.is_dir():
        found += sorted(p for p in checkpoints.iterdir() if not p.name.startswith(("checkpoint-", ".tmp-")))
    if outputs.is_dir():
        found += sorted(p for p in outputs.iterdir() if not (p.is_file() and p.suffix == ".npz"))
    if events.is_dir():
        found += sorted(p for p in events.rglob("*") if p.is_file() and not p.name.startswith("events.out.tfevents."))
    return found


def prepare_out_dir(out: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to write into a non-empty folder unless asked; never delete files tunelab did not write."""
    out = Path(out)
    check_out_dir(out, overwrite=overwrite, resume=resume)
    if out.is_dir():
        remove_leftovers(out, TMP, below=False)
        if overwrite and not resume:
            for name in REPLACED:
                remove_tree(out / name)
    make_folder(out)


def _dir_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def write_artifact(run, out: Path, *, metrics: dict[str, Any], merge: bool = False,
                   state_dict: dict[str, Any] | None = None, base_rounded: bool = False,
                   as_loaded: dict[str, float] | None = None) -> dict[str, Any]:
    """Save the adapted model (with tokenizer, label names and a model card) under ``out/model``;
    ``as_loaded``: a causal LM's validation metrics before training (``train_info.as_loaded_validation``), for the card;
    ``state_dict``: the whole weights gathered from processes that each held a shard (FSDP, ZeRO-3);
    ``base_rounded``: the run held its frozen base in a lower precision than float32 (``--base-dtype bf16``,
    :func:`tunelab.run.training.base_dtype`), so the model in memory has bfloat16-rounded base weights (upcast since),
    while the saved adapter loads onto the float32 checkpoint: a merge is then made from the saved adapter."""
    target = Path(out) / MODEL_DIR
    strategy, config, data = run.strategy, run.config, run.data
    from tunelab.strategies import trainable_parameters

    # counted before saving: --merge folds the adapter into the weights in place, and the card would count none of it
    counts = trainable_parameters(run.model)
    # a bf16-held run merges from the saved adapter on its float32 base, below, not in memory (its rounded weights)
    merge_later = merge and base_rounded
    with atomic_dir(target) as tmp:
        # a strategy written before weight sharding was supported takes no state_dict: it is asked only then
        strategy.save(run.model, tmp, merge=merge and not merge_later,
                      **({"state_dict": state_dict} if state_dict is not None else {}))
        fmt = saved_format(strategy, tmp)
        tokenizer = run.tokenizer
        if plain_chat(run):  # the format it learnt, as a template: apply_chat_template prompts it so
            from tunelab.data.chat import PLAIN_CHAT_TEMPLATE

            tokenizer = copy.copy(tokenizer)  # the run's own stays as it trained
            tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
        merged = (tmp / "merged").is_dir()  # a merged model is a complete folder of its own
        cut = run.max_length, config.keep if data.task == "classification" else None
        with _cut_as_trained(tokenizer, *cut):
            tokenizer.save_pretrained(tmp)
            if merged:
                tokenizer.save_pretrained(tmp / "merged")
        info = {
            "strategy": strategy.name,
            "format": fmt,
            "task": data.task,
            "label_names": data.label_names,
            "base_model": base_reference(config.model),
            "max_length": run.max_length,
            "keep": config.keep,  # which part of a longer text the classifier read
            "text_pair": data.text_pairs,  # inputs are pairs: predict splits each at a tab
            # trained on conversations: predict asks as a user's turn, through the same chat template
            "chat": (chat := data.conversations),
            # which tokens of a conversation it learnt, evaluate scores the same ones (plain text: every token)
            "loss_on": config.loss_on if chat else "all",
            # each packed text attended only to itself (training.document_mask): evaluate packs and scores alike
            "document_mask": run.document_mask,
            # how the data was read and split: `tunelab evaluate --split test` makes the same test split of it
            "split": {"seed": config.seed, "validation_fraction": config.validation_fraction,
                      "test_fraction": config.test_fraction, "text_column": config.text_column,
                      "label_column": config.label_column, "max_eval_samples": config.max_eval_samples,
                      "data": data_reference(config.data),
                      # its rows as split: evaluate refuses the data, named by the record, once it holds other rows
                      "fingerprint": data.split_fingerprint or None},
        }
        (tmp / "tunelab.json").write_text(json.dumps(info, indent=2) + "\n")
        if merge_later:  # from the adapter's folder as saved, tokenizer and tunelab.json included
            _merge_onto_saved_base(strategy, tmp, run.model)
            merged = (tmp / "merged").is_dir()
            if merged:
                with _cut_as_trained(tokenizer, *cut):
                    tokenizer.save_pretrained(tmp / "merged")
        if merged:  # a plain transformers model: `tunelab predict model/merged` reads it too
            (tmp / "merged" / "tunelab.json").write_text(json.dumps({**info, "format": "transformers"}, indent=2) + "\n")
        (tmp / "README.md").write_text(model_card(run, metrics, merged=merged, counts=counts, fmt=fmt,
                                                    as_loaded=as_loaded, base_rounded=base_rounded))
        if merged:  # its own card: the merged folder is pushed or copied on its own
            (tmp / "merged" / "README.md").write_text(model_card(run, metrics, counts=counts, fmt="transformers",
                                                                          as_loaded=as_loaded, base_rounded=base_rounded))
    return {"path": str(target), "format": fmt, "size_mb": round(_dir_size_mb(target), 2)}


def saved_format(strategy, folder: Path) -> str:
    """The format of what ``strategy.save`` wrote in ``folder``: ``"peft"`` where it is a peft adapter (peft's
    ``adapter_config.json``), else ``"transformers"``. A strategy whose :attr:`~tunelab.strategies.Strategy.artifact_format`
    says otherwise (a plugin that wraps the model with peft and keeps the default) is told once; the folder is recorded
    as what it is, so that ``predict``, ``evaluate`` and the model card load it as such."""
    from peft.utils import CONFIG_NAME

    fmt = "peft" if (folder / CONFIG_NAME).is_file() else "transformers"
    if fmt != strategy.artifact_format:
        log.warning("strategy '%s' has artifact_format = %r but saved a %s folder: recorded as %s (set artifact_format "
                    "= %r in its class)", strategy.name, strategy.artifact_format, fmt, fmt, fmt)
    return fmt


def _merge_onto_saved_base(strategy, folder: Path, trained) -> None:
    """Merge from the adapter saved in ``folder`` on its float32 base, as ``predict`` and peft load it: ``merged/``
    then computes what the adapter does. (Merged in memory, a bf16-held run folded its adapters into bfloat16-rounded
    base weights: merged/ and the adapter gave different logits.) ``trained``, the run's model, is spent: its weights
    are dropped (to the meta device) before the float32 base loads, so that two copies of the base are never held."""
    import tempfile

    trained.to("meta")  # the adapter is saved; only its config is read from here on (the model card)
    model, _, _ = load_artifact(folder)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        strategy.save(model, Path(scratch), merge=True)
        if (Path(scratch) / "merged").is_dir():  # else the merge failed (said so): no merged model
            shutil.move(str(Path(scratch) / "merged"), folder / "merged")


@contextlib.contextmanager
def _cut_as_trained(tokenizer, max_length: int, keep: str | None):
    """The tokenizer set to cut a text where training did, while it is saved: ``model_max_length`` the run's max
    length and, for ``--keep end``, ``truncation_side="left"`` (``keep``: ``None`` for a causal LM, whose blocks are
    cut otherwise). A classifier loaded with plain transformers then reads what it was trained on when called with
    ``truncation=True``, not up to the base's 512 tokens. ``start+end`` has no tokenizer setting (the card says so)."""
    if keep is None:
        yield
        return
    init = tokenizer.init_kwargs  # what save_pretrained writes to tokenizer_config.json (model_max_length aside)
    saved = tokenizer.model_max_length, tokenizer.truncation_side, dict(init)
    tokenizer.model_max_length = max_length
    tokenizer.truncation_side = init["truncation_side"] = "left" if keep == "end" else "right"
    try:
        yield
    finally:
        tokenizer.model_max_length, tokenizer.truncation_side = saved[:2]
        init.clear()
        init.update(saved[2])


def plain_chat(run) -> bool:
    """Trained on conversations through a tokenizer without a chat template: on
    :func:`tunelab.data.chat.render`'s ``role: content`` lines, which the artifact's tokenizer is saved with as its
    template (:data:`tunelab.data.chat.PLAIN_CHAT_TEMPLATE`)."""
    return run.data.conversations and not getattr(run.tokenizer, "chat_template", None)


def data_reference(spec: str) -> str:
    """How an artifact names what it came from: a local file or folder by its absolute path (a relative one would
    mean another from another working directory), a built-in's name or a hub id as given."""
    path = Path(str(spec)).expanduser()
    return str(path.resolve()) if str(spec).strip() and path.exists() else str(spec)


def base_reference(name_or_path: str) -> str:
    """How an artifact names its base model (:func:`data_reference`; a built-in by its name, as tunelab loads it)."""
    from tunelab.models import BUILTIN_MODELS

    return name_or_path if name_or_path in BUILTIN_MODELS else data_reference(name_or_path)


def model_card(run, metrics: dict[str, Any], *, merged: bool = False, counts: tuple[int, int] | None = None,
               fmt: str | None = None, as_loaded: dict[str, float] | None = None, base_rounded: bool = False) -> str:
    """The model card (``model/README.md``); ``counts``: the trained model's (trainable, total) parameters, counted
    before a merge changed it; ``fmt``: the format of the folder it describes (``"transformers"`` for ``merged/``),
    by default the strategy's; ``as_loaded``: a causal LM's validation metrics before training, its perplexity shown
    beside the trained one; ``base_rounded``: the run held its base in bfloat16 (:func:`write_artifact`), so its
    metrics are the rounded base's, which the card says."""
    fmt = fmt or run.strategy.artifact_format
    from tunelab.models import soft_prompt_length
    from tunelab.models.loading import generic_classifiers, is_decoder, pair_separator, resolve_model
    c, d = run.config, run.data
    from tunelab.run.ranks import world_size
    from tunelab.run.resilience import repeat_command
    from tunelab.strategies import trainable_parameters

    trainable, total = counts or trainable_parameters(run.model)
    added = [p for p in (run.strategy.adds(c), "a new classification head" if d.task == "classification" else None) if p]
    lines = []
    for split, values in metrics.items():
        lines.append(f"| {split} | " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(values.items())) + " |")
        if split == "validation" and (as_loaded or {}).get("perplexity") is not None:  # what training had to beat
            lines.append(f"| validation, as loaded (before training) | perplexity {as_loaded['perplexity']:.4f} |")
    rows = "\n".join(lines)
    if base_rounded:  # the metrics are the run's, on its bfloat16-held base; the folder loads onto the float32 base
        rows += (f"\n\nThese metrics were measured as the run trained, with its frozen base held in bfloat16 "
                 f"(`--base-dtype {c.base_dtype}`). This folder loads onto the base in float32, which scores somewhat "
                 "otherwise: `tunelab evaluate` on it measures what it gives.")
    has_head = bool(run.strategy.head_parameter_ids(run.layout))
    head_text = f" (the new task head: {run.strategy.head_lr(c):g})" if has_head else ""
    keep_text = (f" (of a longer text, its {c.keep.replace('+', ' and ')} kept: tokenize it the same way, "
                 "`tunelab.run.encoding.encode`)" if c.keep != "start" and d.task == "classification" else "")
    cut_text = ""
    if d.task == "classification":
        # a peft folder given by name to pipeline loads the base without the label names (LABEL_0, LABEL_1)
        piped = ("model=model, tokenizer=THIS_FOLDER" if fmt == "peft" else "model=THIS_FOLDER")
        cut_text = (f"\n\nIt read at most {run.max_length} tokens of a text: the saved tokenizer cuts there when called with "
                    f"`truncation=True` (`pipeline(\"text-classification\", {piped}, truncation=True)`"
                    + (", with the model loaded as above" if fmt == "peft" else "") + "); "
                    "without it, a longer text is read whole and the predictions differ from tunelab's.")
        if c.keep == "start+end":
            cut_text += (" It kept each long text's start and end, which no tokenizer setting does: use `tunelab predict` "
                         "or `tunelab.run.encoding.encode`.")
        if d.text_pairs and (separator := pair_separator(run.tokenizer)) is not None:
            cut_text += (f"\n\nIt read each pair with {separator!r} between its two texts, where the base tokenizer put "
                         "nothing: the tokenizer saved here does the same (`tokenizer(first, second)`).")
    from tunelab.models import BUILTIN_MODELS

    base_path = resolve_model(c.model)  # a built-in's name is tunelab's: transformers loads its folder
    what = "tunelab's built-in, the transformers folder" if c.model in BUILTIN_MODELS else "the folder"
    base_text = f"`{c.model}`" + (f" ({what} `{base_path}`)" if base_path != c.model else "")
    id2label, label2id = dict(enumerate(d.label_names)), {name: i for i, name in enumerate(d.label_names)}
    # a base whose config states bfloat16 / float16 (most decoders on the hub) loads in that dtype by default: the
    # adapter is loaded onto the base in float32 (a --base-dtype bf16 run trained on it rounded; the card says so)
    as_trained = ', dtype="float32"' if stated_dtype(base_path) not in (None, "float32") else ""
    if fmt == "peft":
        labels_why = ("without them the base gets a 2-class head and the adapter's does not fit" if len(d.label_names) != 2
                      else "without them the base's head has no label names")
        load = (
            "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForSequenceClassification\n"
            f"BASE = {base_path!r}  # the base model, as adapter_config.json records it\n"
            f"base = AutoModelForSequenceClassification.from_pretrained(BASE, id2label={id2label}, label2id={label2id}, "
            f"pad_token_id={run.layout.model.config.pad_token_id}, ignore_mismatched_sizes=True{as_trained})\n"
            "model = PeftModel.from_pretrained(base, THIS_FOLDER)\n```\n\n"
            f"or in one call, the base read from `adapter_config.json` (the labels must be given: {labels_why}):\n\n"
            "```python\nfrom peft import AutoPeftModelForSequenceClassification\n"
            f"model = AutoPeftModelForSequenceClassification.from_pretrained(THIS_FOLDER, "
            f"id2label={id2label}, label2id={label2id}, pad_token_id={run.layout.model.config.pad_token_id}, "
            # a base that is itself a classifier for another number of classes: its head is replaced by the adapter's
            f"ignore_mismatched_sizes=True{as_trained})\n```"
            if d.task == "classification"
            else "```python\nfrom peft import AutoPeftModelForCausalLM\n"
            f"model = AutoPeftModelForCausalLM.from_pretrained(THIS_FOLDER{as_trained})\n"
            + ("from transformers import AutoTokenizer\ntokenizer = AutoTokenizer.from_pretrained(THIS_FOLDER)\n"
               + ("# trained on conversations: ask as a user's turn, through the chat template (as tunelab predict)\n"
                  "prompt = tokenizer.apply_chat_template([{\"role\": \"user\", \"content\": \"Hello\"}], tokenize=False, "
                  "add_generation_prompt=True)\n" if d.conversations else "prompt = \"Once upon a time\"\n")
               + "# without the KV cache: under it peft (0.21) prepends the soft prompt again at every step (wrong text)\n"
               "inputs = tokenizer(prompt, return_tensors=\"pt\", add_special_tokens=False, "
               "return_token_type_ids=False)\nout = model.generate(**inputs, max_new_tokens=40, use_cache=False)\n"
               if soft_prompt_length(run.model) else "") + "```"
        )
    else:
        cls = "AutoModelForSequenceClassification" if d.task == "classification" else "AutoModelForCausalLM"
        load = f"```python\nfrom transformers import {cls}\nmodel = {cls}.from_pretrained(THIS_FOLDER)\n```"
    merged_cls = "AutoModelForSequenceClassification" if d.task == "classification" else "AutoModelForCausalLM"
    merged_text = ("\n`merged/` in this folder holds the adapter merged into the base weights (`--merge`): a plain "
                   f"transformers model, no peft needed:\n\n```python\nfrom transformers import {merged_cls}\n"
                   f"model = {merged_cls}.from_pretrained(THIS_FOLDER + \"/merged\")\n```\n" if merged else "")
    kind = getattr(run.model.config, "model_type", "")
    if d.task == "classification" and kind in generic_classifiers():  # transformers has no class of its own for it
        load = (f"transformers has no sequence-classification class for `{kind}`: tunelab used the one transformers "
                "defines for Llama and Qwen2 (`GenericForSequenceClassification`). Register it before loading:\n\n"
                f"```python\nfrom tunelab.models.loading import register_generic_classifier\n"
                f"register_generic_classifier({kind!r})\n```\n\n" + load)
    if d.task == "classification" and run.strategy.positions_added(c) and is_decoder(run.model.config):
        load += ("\n\nThis classifier reads each text's last token. Called with the soft prompt's embeddings, transformers "
                 "cannot tell padding from text and reads the last position, a padding one for every text shorter than "
                 "the longest in its batch: classify one text at a time, or with `tunelab predict`, which finds each "
                 "text's last token (in your own code, `tunelab.models.read_last_token_from_mask(model)` does the "
                 "same).")
    if plain_chat(run):
        load += ("\n\nIts tokenizer had no chat template: it learnt conversations as `role: content` lines, one per "
                 "message (`user: ...`, then `assistant: ...`), and is prompted with them ending in `assistant:`. The "
                 "tokenizer saved here has that format as its chat template: "
                 "`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`.")
    return f"""---
{card_metadata(run, fmt)}---
# {c.model} adapted to {d.source or c.data} with `{run.strategy.name}`

- Strategy: **{run.strategy.name}** ({run.strategy.kind.label}) — {run.strategy.summary}
- What trains: {run.strategy.describe(c, d.task, num_blocks=run.layout.num_blocks)}
- Added to the architecture: {" and ".join(added) or "nothing"}
- Base model: {base_text}; task: {d.task}; labels: {", ".join(d.label_names) or "-"}
- Data: {d.source or c.data} ({len(d.train)} train / {len(d.validation)} validation / {len(d.test)} test), fingerprint `{d.fingerprint[:12]}`
- Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f} %)
- Epochs {c.epochs_for(len(run.tokenized['train']), world_size()):g}, learning rate {c.lr if c.lr is not None else run.strategy.default_lr:g}{head_text}, {c.batch_text(world_size())}, max length {run.max_length}{keep_text}, seed {c.seed}

| split | metrics |
|---|---|
{rows}

## Load it

{load}{cut_text}
{merged_text}
Made with tunelab; `run_config.yaml` in the run's folder repeats the run (`{repeat_command(Path(c.out or 'OUT'))}`, run from the folder the run was started in: the paths it holds are relative to it){_launch_text(c)}.
"""


def card_metadata(run, fmt: str | None = None) -> str:
    """The card's YAML metadata, as the Hub reads it (huggingface_hub writes it): ``library_name``, ``pipeline_tag``
    (the Hub cannot infer it for a peft adapter), ``base_model`` where the base has a Hub id (a built-in's upstream,
    or a hub id the run loaded; the Hub refuses a local path there) and the tags."""
    from huggingface_hub import ModelCardData

    from tunelab.models import BUILTIN_MODELS

    model = run.config.model
    if model in BUILTIN_MODELS:
        base = BUILTIN_MODELS[model].hub_id
    else:
        base = None if Path(str(model)).expanduser().exists() else str(model)
    return ModelCardData(
        library_name="peft" if (fmt or run.strategy.artifact_format) == "peft" else "transformers",
        base_model=base,
        pipeline_tag="text-classification" if run.data.task == "classification" else "text-generation",
        tags=["tunelab", run.strategy.name],
    ).to_yaml() + "\n"


def _launch_text(config) -> str:
    """What the card adds for a run trained over several processes: the batch it keeps only over as many."""
    from tunelab.run.ranks import world_size

    if world_size() <= 1:
        return ""
    return (f". It trained over {world_size()} processes: `--batch-size` is per process, so one process would take "
            f"{config.effective_batch_size(1)} examples per optimizer step instead of {config.effective_batch_size(world_size())}")


# ----------------------------------------------------------------------------- loading


def find_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise TunelabError(f"{path} does not exist: pass a folder written by `tunelab train --out`")
    if (path / MODEL_DIR / "tunelab.json").exists():
        return path / MODEL_DIR
    if (path / "tunelab.json").exists():
        return path
    checkpoints = sorted((path / "checkpoints").glob("checkpoint-*"), key=lambda c: c.stat().st_mtime)
    if (path / "run_config.yaml").exists():  # a run that stopped before it wrote its model
        from tunelab.run.resilience import checkpoint_launch, resume_command

        last = f" (last checkpoint: {checkpoints[-1].name})" if checkpoints else ""
        launch = checkpoint_launch(checkpoints[-1]) if checkpoints else None  # as it ran: under its launcher, if any
        raise TunelabError(f"the run in {path} did not finish, so it has no model yet{last}: finish it with "
                           f"`{resume_command(path, launch)}`")
    models = sorted(p.parent.parent.name for p in (path / "runs").glob(f"*/{MODEL_DIR}/tunelab.json"))
    if models:  # a comparison's folder: its models are its runs'
        try:
            chosen = json.loads((path / "recommendation.json").read_text()).get("strategy")
        except (OSError, ValueError, AttributeError):
            chosen = None
        mine = [m for m in models if chosen and (m == chosen or m.startswith(f"{chosen}-"))]
        named = mine or models
        raise TunelabError(f"{path} is a comparison's folder: each run's model is under {path / 'runs'}/<run>, e.g. "
                           f"{path / 'runs' / named[0]}" + (f" (the recommended {chosen})" if mine else "")
                           + f"; {len(models)} run(s) there hold one: {', '.join(models[:6])}"
                           + (" ..." if len(models) > 6 else ""))
    raise TunelabError(f"{path} is not a tunelab artifact (no tunelab.json): pass a folder written by `tunelab train`")


def load_artifact(path: str | Path, device: str | torch.device | None = None):
    """Load a tunelab artifact with plain transformers / peft, on ``device`` (default: where ``from_pretrained`` puts
    it, the CPU). Returns (model, tokenizer, info). A damaged folder (a file cut short or overwritten: its
    ``tunelab.json``, config or weights) is one :class:`TunelabError` line naming what could not be read."""
    from safetensors import SafetensorError

    try:
        return _load_artifact(path, device)
    except TunelabError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:  # json's, safetensors', transformers' reading errors
        raise TunelabError(f"cannot load the model in {path}: {type(exc).__name__}: {first_line(exc)[:200]} (a file of it is "
                           "damaged or missing: train it again, or restore the folder)") from exc


def _load_artifact(path: str | Path, device: str | torch.device | None = None):
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from tunelab.models import label_config, model_pad_token_id
    from tunelab.models.loading import ensure_classifier_class, separate_pairs
    from tunelab.run.resilience import check_weight_files

    folder = find_model_dir(path)
    check_weight_files(folder)  # a pickled weight file loads only if torch.load(weights_only=True) accepts it
    info = json.loads((folder / "tunelab.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    separate_pairs(tokenizer)  # as trained, where a tokenizer class rebuilds its post-processor on loading
    classification = info["task"] == "classification"
    if info["format"] == "peft":
        from peft import PeftConfig, PeftModel

        base_path = _base_model_path(folder, info, PeftConfig.from_pretrained(folder).base_model_name_or_path)
        labels = info["label_names"]
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its "classifier MISSING, newly initialized" report: the adapter restores it
        try:
            if classification:
                ensure_classifier_class(base_path)
                base = AutoModelForSequenceClassification.from_pretrained(
                    base_path,
                    **label_config(labels),
                    ignore_mismatched_sizes=True,  # a base that is itself a classifier: the adapter's head replaces its own
                    pad_token_id=model_pad_token_id(AutoConfig.from_pretrained(base_path), tokenizer),  # as trained
                    dtype=torch.float32,  # as trained, where the base's config states bfloat16 / float16
                )
            else:
                base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        except OSError as exc:
            raise TunelabError(f"cannot load the base model {base_path} of adapter {folder}: {str(exc).splitlines()[0]}") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        model = PeftModel.from_pretrained(base, folder)
    else:
        if classification:
            ensure_classifier_class(folder)
        cls = AutoModelForSequenceClassification if classification else AutoModelForCausalLM
        model = cls.from_pretrained(folder)
    if classification:
        from tunelab.models import read_last_token_from_mask

        read_last_token_from_mask(model)  # as in training: see there
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer, info


def stated_dtype(path: str) -> str | None:
    """The dtype the config of the model at ``path`` states (``"bfloat16"``, ...): what ``from_pretrained`` loads its
    weights in by default. ``None`` where it states none or cannot be read."""
    from transformers import AutoConfig

    try:
        dtype = getattr(AutoConfig.from_pretrained(path), "dtype", None)
    except (OSError, ValueError):
        return None
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def _base_model_path(folder: Path, info: dict[str, Any], recorded: str) -> str:
    """Where an adapter's base model is: a built-in is found again on this machine, a folder must still exist, a hub
    id must be reachable or cached (:func:`tunelab.models.loading.check_hub`)."""
    from tunelab.models import BUILTIN_MODELS, resolve_model
    from tunelab.models.loading import check_hub

    if info.get("base_model") in BUILTIN_MODELS:
        return resolve_model(info["base_model"])
    if Path(recorded).exists():
        return recorded
    where = f"set base_model_name_or_path in {folder / 'adapter_config.json'} to where it is now"
    if Path(recorded).is_absolute():
        raise TunelabError(f"the base model of adapter {folder} was {recorded}, which no longer exists: put it back, or "
                           f"{where}")
    try:  # a hub id, org/name or a legacy one without an org (gpt2): said at once where the hub cannot serve it
        check_hub(recorded)
    except TunelabError as exc:  # or a relative folder that is gone: both said
        raise type(exc)(f"{exc}; if the base was a folder that moved, {where}") from None
    return recorded


def _pair(text: str, path: str | Path) -> tuple[str, str]:
    first, tab, second = text.partition("\t")
    if not tab or not first.strip() or not second.strip():
        raise TunelabError(f"{path} was trained on text pairs: give each input as the two texts separated by a tab, "
                           f"got {text[:60]!r}")
    return first, second


@torch.inference_mode()
def predict(path: str | Path, texts: str | list[str], *, max_new_tokens: int = 40, batch_size: int = 32,
            raw: bool = False, system: str | None = None) -> list[dict]:
    """Labels with probabilities (classification) or generated continuations (causal LM), one result per text (a
    single string is one text, as a transformers pipeline takes it). A model trained on text pairs takes each input
    as the two texts separated by a tab; one trained on conversations takes each as a user's turn and replies as the
    assistant (through its chat template, :func:`tunelab.data.chat.generation_prompt`), unless ``raw`` (the text
    goes in as it is); ``system``: a system turn before each (a model trained on conversations that had one). A
    reply's row says ``"chat": True``."""
    from tunelab.run.padding import one_pass_attention

    if isinstance(texts, str):
        texts = [texts]
    # predict(out, 42) or predict(out, None) failed in list(): "... not iterable"; [None] would have predicted 'None'
    wrong = [t for t in texts if not isinstance(t, str)][:1] if isinstance(texts, Iterable) else [texts]
    if wrong:
        wrong = wrong[0]
        raise ConfigError(f"predict takes a text or a list of texts (str); got a {type(wrong).__name__}: {wrong!r:.60}")
    texts = [str(text) for text in texts]  # NumPy's str_ (an array of texts) as the str each result's text holds
    # the command line checked these; from Python they failed deep inside (range()'s or generate()'s ValueError)
    problems = [f"{setting(name)} must be a whole number of at least 1, got {value!r}"
                for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size))
                if not (isinstance(value, int) and value >= 1)]
    if problems:
        raise ConfigError(problems)

    from tunelab.run.progress import library_bars_off

    with one_pass_attention(), library_bars_off():  # batches of every shape (generation: one more key a step)
        return _predict(path, texts, max_new_tokens=max_new_tokens, batch_size=batch_size, raw=raw, system=system)


def _predict(path: str | Path, texts: list[str], *, max_new_tokens: int, batch_size: int, raw: bool = False,
             system: str | None = None) -> list[dict]:
    from tunelab.run.cache import build_device
    from tunelab.run.encoding import encode

    device = build_device()  # the GPU when there is one, as for training
    model, tokenizer, info = load_artifact(path, device)
    results = []
    if info["task"] == "classification":
        tokenizer.padding_side = "right"
        firsts, seconds = (list(zip(*(_pair(t, path) for t in texts))) if info.get("text_pair") else (texts, None))
        for i in range(0, len(texts), batch_size):
            chunk = texts[i : i + batch_size]
            enc = tokenizer.pad(encode(tokenizer, list(firsts[i : i + batch_size]),
                                       list(seconds[i : i + batch_size]) if seconds else None,
                                       info.get("max_length", 512), info.get("keep", "start")), return_tensors="pt")
            probs = model(**enc.to(device)).logits.float().softmax(-1).cpu()
            for text, row in zip(chunk, probs):
                ranked = sorted(
                    ((info["label_names"][j], float(p)) for j, p in enumerate(row)), key=lambda x: -x[1]
                )
                results.append({"text": text, "label": ranked[0][0], "probabilities": dict(ranked)})
        return results
    tokenizer.padding_side = "left"
    from tunelab.models import max_input_length, soft_prompt_length

    # the prompt and the continuation share the model's positions, after a soft prompt's, as in training
    soft = soft_prompt_length(model)
    limit = max_input_length(model, tokenizer, reserved=soft)
    besides = f" after the {soft} virtual tokens of its soft prompt" if soft else ""
    if max_new_tokens >= limit:
        raise TunelabError(f"{setting('max_new_tokens', max_new_tokens)} leaves no room for a prompt: this model takes {limit} "
                           f"tokens in all{besides}; use at most {limit - 1}")
    room = limit - max_new_tokens
    # peft (0.21) prepends a soft prompt in the model's forward, and under transformers' (5) KV cache it prepended it
    # again at every step, into the cache: wrong continuations, and past the position table of a GPT-2; without the
    # cache each step is one forward of the whole sequence, as the model was trained
    cache = {"use_cache": False} if soft else {}
    chat = bool(info.get("chat")) and not raw
    if system is not None and not chat:
        raise TunelabError(f"{setting('system')} gives a system turn to a model trained on conversations"
                           + (f", not with {setting('raw', True)}" if info.get("chat") else f"; {path} was trained on plain text"))
    if chat:
        from tunelab.data.chat import generation_prompt
    for number, text in enumerate(texts, 1):
        # without the tokenizer's special tokens (a BOS), as training and evaluation tokenize every text; a chat
        # prompt holds its template's own
        enc = tokenizer(generation_prompt(tokenizer, text, system) if chat else text, return_tensors="pt",
                        add_special_tokens=False)
        enc.pop("token_type_ids", None)  # decoders take none; generate() refuses unused inputs
        if not enc["input_ids"].shape[1]:  # generate() fails on an empty prompt with an index error
            raise TunelabError(f"text {number} ({text!r}) has no token to continue: give each text to predict some "
                               "words")
        if enc["input_ids"].shape[1] > room:  # keep the prompt's end, which the continuation follows
            log.warning(
                f"a prompt of {enc['input_ids'].shape[1]} tokens was cut to its last {room}: the model takes {limit} "
                f"tokens{besides} with the {max_new_tokens} to generate")
            enc = {k: v[:, -room:] for k, v in enc.items()}
        enc = {k: v.to(device) for k, v in enc.items()}
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             **cache)
        results.append({"text": text, "generated": continuation(tokenizer, out[0], enc["input_ids"].shape[1]),
                        "chat": chat})
    return results


def continuation(tokenizer, ids, prompt_length: int) -> str:
    """The text generated after a prompt of ``prompt_length`` tokens: the whole sequence decoded, less the prompt's
    decoding (as transformers' text-generation pipeline does), so the space between the prompt and its continuation
    is kept where a tokenizer marks words by their start (WordPiece, SentencePiece) rather than by a leading space."""
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    prompt = tokenizer.decode(ids[:prompt_length], skip_special_tokens=True)
    return whole[len(prompt):] if whole.startswith(prompt) else tokenizer.decode(ids[prompt_length:], skip_special_tokens=True)
