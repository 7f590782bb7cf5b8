from __future__ import annotations

from tunelab.strategies.base import Strategy, register_strategy


@register_strategy
class Full(Strategy):
    name = "full"
    summary = "full fine-tuning: every weight trains"
    default_lr = 5e-5
    kind = "full"

    def prepare(self, model, layout, config):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
