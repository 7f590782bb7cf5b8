"""Where the parts of a transformers model are: blocks, embeddings, task head.

This is the one place that knows how architectures differ; strategies and the cache ask a
:class:`Layout` instead of branching on a model family.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tunelab.errors import ModelError


@dataclass
class Layout:
    """Where the parts of a transformer are, so strategies can freeze and split it generically.

    ``blocks`` is the stack of transformer blocks (bottom first); ``embeddings_owner`` and
    ``embeddings_attr`` name the module whose output is the first block's input (BERT's
    ``embeddings``, Llama's ``embed_tokens``); ``head_prefixes`` are the parameter-name prefixes of
    the task head that tunelab adds (trained by every strategy).
    """

    family: str  # "bert" or "llama" (or "generic")
    blocks: nn.ModuleList
    blocks_path: str
    embeddings_owner: nn.Module
    embeddings_attr: str
    head_prefixes: tuple[str, ...]

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)


_HEAD_NAMES = ("classifier", "score", "pre_classifier", "lm_head")


def model_layout(model: nn.Module) -> Layout:
    """Find the block stack, the embeddings and the task head of a transformers model."""
    num = getattr(model.config, "num_hidden_layers", None)
    blocks_path, blocks = None, None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and (num is None or len(module) == num):
            if blocks is None or len(module) > len(blocks):
                blocks_path, blocks = name, module
    if blocks is None:
        raise ModelError(f"cannot find the transformer blocks of {type(model).__name__}")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix, base) if hasattr(base, "base_model_prefix") else base
    if hasattr(body, "embeddings") and isinstance(body.embeddings, nn.Module):
        family, owner, attr = "bert", body, "embeddings"
    elif hasattr(body, "embed_tokens"):
        family, owner, attr = "llama", body, "embed_tokens"
    else:
        raise ModelError(f"cannot find the embeddings of {type(model).__name__} (supported: BERT and Llama families)")
    heads = tuple(n for n in _HEAD_NAMES if hasattr(base, n) and isinstance(getattr(base, n), nn.Module))
    return Layout(family, blocks, blocks_path, owner, attr, heads)
