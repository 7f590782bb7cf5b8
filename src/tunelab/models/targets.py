"""Which modules an adapter (LoRA, IA3) goes on, for any architecture.

- **LoRA**: every dense projection inside the blocks (peft's ``all-linear``, restricted to the blocks,
  so never the task head or the LM head): BERT's ``query``/``key``/``value``/``dense``, Llama's
  ``q/k/v/o_proj`` and ``gate/up/down_proj``, GPT-2's ``c_attn``/``c_proj``/``c_fc``, ...
- **IA3**: the keys, the values and the feed-forward output projection of each block, found from the
  order block 0 used its projections on the probe input (:mod:`tunelab.models.probe`): the
  projections that read the same tensor as the first one are the attention's inputs (query, key,
  value; the first is the query; those in the first one's module: a parallel block's feed-forward input
  reads the same tensor), or one fused projection (GPT-2's ``c_attn``, Phi-3's ``qkv_proj``), which is
  then rescaled whole; the feed-forward output is the last projection called outside the attention's
  module that writes the block's width (a mixture of experts with fused expert weights has none: refused).
- ``--lora-target-modules`` overrides both: ``all-linear`` (every dense projection outside the task
  head and the LM head), a comma-separated list of module names (peft's rule: a name matches a module
  whose dotted name ends with it) or a regular expression (matched against whole module names).

The result is a peft ``target_modules`` regular expression that names exactly the chosen modules, and for LoRA the
blocks' fused weights (a mixture of experts' experts held as 3-D tensors, which no dense projection holds): peft's
``target_parameters``, which takes no dropout and no DoRA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunelab.errors import StrategyError, setting
from tunelab.models.probe import is_linear

ALL_LINEAR = "all-linear"
_REGEX_CHARS = set("*+?[](){}|\\^$")


@dataclass(frozen=True)
class AdapterTargets:
    """The modules an adapter goes on (full module names) and the feed-forward ones among them (IA3)."""

    modules: tuple[str, ...]
    feedforward: tuple[str, ...]
    pattern: str | None  # peft target_modules: a regex matching exactly ``modules`` (None: parameters only)
    feedforward_pattern: str | None
    conv1d: bool  # every target is a transformers Conv1D (GPT-2): peft's fan_in_fan_out
    parameters: tuple[str, ...] = ()  # fused weights adapted as parameters (peft's target_parameters): MoE experts


def is_regex(spec: str) -> bool:
    """Whether a ``--lora-target-modules`` value is a regular expression rather than a list of names."""
    return spec.strip().lower() != ALL_LINEAR and bool(set(spec) & _REGEX_CHARS)


def spec_problem(spec: str) -> str | None:
    """Why a ``--lora-target-modules`` value cannot be used, before any model is loaded (else ``None``)."""
    if not spec.strip():
        return f"{setting('lora_target_modules')} is empty: give all-linear, names such as q_proj,v_proj or a regex"
    if is_regex(spec):
        try:
            re.compile(spec)
        except re.error as exc:
            return f"{setting('lora_target_modules', spec, quoted=True)} is not a valid regular expression ({exc}): fix it or give names such as q_proj,v_proj"
    return None


def _block_index(layout, name: str) -> int | None:
    prefix = f"{layout.blocks_path}."
    if not name.startswith(prefix):
        return None
    head = name[len(prefix) :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _blocks(layout, top: int | None) -> list[int]:
    if top is None:
        return list(range(layout.num_blocks))
    if top > layout.num_blocks:
        raise StrategyError(f"{setting('lora_layers', top)} is more than the model's {layout.num_blocks} blocks: use at most {layout.num_blocks}")
    return list(range(layout.num_blocks - top, layout.num_blocks))


def _in_blocks(layout, relative: list[str], top: int | None) -> list[str]:
    names = {n for n, m in layout.model.named_modules() if is_linear(m)}
    return [f"{layout.blocks_path}.{i}.{r}" for i in _blocks(layout, top) for r in relative if f"{layout.blocks_path}.{i}.{r}" in names]


def _candidates(layout) -> list[str]:
    """Every dense projection outside the task head and the output embeddings (peft's all-linear)."""
    model = layout.model
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_name = next((n for n, m in model.named_modules() if m is output), None) if output is not None else None
    heads = tuple(layout.head_prefixes) + ((f"{out_name}.",) if out_name else ())
    return [n for n, m in model.named_modules() if is_linear(m) and n != out_name and not f"{n}.".startswith(heads)]


def _resolve(layout, spec: str, top: int | None) -> list[str]:
    """The dense projections ``spec`` names (an override), limited to the top ``top`` blocks."""
    candidates = _candidates(layout)
    text = spec.strip()
    if text.lower() == ALL_LINEAR:
        chosen = candidates
    elif is_regex(text):
        chosen = [n for n in candidates if re.fullmatch(text, n)]
    else:
        wanted = [w.strip() for w in text.split(",") if w.strip()]
        chosen = [n for n in candidates if any(n == w or n.endswith(f".{w}") for w in wanted)]
    keep = set(_blocks(layout, top))
    chosen = [n for n in chosen if _block_index(layout, n) in keep or _block_index(layout, n) is None]
    if not chosen:
        sample = ", ".join(sorted({n.split(".")[-1] for n in candidates if _block_index(layout, n) is not None}))
        where = f" in the top {top} blocks" if top is not None else ""
        raise StrategyError(
            f"{setting('lora_target_modules', spec, quoted=True)} matches no dense projection of this {layout.family} model{where}: "
            f"give all-linear, names among {sample} (comma-separated) or a regex over module names"
        )
    return chosen


def pattern(layout, names: list[str]) -> str:
    """A regex (for peft's ``re.fullmatch``) matching exactly the module ``names``, compact for block stacks."""
    by_relative: dict[str, set[int]] = {}
    others = []
    for name in names:
        i = _block_index(layout, name)
        if i is None:
            others.append(re.escape(name))
        else:
            relative = name[len(layout.blocks_path) + 1 :].split(".", 1)[1]
            by_relative.setdefault(relative, set()).add(i)
    groups: dict[tuple[int, ...], list[str]] = {}
    for relative, indices in by_relative.items():
        groups.setdefault(tuple(sorted(indices)), []).append(re.escape(relative))
    parts = [
        rf"{re.escape(layout.blocks_path)}\.({'|'.join(map(str, idx))})\.({'|'.join(sorted(rels))})"
        for idx, rels in sorted(groups.items())
    ] + sorted(others)
    return parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)


