from __future__ import annotations

import torch
from torch import nn

from tunelab.strategies.base import Kind, Strategy, and_head, freeze_all, register_strategy, unfreeze_head


def add_zero_biases(model, layout) -> int:
    """Give a bias-free Llama-family model zero biases on its attention and MLP projections.

    Zero biases leave the function unchanged; the config flags (``attention_bias``, ``mlp_bias``)
    make a saved model load with plain transformers, biases included.
    """
    added = 0
    for block in layout.blocks:
        for module in block.modules():
            if isinstance(module, nn.Linear) and module.bias is None:
                module.bias = nn.Parameter(torch.zeros(module.out_features, dtype=module.weight.dtype))
                added += 1
    for flag in ("attention_bias", "mlp_bias"):
        if hasattr(model.config, flag):
            setattr(model.config, flag, True)
    return added


@register_strategy
class BitFit(Strategy):
    name = "bitfit"
    summary = "BitFit: only the bias terms (and the task head) train; zero biases are added to bias-free Llama blocks"
    default_lr = 1e-3
    kind = Kind.PEFT
    order = 30

    def describe(self, config, task, *, num_blocks=None):
        return f"only the bias terms{and_head(task)}; every weight matrix, the embeddings included, is frozen"

    def adds(self, config):
        return "zero biases where a projection has none (bias-free blocks only)"

    def prepare(self, model, layout, config):
        if not any(n.endswith(".bias") for n, _ in layout.blocks.named_parameters()):
            add_zero_biases(model, layout)
        freeze_all(model)
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.requires_grad_(True)
        unfreeze_head(model, layout)
        return model
