"""LoRA's update added in place into the frozen layer's output: one matrix multiply, no output-sized temporaries.

peft computes a LoRA layer as ``result + lora_B(lora_A(dropout(x))) * scaling``: three tensors the size of
the layer's output besides ``result`` (``lora_B``'s product, its scaled copy and the sum) on every adapted
projection, in every forward pass. On a CPU the C library's heap keeps the space of those short-lived
temporaries between the activations stored for the backward pass, and the process grows: on ``minilm`` at
32 x 128 tokens, forward + backward peaked at 2,926 MB with peft's forward and 2,260 MB with this one (full
fine-tuning: 2,203 MB; ``benchmarks/profile_peft_step.py``, README "What PEFT costs on a CPU").

:func:`fuse_lora_forward` gives each vanilla LoRA layer of a peft model a forward that computes the same
sum as ``result.addmm_(lora_A(dropout(x)), lora_B.weight.T, alpha=scaling)``: in place on the frozen
layer's fresh output, which the frozen layer's backward does not need; the multiply saves only the rank-r
input and ``lora_B``'s weight for its own backward. Whatever it does not cover falls back to peft's own
forward, call by call: adapters disabled or merged, several or mixed-batch adapters, a LoRA variant
(DoRA), a bias on ``lora_B``, mixed dtypes or autocast, and weights that are not plain local tensors
(FSDP and DeepSpeed ZeRO-3 shards). The saved adapter is peft's own; only the forward differs.
"""

from __future__ import annotations

import torch
from torch import nn


def _fused(module, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    peft_forward = type(module).forward.__get__(module)  # peft's own (the class's), for what this does not cover
    if args or kwargs or module.disable_adapters or module.merged:
        return peft_forward(x, *args, **kwargs)
    active = [a for a in module.active_adapters if a in module.lora_A]
    if len(active) != 1 or active[0] in getattr(module, "lora_variant", {}):
        return peft_forward(x)
    name = active[0]
    lora_a, lora_b = module.lora_A[name], module.lora_B[name]
    weight_b = lora_b.weight
    if (lora_b.bias is not None or type(weight_b.data) is not torch.Tensor or weight_b.dim() != 2
            or x.dtype != lora_a.weight.dtype or x.dtype != weight_b.dtype or torch.is_autocast_enabled(x.device.type)):
        return peft_forward(x)
    result = module.base_layer(x)
    down = lora_a(module.lora_dropout[name](x))
    if result.dtype != x.dtype or not result.is_contiguous() or result.shape[-1] != weight_b.shape[0]:
        return result + lora_b(down) * module.scaling[name]  # peft's sum, without running the frozen layer again
    flat = result.view(-1, result.shape[-1])
    flat.addmm_(down.reshape(-1, down.shape[-1]), weight_b.t(), alpha=module.scaling[name])
    # a view taken after the update, not ``result``: when the frozen layer's output is itself a view (a 3-D view of
    # a 2-D product), ``result``'s autograd record predates the update, and a model's own in-place step on it
    # (Longformer's ``q /= sqrt(d)``) failed as "a leaf Variable that requires grad is used in an in-place operation"
    return flat.view(result.shape)


def fuse_lora_forward(model: nn.Module) -> int:
    """Give every vanilla LoRA linear layer of ``model`` (a peft model) the in-place forward; returns how many."""
    from types import MethodType

    from peft.tuners.lora.layer import Linear

    count = 0
    for module in model.modules():
        if type(module) is Linear and "forward" not in vars(module):
            module.forward = MethodType(_fused, module)  # a bound method: a deep copy binds it to the copy
            count += 1
    return count
