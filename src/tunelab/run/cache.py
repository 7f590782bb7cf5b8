"""Compute the frozen lower layers once, and train only the top from their cached output.

When a strategy keeps the embeddings and the bottom ``split`` blocks frozen for the whole run
(``head``: all blocks; ``last-n``: all but the top N; ``lora``/``ia3`` with ``--lora-layers K``: all
but the top K), their output for a given example never changes. tunelab then runs that frozen
prefix **once per example** — in inference mode, in length-sorted batches — stores the hidden
states entering block ``split``, and trains (and evaluates) only ``blocks[split:]`` and the head
from them, epoch after epoch.

How it plugs into the model (generic for every architecture, through :class:`tunelab.models.Layout`):
the ``forward`` of blocks ``[0, split)`` is replaced by a pass-through that returns what the real
block returns (a tensor, or DeBERTa's and MPNet's tuples), block ``split - 1``'s returns the batch's
cached hidden states (and so does the module whose output enters block 0, when the layout knows it,
so the embeddings do no work), and the model's own ``forward`` still does the attention masks,
rotary or relative positions, pooling, last-token selection and loss. :func:`restore` puts the real
``forward`` methods back (modules and parameter names never change, so checkpoints and the saved
artifact are those of the plain model). Before anything is built, :func:`check` runs the cached path
on a few examples against the whole model; where it does not give the same output (an architecture
whose body cannot run that way), or building fails, the run trains without the cache, with a note.

When ``split`` is the whole stack (``head``, classification) only the positions the head reads are
kept (``layout.head_reads``: BERT's first token; a decoder classifier's last non-padding token, fed
to the model as a length-1 input so its last-token logic still works; every position for a mean
pooling head): a tiny cache and near-free epochs. Where the layout offers it (BERT-style encoder
layers, :mod:`tunelab.models.fastpath`) the last block then runs for that one query (keys and values
still come from every token): the same output, about 5/6 of that block's work saved.

The pass runs on the GPU when there is one, in batches of about 1,024 padded tokens (length-sorted,
so almost no padding), and under bfloat16 autocast where the hardware multiplies bfloat16 natively
(``cache_precision``, below).

Storage: one flat array of hidden states per data split plus row offsets, in float16 by default,
under ``<cache root>/<model>-<model key>/split-<split>-<positions>-<dtype>-<precision>/<tokens>/``. The root is
``TrainConfig.cache_dir`` or ``$TUNELAB_CACHE/features``. The model key hashes the model (path, config, weight
files), the tokenizer and the max length; ``<tokens>`` hashes the token ids of one data split. So each split's
features are stored once, by what they depend on: a rerun reuses them, any change invalidates them, and runs that
share a validation or test split share its features (the data fractions of a learning curve, the rounds of a
planned comparison, ``--max-train-samples``), while only the training rows that changed are computed. A cache
that fits ``memory_limit_mb()`` (``$TUNELAB_CACHE_MEMORY_MB``, default a quarter of RAM, at most 4 GiB) is read
into memory, a larger one is memory-mapped from disk.
In a run over several processes (torchrun, accelerate launch) each node's first process builds the cache
while the node's other processes wait; they then read it from disk (``train_info.cache["built_by"]``).
A cache at a lower split (say, built once by ``compare`` with :func:`tunelab.run.training.build_shared_cache`) is extended
to a higher split by running only the blocks in between.

**The differences in meaning:** the frozen layers run without dropout (eval mode) while their
output is cached, whereas an uncached run applies the frozen layers' dropout in training mode (they
are frozen, but their dropout still adds noise). Trainable layers keep their dropout. And with
``cache_precision="auto"`` (the default) the one pass runs under bfloat16 autocast where the hardware
multiplies bfloat16 natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs from Ampere on): about 1.8x
faster on such a CPU, with cached features within about 1 % (relative) of the float32 ones; elsewhere
it runs in float32. ``--cache-precision fp32`` keeps float32 everywhere. Results are therefore close
to, not bit-identical with, an uncached run; ``TrainConfig(cache=False)`` / ``--no-cache`` switches
the cache off.

>>> from tunelab import TrainConfig, train
>>> record = train(TrainConfig(model="minilm", strategy="head", overwrite=True))  # doctest: +SKIP
>>> record["train_info"]["cache"]["used"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunelab.config import EXTRA_READ
from tunelab.errors import some_of
from tunelab.hardware import build_device, native_bf16
from tunelab.io import TMP, atomic_dir, remove_quietly
from tunelab.models import model_identity
from tunelab.models.layout import head_index
from tunelab.run.heap import release_free_heap
from tunelab.units import format_mb

log = logging.getLogger("tunelab")

SPLITS = ("train", "validation", "test")
CACHE_FORMAT = 3  # 3: one store per data split, keyed by its token ids
# padded tokens per forward pass while building: measured on minilm (2 CPU cores), 1024 is as fast
# as 4096 and 8192 and holds 200-250 MB less at its peak
_BUILD_TOKENS_PER_BATCH = 1024


# ----------------------------------------------------------------------------- plan


@dataclass
class CachePlan:
    """What to cache: the hidden states entering block ``split``, at ``positions``."""

    split: int
    positions: str  # "all", "first" (BERT [CLS]) or "last" (last non-padding token)
    dtype: str = "float16"  # how the features are stored
    precision: str = "fp32"  # how the frozen layers compute them: "fp32" or "bf16" (autocast)
    root: Path | None = None
    _saved: dict[str, Any] = field(default_factory=dict, repr=False)


def plan(run) -> CachePlan | None:
    """A :class:`CachePlan` when ``run``'s strategy keeps a frozen prefix of at least one block, else ``None`` (where it
    keeps one but the cache cannot use it, :func:`not_used` says why). A ``frozen_blocks`` above the model's blocks
    means them all: everything below the head (:meth:`~tunelab.strategies.Strategy.frozen_prefix`)."""
    split = run.strategy.frozen_prefix(run.model, run.layout, run.config)
    if split is None:
        return None
    trained = [n for n, p in _prefix_parameters(run.layout, split) if p.requires_grad]
    if trained:  # the strategy says frozen, the weights say otherwise: never cache what trains (a plugin's mistake)
        not_used(run, f"strategy '{run.strategy.name}' says the embeddings and the bottom {split} "
                      f"block{'s' if split != 1 else ''} stay frozen (frozen_blocks), but its prepare() left "
                      f"{len(trained)} of their weights trainable ({some_of(trained, 3)}); make the two agree")
        return None
    problem = run.layout.blocks_problem()
    if problem:  # a block is not a layer: the hidden states between blocks are not the layers' (XLM)
        not_used(run, problem)
        return None
    head_only = split == run.layout.num_blocks and run.data.task == "classification"
    positions = run.layout.head_reads if head_only else "all"  # the positions the head reads, or every one
    precision = resolve_precision(getattr(run.config, "cache_precision", "auto"))
    return CachePlan(split=split, positions=positions, dtype=cache_dtype(run.config), precision=precision,
                     root=cache_root(run.config))


def not_used(run, why: str) -> str:
    """Say once why ``run`` trains without the frozen-layer cache although its strategy keeps a frozen prefix: on the
    console (the main process's log) and in the record (``run.warnings``, which become ``train_info.notes``). Every
    such reason takes this one path: the run's warnings are logged before the cache is planned, so a note only
    appended there reached the record alone. A run planned again (the cost estimate plans it once per batch size it
    times) says a reason it already said no more. Returns the note."""
    from tunelab.run import ranks

    note = f"frozen-layer cache not used for this {run.layout.family} model, trained without it: {why}"
    if note in run.warnings:
        return note
    if ranks.is_main():
        log.warning(note)
    run.warnings.append(note)
    return note


def cache_dtype(config) -> str:
    """How the cache stores hidden states: ``--extra cache_dtype=float32`` (or ``TUNELAB_CACHE_DTYPE``), else
    ``float16``, which any other value also gets. One place for every pass that writes or reads the cache: the
    shared cache a comparison builds first is then the one its runs look up."""
    dtype = str(config.extra.get(EXTRA_READ[0], os.environ.get("TUNELAB_CACHE_DTYPE", "float16")))
    return dtype if dtype in ("float16", "float32") else "float16"


def resolve_precision(setting: str) -> str:
    """``auto`` -> ``bf16`` where the build device multiplies bfloat16 natively, else ``fp32``."""
    if setting == "auto":
        return "bf16" if native_bf16() else "fp32"
    return setting if setting in ("bf16", "fp32") else "fp32"


def cache_root(config) -> Path:
    from tunelab.models import cache_dir

    return Path(config.cache_dir) if getattr(config, "cache_dir", None) else cache_dir() / "features"


def memory_limit_mb() -> float:
    """Caches up to this size are held in memory; larger ones are memory-mapped from disk."""
    env = os.environ.get("TUNELAB_CACHE_MEMORY_MB")
    if env:
        return float(env)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError):
        total = 8192.0
    return min(total / 4, 4096.0)


def _prefix_parameters(layout, split: int):
    prefixes = layout.embedding_prefixes
    yield from ((n, p) for n, p in layout.model.named_parameters() if prefixes and n.startswith(prefixes))
    for index, block in enumerate(list(layout.blocks)[:split]):
        yield from ((f"{layout.blocks_path}.{index}.{n}", p) for n, p in block.named_parameters())


# ----------------------------------------------------------------------------- key


def tokens_key(ds) -> str:
    """Hash of one data split's token ids (and token types, where the split has them): the examples a store holds.

    Per row: its ids as int64 bytes, then ``/`` and its token types where there are any, then ``|``."""
    h = hashlib.sha256()
    ids = _token_rows(ds, "input_ids")
    types = _token_rows(ds, "token_type_ids") if "token_type_ids" in ds.column_names else None
    for i in range(len(ids)):
        h.update(ids[i].tobytes())
        if types is not None:
            h.update(b"/")
            h.update(types[i].tobytes())
        h.update(b"|")
    return h.hexdigest()[:20]


def _token_rows(ds, column: str) -> list[np.ndarray]:
    """Each row of a list-of-integers column as an int64 array, read from the split's Arrow table in one piece
    (rather than as Python lists row by row, which cost ~0.2 s a split of a few thousand rows)."""
    if hasattr(ds, "with_format"):  # a datasets.Dataset: its rows (selection and order included) as one Arrow column
        column_data = ds.with_format("arrow")[:][column].combine_chunks()
        lengths = column_data.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
        values = column_data.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        return np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return [np.asarray(row, dtype=np.int64) for row in ds[column]]


def model_key(run) -> str:
    """Hash of what every cached feature of ``run`` depends on besides the examples and the split point: the model,
    its layout, the tokenizer, the max length, and whether a causal LM's packed texts each attend only to themselves
    (``run.document_mask``: the same tokens give other features; absent where off, so the caches built before it
    existed, all across texts, keep their keys)."""
    tok = run.tokenizer
    parts = {
        "format": CACHE_FORMAT,
        "model": model_identity(run.config.model),
        "family": run.layout.family,
        "num_blocks": run.layout.num_blocks,
        "tokenizer": [type(tok).__name__, getattr(tok, "name_or_path", ""), len(tok), tok.pad_token_id],
        "max_length": run.max_length,
    }
    if getattr(run, "document_mask", False):
        parts["document_mask"] = True
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def base_key(run, datasets: dict[str, Any]) -> str:
    """Hash of everything a run's cached features depend on, except the split point (the model key and each named
    data split's tokens): equal for two runs exactly when they read the same features."""
    return _combined_key(model_key(run), {name: tokens_key(ds) for name, ds in datasets.items()})


def _combined_key(model: str, tokens: dict[str, str]) -> str:
    """:func:`base_key` from the model key and each named split's :func:`tokens_key`."""
    return hashlib.sha256(json.dumps({"model": model, "tokens": tokens}, sort_keys=True).encode()).hexdigest()[:20]


def cache_path(root: Path, run, key: str, split: int, positions: str, dtype: str, precision: str = "fp32") -> Path:
    """The folder of the features entering block ``split`` under the model key ``key``; one store per data split
    inside it, named by :func:`tokens_key`."""
    model_name = Path(str(run.config.model)).name or "model"
    return Path(root) / f"{model_name}-{key}" / f"split-{split}-{positions}-{dtype}-{precision}"


# ----------------------------------------------------------------------------- storage


class FeatureStore:
    """Hidden states of one data split: ``flat[offsets[i]:offsets[i+1]]`` is example ``i`` (positions × hidden)."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def batch(self, indices, length: int) -> torch.Tensor:
        """Right-padded ``(len(indices), length, hidden)`` float32 tensor for a batch."""
        hidden = self.flat.shape[1]
        out = np.zeros((len(indices), length, hidden), dtype=np.float32)
        for row, i in enumerate(indices):
            a, b = self.offsets[i], self.offsets[i + 1]
            n = min(b - a, length)
            out[row, :n] = self.flat[a : a + n]
        return torch.from_numpy(out)


def _load_store(folder: str | Path | None, in_memory: bool, hidden: int) -> FeatureStore:
    """The store written under ``folder`` (``None``: an empty data split, which has none)."""
    if folder is None:
        return FeatureStore(np.zeros((0, hidden), dtype=np.float32), np.zeros(1, dtype=np.int64))
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    offsets = np.load(folder / "offsets.npy")
    shape = (int(offsets[-1]), int(meta["hidden"]))
    dtype = np.dtype(meta["dtype"])
    if in_memory:
        flat = np.fromfile(folder / "features.bin", dtype=dtype).reshape(shape)
    else:
        flat = np.memmap(folder / "features.bin", dtype=dtype, mode="r", shape=shape)
    return FeatureStore(flat, offsets)


def _load_stores(folders: dict[str, str | None], in_memory: bool, hidden: int) -> dict[str, FeatureStore]:
    return {name: _load_store(folder, in_memory, hidden) for name, folder in folders.items()}


def _complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole store: ``meta.json`` says so, and its offsets and features files are there
    at the sizes it states (a store cut short by a full disk or a copy reads as incomplete and is built again)."""
    return _damage(folder) is None and (folder / "meta.json").is_file()


def _damage(folder: Path) -> str | None:
    """What is wrong with the store in ``folder`` (``None``: nothing, or no store there at all)."""
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None if not folder.exists() else "its meta.json is missing"
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("complete", False) is not True:
            return "its meta.json does not mark it complete"
        offsets = np.load(folder / "offsets.npy")
        expected = int(offsets[-1]) * int(meta["hidden"]) * np.dtype(meta["dtype"]).itemsize
        found = (folder / "features.bin").stat().st_size
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"it cannot be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})"
    if len(offsets) != int(meta.get("rows", len(offsets) - 1)) + 1:
        return f"its offsets hold {len(offsets) - 1} rows where meta.json says {meta.get('rows')}"
    if found != expected:
        return f"features.bin holds {found:,} bytes where {expected:,} were written"
    return None


# temporary store folders are named .tmp-<store>@<host>@<pid>@<random>: a folder whose process on this host is gone
# was left by a kill (SIGKILL, the OOM killer, a full disk's SIGBUS) and is removed by the next build there
_TMP_SEP = "@"


def _tmp_prefix(store: Path) -> str:
    import socket

    return f"{TMP}{store.name}{_TMP_SEP}{socket.gethostname()}{_TMP_SEP}{os.getpid()}{_TMP_SEP}"


def _remove_orphans(folder: Path) -> None:
    """Remove the temporary store folders under ``folder`` whose building process on this host has ended."""
    import socket

    if not folder.is_dir():
        return
    host = socket.gethostname()
    for tmp in folder.glob(f"{TMP}*"):
        parts = tmp.name.split(_TMP_SEP)
        if len(parts) != 4 or parts[1] != host:
            continue
        try:
            os.kill(int(parts[2]), 0)
            continue  # still building (or its pid was reused: left for a later run)
        except ProcessLookupError:
            pass
        except (PermissionError, ValueError):
            continue
        log.info("frozen-prefix cache: removing %s, left by a build that was killed", tmp)
        remove_quietly(tmp)


def _room_problem(folder: Path, size_mb: float) -> str | None:
    """Why a store of ``size_mb`` does not fit on the disk of ``folder`` (keeping 64 MiB free), or ``None``."""
    import shutil

    probe = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if probe is None:
        return None
    free_mb = shutil.disk_usage(probe).free / 2**20
    if size_mb + 64 > free_mb:
        return (f"the store needs {format_mb(size_mb)} and {format_mb(free_mb)} are free on the disk of {probe}: free space, "
                "or put the cache elsewhere (--cache-dir or TUNELAB_CACHE)")
    return None


# ----------------------------------------------------------------------------- running the prefix


class _CachedInput:
    """Holds the cached hidden states of the current batch, for the modules that stand in for the frozen prefix."""

    def __init__(self):
        self.stash: torch.Tensor | None = None

    def forward(self, *args, **kwargs) -> torch.Tensor:
        if self.stash is None:
            raise RuntimeError(
                "the frozen-prefix cache has no hidden states for this batch (missing 'cached_hidden')"
            )
        return self.stash


def _skip_forward(layout, feed: _CachedInput | None):
    """A block's forward that passes its hidden states through (with ``feed``: returns the cached ones),
    shaped as the real block's output (a tensor, or a tuple with the hidden states first: DeBERTa, MPNet)."""
    kind, key = layout.block_input
    size = layout.block_output

    def forward(*args, **kwargs):
        hidden = feed.forward() if feed is not None else (args[key] if kind == "arg" else kwargs[key])
        return hidden if size is None else (hidden, *([None] * (size - 1)))

    return forward


class _Swap:
    """Temporarily run blocks ``[0, skip_below)`` and ``[skip_from, ...)`` as pass-throughs; with ``feed``,
    block ``skip_below - 1`` returns the cached hidden states (exactly what it returned when they were
    computed), and the module whose output enters block 0 (when the layout knows it) returns them too, so
    the embeddings do no work. Modules stay in place (their attributes, names and parameters unchanged):
    only their ``forward`` is replaced, and ``undo()`` puts it back.

    A replaced module's ``train(mode)`` sets its own flag without walking its submodules, which do not run: the
    Trainer calls ``model.train()`` at every step, and on a small model most of the walk would be the frozen body's
    (about 0.9 ms a step for minilm's head). ``undo()`` brings the submodules back to their module's mode."""

    def __init__(self, layout, *, feed: _CachedInput | None, skip_below: int, skip_from: int | None = None):
        self.patched: list[tuple[nn.Module, Any]] = []  # (module, the instance-level forward it had, if any)
        for i, block in enumerate(layout.blocks):
            if i < skip_below or (skip_from is not None and i >= skip_from):
                self._patch(block, _skip_forward(layout, feed if i == skip_below - 1 else None))
        if feed is not None and skip_below > 0 and layout.entry is not None:
            self._patch(layout.entry, feed.forward)

    def _patch(self, module: nn.Module, forward) -> None:
        self.patched.append((module, module.__dict__.get("forward")))
        module.forward = forward  # an instance attribute: nn.Module.__call__ finds it before the class's
        if "train" not in module.__dict__:
            module.train = _own_mode(module)

    def undo(self) -> None:
        for module, previous in reversed(self.patched):
            if previous is not None:
                module.forward = previous
            else:
                del module.forward
            if isinstance(module.__dict__.get("train"), _own_mode):
                del module.train
                module.train(module.training)  # its submodules follow the mode it was given meanwhile
        self.patched = []


class _own_mode:  # noqa: N801 - stands in for a module's bound ``train`` method
    """``module.train(mode)`` for a module that does not run: its own flag only."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self, mode: bool = True) -> nn.Module:
        self.module.training = mode
        return self.module


@contextlib.contextmanager
def _prefix_pass(run, split: int, positions: str, feed: _CachedInput | None, source_split: int, precision: str):
    """Set the body up to run blocks ``[source_split, split)`` (from the embeddings when there is no
    ``feed``) in eval mode on the build device; yields ``forward(input_ids, mask, token_types)``: the hidden states
    entering block ``split``, ``(rows, positions kept, hidden)``."""
    layout = run.layout
    body = layout.body
    # head-only where the layout offers it: the last block runs for the head's query alone (tunelab.models.fastpath)
    last = layout.query_only(split - 1) if positions != "all" and split - 1 >= source_split else None
    swap = _Swap(layout, feed=feed, skip_below=source_split, skip_from=split - 1 if last is not None else split)
    captured: list[torch.Tensor] = []
    # the hook sits on block split-1; when it is skipped (query-only path) it passes its input through
    handle = layout.blocks[split - 1].register_forward_hook(
        lambda m, a, out: captured.append(out[0] if isinstance(out, (tuple, list)) else out)
    )
    was_training = body.training
    body.eval()
    device = build_device()
    home = next(body.parameters()).device
    if home != device:
        body.to(device)

    def forward(input_ids: torch.Tensor, mask: torch.Tensor, token_types: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        captured.clear()
        extra = {"token_type_ids": token_types.to(device)} if token_types is not None else {}
        if position_ids is not None:  # per-text attention, as the run's collator feeds it (no mask: run.padding)
            extra.update(position_ids=position_ids.to(device), use_cache=False)
        else:
            extra["attention_mask"] = mask.to(device)
        body(input_ids=input_ids.to(device), **extra)
        hidden = captured[-1]  # (rows, longest, hidden)
        if last is not None:
            return last(hidden, mask, head_index(mask, positions).to(hidden.device))
        if positions != "all":
            pick = head_index(mask, positions).to(hidden.device)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), pick].unsqueeze(1)
        return hidden

    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield forward
    finally:
        handle.remove()
        swap.undo()
        if feed is not None:
            feed.stash = None
        if home != device:
            body.to(home)
        body.train(was_training)


def _batches(lengths: np.ndarray):
    """Indices in length-sorted batches of about ``_BUILD_TOKENS_PER_BATCH`` padded tokens."""
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        # sorted ascending: grow the batch while the padded size stays under the budget
        end = start + 1
        while end < len(order) and (end - start + 1) * int(lengths[order[end]]) <= _BUILD_TOKENS_PER_BATCH:
            end += 1
        yield order[start:end]
        start = end


def _offsets(ds, positions: str) -> np.ndarray:
    """Where each example's rows start in a split's flat array (``positions`` kept per example)."""
    lengths = np.array([len(x) for x in ds["input_ids"]], dtype=np.int64)
    sizes = lengths if positions == "all" else np.ones_like(lengths)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def _fill(forward, ds, offsets: np.ndarray, flat, pad_id: int, feed=None, source: FeatureStore | None = None,
          max_length: int | None = None, document_mask: bool = False) -> None:
    """Run ``forward`` over every example of ``ds``, in length-sorted batches (padded as training pads them:
    :func:`tunelab.run.padding.padded_length` of the run's ``max_length``), and write each one's hidden states into
    ``flat[offsets[i]:offsets[i+1]]``. ``document_mask``: each text of a causal LM's block attends only to itself,
    as the run's collator makes it (:func:`tunelab.run.padding.task_collator`)."""
    from tunelab.run.padding import one_pass_attention, padded_length, padded_positions

    positions_col = ds["position_ids"][:] if document_mask and "position_ids" in ds.column_names else None

    # whole columns as lists, once: a ``datasets`` column read row by row costs a table lookup per row
    ids_col = ds["input_ids"][:]
    # token types change the embeddings of models that add them (GPT-2 embeds them with its word table)
    types_col = ds["token_type_ids"][:] if "token_type_ids" in ds.column_names else None
    lengths = np.array([len(x) for x in ids_col], dtype=np.int64)
    sizes = np.diff(offsets)
    with one_pass_attention():  # on a GPU: no per-shape cuDNN plans for batches whose shapes all differ
        for idx in _batches(lengths):
            longest = padded_length(int(lengths[idx].max()), max_length)
            input_ids = torch.full((len(idx), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), longest), dtype=torch.long)
            types = torch.zeros((len(idx), longest), dtype=torch.long) if types_col is not None else None
            for r, i in enumerate(idx):
                seq = ids_col[int(i)]
                input_ids[r, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                mask[r, : len(seq)] = 1
                if types is not None:
                    types[r, : len(seq)] = torch.as_tensor(types_col[int(i)], dtype=torch.long)
            if feed is not None:
                feed.stash = source.batch(idx, longest).to(build_device())
            position_ids = (padded_positions([{"position_ids": positions_col[int(i)]} for i in idx], longest, "right")
                            if positions_col is not None else None)
            hidden = forward(input_ids, mask, types, position_ids).float().cpu().numpy().astype(flat.dtype, copy=False)
            for r, i in enumerate(idx):
                n = int(sizes[i])
                flat[offsets[i] : offsets[i] + n] = hidden[r, :n]


def _compute(run, ds, split: int, positions: str, dtype: str, folder: Path, source: FeatureStore | None,
             source_split: int, precision: str = "fp32") -> None:
    """Run blocks ``[source_split, split)`` (with the embeddings when there is no source) over every example of
    ``ds`` once and write the hidden states entering block ``split`` under ``folder``."""
    if source is not None and split <= source_split:
        raise ValueError("nothing to compute: the source split equals the target split")
    pad_id = run.tokenizer.pad_token_id or 0
    np_dtype = np.float16 if dtype == "float16" else np.float32
    feed = _CachedInput() if source is not None else None
    try:
        with _prefix_pass(run, split, positions, feed, source_split if source is not None else 0, precision) as forward:
            offsets = _offsets(ds, positions)
            np.save(folder / "offsets.npy", offsets)
            shape = (int(offsets[-1]), run.layout.hidden_size)
            _reserve(folder / "features.bin", shape[0] * shape[1] * np.dtype(np_dtype).itemsize)
            flat = np.memmap(folder / "features.bin", dtype=np_dtype, mode="r+", shape=shape)
            _fill(forward, ds, offsets, flat, pad_id, feed, source, max_length=run.max_length,
                  document_mask=getattr(run, "document_mask", False))
            flat.flush()
            del flat
    finally:
        release_free_heap()  # the batches' activations, freed but still resident (tunelab.run.heap)


def _reserve(path: Path, size: int) -> None:
    """Create ``path`` with ``size`` bytes of disk allocated. Writing a memory map over a sparse file that the disk
    cannot hold kills the process (SIGBUS); allocated first, a full disk is an ``OSError`` here."""
    with open(path, "wb") as f:
        if size == 0:
            return
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            import errno

            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # ENOSPC, EDQUOT, EFBIG: not room
                raise
            f.truncate(size)  # a file system without fallocate: sparse, as before
        except AttributeError:  # no posix_fallocate (macOS, Windows)
            f.truncate(size)


def _sibling_source(base_dir: Path, split: int, dtype: str, precision: str, tokens: str) -> tuple[int, Path] | None:
    """The store of the same examples (``tokens``) at the deepest full-sequence split below ``split``, complete."""
    best = None
    if not base_dir.is_dir():
        return None
    for folder in base_dir.iterdir():
        parts = folder.name.split("-")
        if len(parts) != 5 or parts[0] != "split" or parts[2:] != ["all", dtype, precision]:
            continue
        try:
            s = int(parts[1])
        except ValueError:
            continue
        if s < split and _complete(folder / tokens) and (best is None or s > best[0]):
            best = (s, folder / tokens)
    return best


def _meta(run, ds, name: str, model: str, tokens: str, split: int, positions: str, dtype: str, precision: str,
          source_split: int | None) -> dict[str, Any]:
    """What a store holds (its ``meta.json``): enough to check it against a later run."""
    return {
        "complete": True,
        "format": CACHE_FORMAT,
        "split": split,
        "positions": positions,
        "dtype": dtype,
        "precision": precision,
        "hidden": run.layout.hidden_size,
        "model_key": model,
        "tokens": tokens,
        "model": str(run.config.model),
        "max_length": run.max_length,
        "rows": len(ds),
        "first_built_for": name,  # the data split of the run that built it (another run may read it as another)
        "source_split": source_split,
    }


def n_pos_of(ds, positions: str) -> int:
    """How many hidden states a store of ``ds`` at ``positions`` holds."""
    return len(ds) if positions != "all" else int(sum(ds["length"]))


def _discard(store: Path) -> None:
    """Move a damaged store aside (atomically, so no reader sees half of it), then delete it."""
    import shutil

    aside = store.with_name(_tmp_prefix(store) + "damaged")  # removed as an orphan if this process is killed here
    try:
        os.replace(store, aside)
    except OSError:
        return  # another process moved it first
    shutil.rmtree(aside, ignore_errors=True)


def ensure_features(
    run,
    datasets: dict[str, Any],
    split: int,
    positions: str,
    dtype: str = "float16",
    root: Path | None = None,
    precision: str = "fp32",
) -> tuple[Path, dict[str, Any]]:
    """Find or build the cache of ``split``/``positions`` for each of ``run``'s named data splits (``datasets``: name
    -> tokenized split; an empty one has no store); return the split point's folder and the facts, with each data
    split's store under ``facts["stores"]`` (``None`` for an empty split). A store of the same examples at that
    split is reused whichever run built it; a missing one is computed from the deepest full-sequence store of the
    same examples below ``split`` (only the blocks in between run), or from the embeddings."""
    root = Path(root) if root is not None else cache_root(run.config)
    model = model_key(run)
    folder = cache_path(root, run, model, split, positions, dtype, precision)
    tokens_of = {name: tokens_key(ds) for name, ds in datasets.items()}  # each split's tokens, hashed once
    hidden_size = run.layout.hidden_size
    store_mb = {name: n_pos_of(ds, positions) * hidden_size * (2 if dtype == "float16" else 4) / 2**20
                for name, ds in datasets.items()}  # each split's store, read once (a column of the data)
    size_mb = sum(store_mb.values())
    facts: dict[str, Any] = {"key": _combined_key(model, tokens_of), "path": str(folder), "size_mb": round(size_mb, 3),
                             "reused": True, "build_s": 0.0, "eval_share_s": 0.0, "source_split": None, "stores": {}}
    for name, ds in datasets.items():
        if len(ds) == 0:
            facts["stores"][name] = None
            continue
        tokens = tokens_of[name]
        store = folder / tokens
        facts["stores"][name] = str(store)
        if _complete(store):
            continue
        _remove_orphans(folder)
        damage = _damage(store)
        if damage is not None:  # only whole stores are renamed into place: this one was damaged after, so replace it
            log.warning("frozen-layer cache store %s is damaged (%s): building it again", store, damage)
            _discard(store)
        room = _room_problem(folder, store_mb[name])
        if room is not None:
            raise OSError(room)
        source = _sibling_source(folder.parent, split, dtype, precision, tokens)
        log.info("frozen-prefix cache: running %s %s-%d once (%s) over %d %s examples -> %s (%s)",
                 "blocks" if source else "embeddings + blocks", source[0] if source else 0, split - 1, precision, len(ds), name,
                 dtype, store)
        t0 = time.perf_counter()
        # replace=False: when another process finished the same store first, theirs is used. fsync=False: a
        # cache is recomputable and can be hundreds of MB, whose flush would add seconds to every build
        with atomic_dir(store, marker=False, replace=False, fsync=False, prefix=_tmp_prefix(store)) as tmp:
            _compute(run, ds, split, positions, dtype, tmp,
                     _load_store(source[1], False, hidden_size) if source else None, source[0] if source else 0, precision)
            meta = _meta(run, ds, name, model, tokens, split, positions, dtype, precision, source[0] if source else None)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if not _complete(store):
            raise RuntimeError(f"frozen-layer cache {store} is incomplete: remove it and run again")
        seconds = time.perf_counter() - t0
        facts["reused"] = False
        facts["build_s"] += seconds
        if name != "train":
            facts["eval_share_s"] += seconds
        if source and facts["source_split"] is None:
            facts["source_split"] = source[0]
    return folder, facts


# ----------------------------------------------------------------------------- training with the cache


class CachedCollator:
    """Pads the token fields with the run's own collator and adds the batch's cached hidden states."""

    def __init__(self, inner, stores: dict[str, FeatureStore]):
        self.inner, self.stores = inner, stores

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [(f["cache_split"], f["cache_index"]) for f in features]
        plain = [
            {k: v for k, v in f.items() if k not in ("cache_split", "cache_index", "length")}
            for f in features
        ]
        batch = dict(self.inner(plain))
        length = batch["input_ids"].shape[1]
        name = keys[0][0]
        if any(k[0] != name for k in keys):
            raise RuntimeError("a batch mixes data splits")
        batch["cached_hidden"] = self.stores[SPLITS[name]].batch([k[1] for k in keys], length)
        return batch


def _cached_dataset(ds, split_index: int, positions: str):
    ds = ds.add_column("cache_index", list(range(len(ds)))).add_column("cache_split", [split_index] * len(ds))
    if positions == "all":
        return ds
    keep = {"input_ids", "attention_mask", "token_type_ids", "labels", "length", "cache_index", "cache_split"}

    def head_only(batch):
        out = {}
        pick = [0 if positions == "first" else max(0, n - 1) for n in batch["length"]]  # right padding
        for col in ("input_ids", "attention_mask", "token_type_ids"):
            if col in batch:
                out[col] = [[seq[j]] for seq, j in zip(batch[col], pick)]
        return out

    ds = ds.remove_columns([c for c in ds.column_names if c not in keep])
    return ds.map(head_only, batched=True, desc="cache: head positions")


def _injector(feed: _CachedInput):
    def hook(module, args, kwargs):
        hidden = kwargs.pop("cached_hidden", None)
        if hidden is not None:
            feed.stash = hidden
        return args, kwargs

    return hook


def _attach(run, split: int, stores: dict[str, FeatureStore], collator):
    """Switch ``run.model`` to read the hidden states entering block ``split`` from ``stores``."""
    feed = _CachedInput()
    swap = _Swap(run.layout, feed=feed, skip_below=split)
    handle = run.model.register_forward_pre_hook(_injector(feed), with_kwargs=True)
    return {"swap": swap, "handle": handle, "feed": feed, "collator": CachedCollator(collator, stores)}


def _detach(saved: dict[str, Any]) -> None:
    if saved.get("collator") is not None:
        saved["collator"].stores = {}
    if saved.get("handle") is not None:
        saved["handle"].remove()
    if saved.get("swap") is not None:
        saved["swap"].undo()
    if saved.get("feed") is not None:
        saved["feed"].stash = None


def _sample(ds, n: int = 4):
    """Up to ``n`` examples of different lengths (so the check sees padding)."""
    first = sorted(range(min(len(ds), 32)), key=lambda i: len(ds[i]["input_ids"]))
    picks = sorted({first[round(k * (len(first) - 1) / max(n - 1, 1))] for k in range(n)}) if first else []
    return ds.select(picks)


def check(run, split: int, positions: str, datasets: dict[str, Any], collator) -> str | None:
    """Why training from a cache at ``split``/``positions`` would not compute what the model computes
    (``None`` when it does): on a few examples, the hidden states are computed in float32 by the same
    pass that builds the cache, fed to the model the way training feeds them, and the result (logits
    for classification, the loss for a causal LM) is compared with the whole model's. This is how an
    architecture whose body cannot run with its embeddings and lower blocks replaced is recognised."""
    ds = _sample(datasets["validation"] if len(datasets["validation"]) else datasets["train"])
    if not len(ds):
        return None
    model, saved = run.model, {}
    was_training = model.training
    model.eval()
    pad_id = run.tokenizer.pad_token_id or 0
    try:
        rows = [{k: v for k, v in r.items() if k != "length"} for r in ds]
        with torch.no_grad():
            want = _result(model(**collator(rows)), run.data.task)
        offsets = _offsets(ds, positions)
        flat = np.zeros((max(int(offsets[-1]), 1), run.layout.hidden_size), dtype=np.float32)
        with _prefix_pass(run, split, positions, None, 0, "fp32") as forward:
            _fill(forward, ds, offsets, flat, pad_id, max_length=run.max_length,
                  document_mask=getattr(run, "document_mask", False))
        model.eval()  # the pass restored the body's mode, not the whole model's
        saved = _attach(run, split, {"validation": FeatureStore(flat, offsets)}, collator)
        cached = _cached_dataset(ds, SPLITS.index("validation"), positions)
        with torch.no_grad():
            got = _result(model(**saved["collator"]([cached[i] for i in range(len(cached))])), run.data.task)
    except Exception as exc:  # noqa: BLE001 - whatever the architecture does, the run goes on without the cache
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    finally:
        _detach(saved)
        model.train(was_training)
    scale = max(1.0, float(want.abs().max()))
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-3, atol=1e-4 * scale):
        diff = float((got - want).abs().max()) if got.shape == want.shape else float("nan")
        return f"the cached forward differs from the model's (largest difference {diff:.3g})"
    return None


def _result(output, task: str) -> torch.Tensor:
    return (output.logits if task == "classification" else output.loss).detach().float()


def apply(plan: CachePlan, run, datasets: tuple[Any, Any, Any], collator=None):
    """Build or reuse the cache and switch ``run.model`` to train from it.

    Returns ``(train_ds, val_ds, test_ds, collator, cache_info)``: the datasets gain the columns
    ``cache_split``/``cache_index`` (and, head-only, keep just the token the head reads), and the
    collator wraps ``collator`` (the one the run would use without the cache) and adds each batch's
    ``cached_hidden``, which a forward pre-hook on ``run.model`` hands to the stand-in modules.
    Call :func:`restore` after training.

    Where :func:`check` finds that the cache would not compute what the model computes (or building
    it fails), the datasets and ``collator`` come back unchanged, ``cache_info`` says ``used: False``
    and why, and a note is added to the run's warnings: the run trains without the cache. A head-only
    cache that fails the check is first retried keeping every position.
    """
    named = dict(zip(SPLITS, datasets))
    inner = collator or _default_collator(run)
    why = check(run, plan.split, plan.positions, named, inner)
    if why is not None and plan.positions != "all":
        if check(run, plan.split, "all", named, inner) is None:
            log.info("frozen-prefix cache: keeping every position (%s with %s only)", why, plan.positions)
            plan.positions, why = "all", None
    if why is None:
        why, folder, facts = _built_once_per_node(run, named, plan)
    in_memory = stores = None
    if why is None:
        in_memory = facts["size_mb"] <= memory_limit_mb()
        try:
            stores = _load_stores(facts["stores"], in_memory, run.layout.hidden_size)
        except (OSError, ValueError, KeyError) as exc:  # changed on disk since it was checked
            why = f"reading it failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})"
    if why is not None:
        not_used(run, why)
        return datasets[0], datasets[1], datasets[2], collator, {"used": False, "fallback": why}
    where = "memory" if in_memory else "disk"
    log.info(
        "frozen-prefix cache %s: blocks 0-%d of %d (%s), %s %s in %s%s",
        "reused" if facts["reused"] else "built",
        plan.split - 1,
        run.layout.num_blocks,
        plan.precision,
        format_mb(facts["size_mb"]),
        plan.dtype,
        where,
        f" ({facts['build_s']:.1f} s)" if not facts["reused"] else "",
    )
    plan._saved = _attach(run, plan.split, stores, inner)
    out = tuple(_cached_dataset(named[s], i, plan.positions) for i, s in enumerate(SPLITS))
    info = {
        "used": True,
        **_sharing(),
        "size_mb": facts["size_mb"],
        "build_s": round(facts["build_s"], 3),
        "eval_share_s": round(facts["eval_share_s"], 3),
        "split": plan.split,
        "positions": plan.positions,
        "dtype": plan.dtype,
        "precision": plan.precision,
        "where": where,
        "reused": facts["reused"],
        "source_split": facts["source_split"],
        "key": facts["key"],
    }
    return out[0], out[1], out[2], plan._saved["collator"], info


def _built_once_per_node(run, named: dict[str, Any], plan: CachePlan) -> tuple[str | None, Path | None, dict]:
    """:func:`ensure_features`, run first by each node's main process (several processes: the others wait,
    then find it complete on disk and read it). Every process then uses the cache only if every one has it."""
    from tunelab.run import ranks

    why, folder, facts = None, None, {}
    with ranks.local_main_first():
        for precision in dict.fromkeys((plan.precision, "fp32")):  # bfloat16 first where chosen, then float32
            try:
                folder, facts = ensure_features(run, named, plan.split, plan.positions, plan.dtype, plan.root, precision)
            except Exception as exc:  # noqa: BLE001 - a cache that cannot be built: train without it
                why = f"building it failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]})"
                continue
            if precision != plan.precision:  # a model whose own code overflows bfloat16 (DeBERTa's float32 mask fill)
                log.info("frozen-prefix cache: the %s pass failed (%s); built in float32 instead", plan.precision, why)
                plan.precision = precision
            why = None
            break
    if ranks.distributed() and not ranks.all_agree(why is None):
        why = why or "another process could not build or read it (every process trains the same model)"
    return why, folder, facts


def _sharing() -> dict[str, Any]:
    """How the processes of a run share the cache (nothing to say in a single process)."""
    from tunelab.run import ranks

    if not ranks.distributed():
        return {}
    return {"built_by": "the main process of each node; the node's other processes wait, then read it from disk",
            "processes": ranks.world_size()}


def _default_collator(run):
    from tunelab.run.padding import task_collator

    return task_collator(run.tokenizer, run.data.task, run.max_length, getattr(run, "document_mask", False))


def restore(plan: CachePlan, run) -> None:
    """Put the real embeddings and blocks back and remove the input hook: the model is whole again.
    The cached features are released; the collator that :func:`apply` returned must not be called afterwards."""
    _detach(plan._saved)
    plan._saved = {}
