"""Where the parts of a transformers model are: body, blocks, embeddings, task head, and how they are wired.

This is the one place that knows how architectures differ; strategies and the cache ask a
:class:`Layout` instead of branching on a model family. Everything is found from the model itself:

- the **body** is ``getattr(model, model.base_model_prefix)``; the **task head** is every module
  outside it that has parameters, except the output embeddings (a causal LM's pre-trained
  ``lm_head``): ``classifier``, ``score``, ``pre_classifier``, DeBERTa's ``pooler``, ModernBERT's
  ``head`` ...;
- the **blocks** are the body's largest ``ModuleList`` of one class, preferring the classes the model
  names in ``_no_split_modules`` and lists as long as ``config.num_hidden_layers``;
- one forward pass on a probe input (:mod:`tunelab.models.probe`) shows the rest: the module whose
  output enters block 0, the body's modules that run after the last block (final norm, BERT's
  pooler) and before the first (embeddings, position tables), what a block takes and returns, the
  order in which block 0 uses its projections, and which positions the classification head reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from tunelab.errors import ModelError
from tunelab.models.fastpath import QueryOnly, query_only_block, verified_query_only
from tunelab.models.probe import Probe, probe_model


@dataclass(eq=False)
class Layout:
    """Where the parts of a transformer are, so strategies can freeze and split it generically.

    Names are parameter/module names of ``model`` (the model :func:`model_layout` was given).
    ``blocks`` is the stack of transformer blocks (bottom first) at ``blocks_path``; ``head_modules``
    are the task head's modules (trained by every strategy). ``family`` is the model type, a
    description only: nothing branches on it.
    """

    model: nn.Module = field(repr=False)
    family: str
    body: nn.Module = field(repr=False)
    body_path: str
    blocks: nn.ModuleList = field(repr=False)
    blocks_path: str
    head_modules: tuple[str, ...]
    probe: Probe | None = field(repr=False)  # None: the probe pass could not read the blocks' wiring (probe_problem)
    parallel_lists: tuple[str, ...] = ()  # other lists each layer's parts are spread over, beside the blocks (XLM)
    probe_problem: str | None = None

    @cached_property
    def fused_parameters(self) -> tuple[str, ...]:
        """Block weights held outside dense projections as tensors of three or more dimensions (a mixture of experts'
        fused experts, transformers 5: ``mlp.experts.gate_up_proj``, ``mlp.experts.down_proj``): names relative to a
        block; () for a dense model. An adapter of dense projections does not reach them. A convolution's kernel is 3-D
        too (ConvBERT's separable convolutions) but not fused experts: it is left out, as dense projections are."""
        from tunelab.models.probe import is_linear

        block = self.blocks[0]
        own = {f"{n}." for n, m in block.named_modules() if is_linear(m) or isinstance(m, nn.modules.conv._ConvNd)}
        return tuple(sorted({n for n, p in block.named_parameters() if p.dim() >= 3 and not n.startswith(tuple(own))}))

    def unadaptable_note(self, strategy: str, because: str = "") -> str | None:
        """One line when the blocks hold weights outside dense projections (:attr:`fused_parameters`) that ``strategy``
        leaves as pre-trained (``because``: why this run does, when the strategy could reach them); else None."""
        fused = self.fused_parameters
        if not fused:
            return None
        share = sum(p.numel() for b in self.blocks for n, p in b.named_parameters() if n in fused)
        total = sum(p.numel() for p in self.model.parameters())
        what = f"{strategy} adapts dense projections only" + (f" here ({because})" if because else "")
        return (f"{what}: this {self.family} model holds {100 * share / total:.0f} % of its weights as fused tensors in "
                f"each block ({', '.join(fused[:3])}{' ...' if len(fused) > 3 else ''}: a mixture of experts' experts), "
                "which stay as pre-trained")

    def blocks_problem(self) -> str | None:
        """Why this body's layers cannot be taken as one stack of blocks (None when they can): XLM and FlauBERT keep
        each layer's attention, feed-forward and norms in parallel lists, so no one module is a layer, and a
        strategy that freezes, adapts or caches by block would reach only part of each layer; or the probe pass
        could not read how the blocks are wired (Funnel's blocks nested in groups, SqueezeBERT's called past their
        hooks, XLNet's sequence-first blocks), which the same strategies and the cache need."""
        if self.probe is None:
            return f"tunelab cannot read how its blocks are wired ({self.probe_problem})"
        if not self.parallel_lists:
            return None
        lists = ", ".join((self.blocks_path, *self.parallel_lists))
        return f"its layers are spread over parallel lists ({lists}) rather than one list of blocks"

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def block_runs(self) -> int:
        """How many times each block runs in one forward pass: 1, or more when the model's layers share the weights
        of fewer blocks (ALBERT runs one block 12 times): training a block then trains every layer that runs it."""
        return self.probe.block_runs if self.probe is not None else 1

    def shared_blocks_note(self) -> str | None:
        """One line for the user when layers share block weights, else None."""
        if self.block_runs <= 1:
            return None
        kind = getattr(self.model.config, "model_type", "") or type(self.model).__name__
        return (f"{kind} shares block weights: its {self.num_blocks * self.block_runs} layers run {self.num_blocks} "
                f"block{'s' if self.num_blocks > 1 else ''} {self.block_runs} times each, so training a block trains every "
                f"layer that runs it, and --layers counts blocks ({self.num_blocks}), not layers")

    @property
    def head_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes of the task head."""
        return tuple(f"{m}." for m in self.head_modules)

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states that flow between blocks."""
        return self.probe.hidden_size

    @property
    def head_reads(self) -> str:
        """Positions of the last block's output a classification head reads: ``"first"``, ``"last"``
        (the last non-padding token) or ``"all"`` (also for a causal LM)."""
        return self.probe.head_reads if self.probe is not None else "all"

    @property
    def entry(self) -> nn.Module | None:
        """The module whose output enters block 0 unchanged (BERT's ``embeddings``, Llama's
        ``embed_tokens``, GPT-2's ``drop``), or ``None`` when none returns it as is."""
        return self.model.get_submodule(self.probe.entry) if self.probe.entry else None

    @property
    def block_input(self) -> tuple[str, object]:
        """How a block receives its hidden states: ``("arg", 0)`` or ``("kwarg", name)``."""
        return self.probe.block_input

    @property
    def block_output(self) -> int | None:
        """``None`` when a block returns its hidden states, else the length of the tuple it returns (hidden states first)."""
        return self.probe.block_output

    def block_prefix(self, i: int) -> str:
        return f"{self.blocks_path}.{i}."

    @cached_property
    def _body_parameters(self) -> dict[str, str]:
        """Every body parameter outside the blocks -> "before" (runs before the first block, or never) or "after"."""
        kinds = {}
        blocks_prefix = f"{self.blocks_path}."
        body_prefix = f"{self.body_path}." if self.body_path else ""
        for name, _ in self.model.named_parameters():
            if not name.startswith(body_prefix) or name.startswith(blocks_prefix):
                continue
            owner = name.rsplit(".", 1)[0] if "." in name else ""
            start = self.probe.called.get(owner, (-1, -1))[0] if self.probe is not None else -1
            kinds[name] = "after" if self.probe is not None and start > self.probe.blocks_span[1] else "before"
        return kinds

    @cached_property
    def output_embedding_prefixes(self) -> tuple[str, ...]:
        """A causal LM's pre-trained output embeddings (``lm_head``), when they are weights of their own (untied from
        the input embeddings): parameter-name prefixes; () for a classifier or tied embeddings."""
        get = getattr(self.model, "get_output_embeddings", None)
        output = get() if callable(get) else None
        if output is None:
            return ()
        name = next((n for n, m in self.model.named_modules() if m is output), "")
        own = {id(p) for p in output.parameters()} - {id(p) for n, p in self.model.named_parameters() if not n.startswith(name)}
        return (f"{name}.",) if own else ()

    @cached_property
    def after_prefixes(self) -> tuple[str, ...]:
        """Body modules above the block stack (final norm, BERT's pooler): parameter-name prefixes."""
        return self._cover("after")

    @cached_property
    def embedding_prefixes(self) -> tuple[str, ...]:
        """Every other body parameter outside the blocks (embeddings, position tables, their norms)."""
        return self._cover("before")

    @cached_property
    def pooler_prefixes(self) -> tuple[str, ...]:
        """Modules above the blocks that pool the sequence into one vector (BERT's pooler): the
        classification head reads the body through them, so they belong with the head."""
        ranks = self.probe.ranks if self.probe is not None else {}
        return tuple(p for p in self.after_prefixes if ranks.get(p[:-1], 3) < 3)  # (batch, hidden)

    @property
    def new_head_modules(self) -> tuple[str, ...]:
        """What a classification run trains as its new task head, in every strategy: :attr:`head_modules` and
        the pooler above the blocks (:attr:`pooler_prefixes`). The pooler is the head's first layer: some
        checkpoints ship it untrained (sentence-transformers' MiniLM), and a frozen random pooler in front of
        the classifier left LoRA and BitFit near chance where the head alone reached 0.8-0.95."""
        return self.head_modules + tuple(p[:-1] for p in self.pooler_prefixes if p[:-1] not in self.head_modules)

    def _cover(self, kind: str) -> tuple[str, ...]:
        """The fewest module prefixes whose parameters are exactly those of ``kind``."""
        kinds = self._body_parameters
        chosen = {n for n, k in kinds.items() if k == kind}
        everything = [n for n, _ in self.model.named_parameters()]
        depth = len(self.body_path.split(".")) if self.body_path else 0
        out = set()
        for name in chosen:
            parts = name.split(".")
            for d in range(depth + 1, len(parts)):
                prefix = ".".join(parts[:d]) + "."
                if all(n in chosen for n in everything if n.startswith(prefix)):
                    out.add(prefix)
                    break
            else:
                out.add(name)
        return tuple(sorted(out))

    @cached_property
    def _query_only_ok(self) -> bool:
        return verified_query_only(self.blocks[-1], self.probe.last_block_io, self.probe.mask, self.head_reads)

    def query_only(self, i: int) -> QueryOnly | None:
        """For a head-only cache: block ``i`` run for the position the head reads alone
        (:mod:`tunelab.models.fastpath`), where it was checked to match the real block; else ``None``."""
        if i != self.num_blocks - 1 or self.probe is None or not self._query_only_ok:
            return None
        return query_only_block(self.blocks[i])


def _body(model: nn.Module) -> tuple[str, nn.Module]:
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    if isinstance(body, nn.Module):
        return prefix, body
    return "", model


def _blocks(model: nn.Module, body: nn.Module) -> tuple[str, nn.ModuleList, tuple[str, ...]]:
    """The body's block stack: its largest ModuleList of one class (named in ``_no_split_modules``
    and as long as ``config.num_hidden_layers`` where the model says so), and the names of sibling lists of other
    classes that score the same (a body whose layers are spread over parallel lists: :meth:`Layout.blocks_problem`)."""
    num = getattr(model.config, "num_hidden_layers", None)
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    scored = []
    for name, module in body.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        classes = {type(m).__name__ for m in module}
        if len(classes) != 1:
            continue
        scored.append(((bool(classes & no_split), len(module) == num, len(module)), name, module, classes.pop()))
    if not scored:
        raise ModelError(f"cannot find the transformer blocks of {type(model).__name__}: no list of layers in its body")
    best = max(scored, key=lambda c: c[0])  # the first of the best
    parent = best[1].rpartition(".")[0]
    parallel = tuple(c[1] for c in scored if c is not best and c[0] == best[0] and c[3] != best[3]
                     and c[1].rpartition(".")[0] == parent)
    return best[1], best[2], parallel


def _head_modules(model: nn.Module, body: nn.Module) -> tuple[str, ...]:
    """Modules outside the body that have parameters, except the (pre-trained) output embeddings."""
    output_embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    heads = []
    for name, child in model.named_children():
        if child is body or child is output_embeddings or next(child.parameters(), None) is None:
            continue
        heads.append(name)
    return tuple(heads)


def model_layout(model: nn.Module) -> Layout:
    """Find the body, the block stack, the embeddings and the task head of a transformers model, and
    probe how they are wired (one forward pass on a 2 x 6 token input). A model whose wiring the probe cannot read
    gets a layout without a probe (:meth:`Layout.blocks_problem` says why): what works by block is refused on it,
    the frozen-layer cache is not used, and the strategies that need neither (full fine-tuning, the head, BitFit,
    prompt tuning) train."""
    if hasattr(model, "get_base_model"):  # a peft model: the layout of the model it wraps
        model = model.get_base_model()
    body_path, body = _body(model)
    rel_blocks, blocks, parallel = _blocks(model, body)
    blocks_path = f"{body_path}.{rel_blocks}" if body_path else rel_blocks
    family = str(getattr(model.config, "model_type", type(model).__name__))
    parallel = tuple(f"{body_path}.{p}" if body_path else p for p in parallel)
    try:
        probe, problem = probe_model(model, body, body_path, blocks), None
    except Exception as exc:  # noqa: BLE001 - the wiring cannot be read: strategies that work by block are refused
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        probe, problem = None, f"a probe pass over {blocks_path}: {first}"
    return Layout(model, family, body, body_path, blocks, blocks_path, _head_modules(model, body), probe, parallel, problem)


def blocks_in_config(config, *, trust_remote_code: bool = False) -> int | None:
    """How many blocks (:attr:`Layout.num_blocks`) a model of ``config`` (a transformers config) has, found as a
    loaded model's are (:func:`model_layout`): the model is built on the meta device (no weights, no probe pass).
    ``None`` where it cannot be built (remote code not trusted, an unknown class) or its blocks cannot be found."""
    try:
        from transformers import AutoModel

        with torch.device("meta"):
            model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
        return len(_blocks(model, _body(model)[1])[1])
    except Exception:  # noqa: BLE001 - whatever stops the build, the count is not known
        return None


def head_index(attention_mask: torch.Tensor, reads: str) -> torch.Tensor:
    """For each row, the position a head that reads ``reads`` (``"first"`` or ``"last"``, see
    :attr:`Layout.head_reads`) takes from right-padded hidden states."""
    if reads == "first":
        return torch.zeros(attention_mask.shape[0], dtype=torch.long)
    return attention_mask.long().sum(-1).clamp(min=1) - 1  # right padding: last real token


NO_LIMIT = 10**9
"""What :func:`max_input_length` says of a model and tokenizer that state no limit."""


def position_limit(model) -> int | None:
    """How many token positions ``model`` (a module, or a transformers config) takes; ``None``: no stated limit.

    It is the config's ``max_position_embeddings``, less the rows that an absolute position table keeps below
    its first position: a table built with a ``padding_idx`` (RoBERTa, XLM-R, MPNet, Longformer, ...) numbers
    the positions from ``padding_idx + 1``, so a RoBERTa with 514 rows and padding index 1 takes 512 tokens. A
    config alone is built on the meta device (no weights) to look; one that cannot be built keeps its number.
    """
    if not isinstance(model, nn.Module):
        config = model
        try:
            from transformers import AutoModel

            with torch.device("meta"):
                model = AutoModel.from_config(config)
        except Exception:  # noqa: BLE001 - remote code, an unknown class: the config's own number stands
            return _stated_positions(config)
    limit = _stated_positions(getattr(model, "config", None))
    if limit is None:
        return None
    try:
        words = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        words = None
    for module in model.modules():
        if (isinstance(module, nn.Embedding) and module is not words and module.num_embeddings == limit
                and module.padding_idx is not None):
            return limit - (module.padding_idx + 1)
    return limit


POSITION_NAMES = ("max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length")
"""Where configs state their number of positions: most as ``max_position_embeddings`` (GPT-2's ``n_positions`` is
mapped to it), some under their own name (MPT: ``max_seq_len``)."""


def _stated_positions(config) -> int | None:
    for name in POSITION_NAMES:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def soft_prompt_length(model) -> int:
    """How many positions a peft prompt-learning adapter of ``model`` (a soft prompt of virtual tokens) puts before
    every input: they count against the model's positions, and the model computes them in its own forward, around
    its body; 0 for any other model. A loaded model's counterpart of the strategy's ``positions_added``, read from the
    adapter's own config."""
    config = getattr(model, "active_peft_config", None)
    return int(config.num_virtual_tokens) if getattr(config, "is_prompt_learning", False) else 0


def max_input_length(model, tokenizer, *, reserved: int = 0) -> int:
    """The most tokens an example may have for ``model`` (a module or a config) and ``tokenizer``:
    the smaller of :func:`position_limit` less the ``reserved`` positions (a soft prompt's virtual tokens) and the
    tokenizer's ``model_max_length`` (:data:`NO_LIMIT`: neither states one)."""
    positions = position_limit(model)
    limits = [n for n in [getattr(tokenizer, "model_max_length", None)] if isinstance(n, int) and 0 < n < 10**8]
    if positions is not None:  # reserved positions may leave none: 0, not a fall back to the tokenizer's number
        limits.append(max(positions - reserved, 0))
    return min([NO_LIMIT, *limits])