def _targets(layout, modules: list[str], feedforward: list[str], parameters: list[str] = ()) -> AdapterTargets:
    from transformers.pytorch_utils import Conv1D

    conv1d = bool(modules) and all(isinstance(layout.model.get_submodule(n), Conv1D) for n in modules)
    return AdapterTargets(
        tuple(modules),
        tuple(feedforward),
        pattern(layout, modules) if modules else None,
        pattern(layout, feedforward) if feedforward else None,
        conv1d,
        tuple(parameters),
    )


def lora_targets(layout, *, top: int | None = None, override: str | None = None, fused: bool = True) -> AdapterTargets:
    """LoRA's modules: every dense projection in the (top ``top``) blocks, or what ``override`` names; with ``fused``
    and no override, also the blocks' fused weights (:attr:`~tunelab.models.Layout.fused_parameters`: a mixture of
    experts' experts), adapted as parameters."""
    if override:
        return _targets(layout, _resolve(layout, override, top), [])
    relative = sorted({n for block in layout.blocks for n, m in block.named_modules() if is_linear(m)})
    modules = _in_blocks(layout, relative, top)
    parameters = [f"{layout.blocks_path}.{i}.{r}" for i in _blocks(layout, top) for r in layout.fused_parameters] if fused else []
    if not modules and not parameters:
        raise StrategyError(f"lora cannot apply to this {layout.family} model: its blocks have no dense projection")
    return _targets(layout, modules, [], parameters)


def _out_width(module) -> int | None:
    """A dense projection's output width (``nn.Linear.out_features``, ``Conv1D.nf``)."""
    return getattr(module, "out_features", None) or getattr(module, "nf", None)


def _parent(relative: str) -> str:
    return relative.rpartition(".")[0]


def ia3_targets(layout, *, top: int | None = None, override: str | None = None) -> AdapterTargets:
    """IA3's modules: keys, values and the feed-forward output projection of the (top ``top``) blocks,
    or what ``override`` names (the feed-forward output projections among them rescale their input).

    The attention's inputs are the projections of the probe's first group that sit in the first one's module: a
    block that runs attention and feed-forward side by side (Phi, GPT-J, Falcon's parallel attention) feeds its
    feed-forward input the same tensor, and that projection is not a value. The feed-forward output is the last
    projection called outside that attention module that writes the block's width: not the attention's output
    projection (a mixture of experts whose experts are fused parameters calls no dense feed-forward), and not a
    router or a gate (their width is the experts', or one). A block with none cannot take IA3: one line says so."""
    order, group = layout.probe.linear_order, layout.probe.first_group
    if not order:
        raise StrategyError(f"ia3 cannot apply to this {layout.family} model: its blocks have no dense projection")
    attention_module = _parent(group[0])
    group = [r for r in group if _parent(r) == attention_module]
    block0 = layout.model.get_submodule(f"{layout.blocks_path}.0")
    outside = [r for r in order if not attention_module or _parent(r) != attention_module]
    ff_relative = next((r for r in reversed(outside) if _out_width(block0.get_submodule(r)) == layout.probe.hidden_size), None)
    if override:
        modules = _resolve(layout, override, top)
        ff = set(_in_blocks(layout, [ff_relative], top)) if ff_relative else set()
        return _targets(layout, modules, [n for n in modules if n in ff])
    if ff_relative is None:
        raise StrategyError(
            f"ia3 cannot apply to this {layout.family} model: no dense projection outside the attention writes the "
            "block's width for IA3 to rescale as the feed-forward output (a mixture of experts whose experts are fused "
            f"parameters, or a router); use lora, or name the modules with {setting('lora_target_modules')}"
        )
    ff = _in_blocks(layout, [ff_relative], top)
    attention = group if len(group) == 1 else group[1:]  # fused q/k/v, or the keys and values after the query
    modules = _in_blocks(layout, [r for r in attention if r != ff_relative] + [ff_relative], top)
    return _targets(layout, modules, ff)
