"""Selective recomputation of attention: train with attention dropout without storing the attention matrix.

With attention dropout on (BERT-family models train with ``attention_probs_dropout_prob=0.1``), PyTorch's
``scaled_dot_product_attention`` cannot use its fused kernels and falls back to the math path, which keeps
three ``(batch, heads, length, length)`` tensors per layer for the backward pass (the softmax and the dropped
probabilities in float32, the dropout mask in bool). For MiniLM at batch 32 x 128 tokens that is 432 MB of the
step's 1.5 GB of saved activations, for about 5 % of its compute.

tunelab registers an attention function that runs transformers' own ``sdpa`` attention under
``torch.utils.checkpoint`` when it trains with dropout: only the query, key and value are kept, and the
attention core is run again in the backward pass with the same random state (the same dropout mask), so
losses and gradients are bit-for-bit those of the plain path. This is the "selective activation
recomputation" of Korthikanti et al., *Reducing Activation Recomputation in Large Transformer Models* (2022):
recompute the parts that are large in memory and cheap in compute. Without dropout, without gradients, or
for models that do not use ``sdpa`` it is the plain function.

It applies on CPU only: on CUDA, ``scaled_dot_product_attention`` trains with dropout in its memory-efficient
kernels, which never store the matrix. On CPU it is a trade, so it is opt-in (``--recompute-attention``):
measured in ``benchmarks/bench_cache.py`` (MiniLM, LoRA, 3 epochs of rotten-tomatoes, same run), peak RSS
2,290 -> 2,177 MB (-5 %) for 197 -> 227 s (+15 %) -- the dropout mask is drawn again in the backward pass, and
on CPU drawing it costs about as much as the attention itself, while the glibc heap keeps much of what is
freed, so RSS falls by a quarter of the 432 MB of saved tensors it removes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

NAME = "tunelab_sdpa_recompute"


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout > 0 and torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad):
        from torch.utils.checkpoint import checkpoint

        return checkpoint(
            sdpa_attention_forward, module, query, key, value, attention_mask, dropout=dropout, use_reentrant=False, **kwargs
        )
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _attention)
    # the masks must be built as for "sdpa" (boolean, or none at all without padding): an additive float
    # mask would change the numbers in the last bits
    AttentionMaskInterface.register(NAME, sdpa_mask)


def _has_attention_dropout(config: Any) -> bool:
    names = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop", "attention_probs_dropout")
    return any(isinstance(getattr(config, n, None), (int, float)) and getattr(config, n) > 0 for n in names)


def off_reason(model: torch.nn.Module) -> str | None:
    """Why ``model`` recomputes no attention (it applies on a CPU, with attention dropout, through transformers'
    ``sdpa`` attention), else ``None``."""
    name = type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__  # not an adapter wrapper's
    config = getattr(model, "config", None)
    implementation = getattr(config, "_attn_implementation", None)
    if implementation != "sdpa":
        return (f"{name} does not run transformers' sdpa attention ({implementation or 'no attention setting'}): "
                "nothing is recomputed (it applies to sdpa attention with dropout on a CPU)")
    if not _has_attention_dropout(config):
        return (f"{name} trains without attention dropout, where sdpa's fused kernel already keeps no attention matrix: "
                "nothing is recomputed (it applies to models with attention dropout, such as BERT's, on a CPU)")
    param = next(model.parameters(), None)
    if param is None or param.device.type != "cpu":
        return ("it applies on a CPU: on this GPU sdpa trains with dropout in kernels that keep no attention matrix, "
                "nothing is recomputed")
    return None


def applies(model: torch.nn.Module) -> bool:
    """Whether ``model`` trains on CPU with attention dropout through transformers' ``sdpa`` attention."""
    return off_reason(model) is None


@contextlib.contextmanager
def recompute_attention(model: torch.nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Within the block, ``model`` (and every module sharing its config) recomputes its attention core in
    the backward pass instead of storing it; yields whether it applied. The config is restored on exit,
    so nothing of it reaches a saved model."""
    if not enabled or not applies(model):
        yield False
        return
    _register()
    config = model.config
    config._attn_implementation = NAME
    try:
        yield True
    finally:
        config._attn_implementation = "sdpa"
