"""A faster last block for head-only caches, where a block's structure allows it.

A head-only cache keeps one position per example (the one the classification head reads). The last
block then needs to run for that one query only: keys and values still come from every token, but
the query, the attention output and the feed-forward run for one token instead of all of them (about
5/6 of the block's work saved). :func:`query_only_block` builds that function for blocks made of a
self-attention (``attention.self.query/key/value`` + ``attention.output``), an ``intermediate`` and an
``output`` part (BERT and the encoders that share its layer); :class:`tunelab.models.Layout` only
offers it after checking it against the real block's output on the probe input.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

QueryOnly = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def query_only_block(block: nn.Module) -> QueryOnly | None:
    """``run(hidden, mask, pick) -> (batch, 1, hidden)``: ``block``'s output at position ``pick`` of
    each row, or ``None`` when ``block`` is not a plain self-attention encoder layer of that shape."""
    attention = getattr(block, "attention", None)
    sa = getattr(attention, "self", None)
    if (
        sa is None
        or not all(hasattr(sa, n) for n in ("query", "key", "value", "attention_head_size", "scaling"))
        or getattr(block, "is_decoder", False)
        or getattr(block, "add_cross_attention", False)
        or getattr(sa, "position_embedding_type", "absolute") != "absolute"
        or not all(hasattr(block, n) for n in ("intermediate", "output"))
        or not hasattr(attention, "output")
    ):
        return None

    def run(hidden: torch.Tensor, mask: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        at = hidden[rows, pick].unsqueeze(1)  # (batch, 1, hidden)
        n, length, size = hidden.shape[0], hidden.shape[1], sa.attention_head_size
        q = sa.query(at).view(n, 1, -1, size).transpose(1, 2)  # (batch, heads, 1, head size)
        k = sa.key(hidden).view(n, length, -1, size).transpose(1, 2)
        v = sa.value(hidden).view(n, length, -1, size).transpose(1, 2)
        keep = mask[:, None, None, :].to(device=hidden.device, dtype=torch.bool)
        ctx = torch.nn.functional.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=keep, scale=sa.scaling)
        ctx = ctx.transpose(1, 2).reshape(hidden.shape[0], 1, -1)
        attended = attention.output(ctx, at)
        return block.output(block.intermediate(attended), attended)

    return run


@torch.no_grad()
def verified_query_only(block: nn.Module, io: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor, reads: str) -> bool:
    """Whether :func:`query_only_block` of ``block`` reproduces ``block``'s recorded output (``io``:
    its input and output on the probe input, ``mask`` its padding) at the position the head ``reads``."""
    run = query_only_block(block)
    if run is None or reads not in ("first", "last"):
        return False
    hidden_in, hidden_out = io
    pick = torch.zeros(mask.shape[0], dtype=torch.long) if reads == "first" else mask.sum(-1) - 1
    was_training = block.training
    block.eval()
    try:
        got = run(hidden_in, mask, pick.to(hidden_in.device))[:, 0]
    except Exception:  # noqa: BLE001 - a block that only looks like one: no fast path
        return False
    finally:
        block.train(was_training)
    want = hidden_out[torch.arange(mask.shape[0]), pick]
    return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(want.abs().max()))))
