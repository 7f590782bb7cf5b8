from __future__ import annotations

from tunelab.strategies.base import Strategy, freeze_all, register_strategy, unfreeze_head


@register_strategy
class Head(Strategy):
    name = "head"
    summary = "feature extraction: the pre-trained body is frozen, only a new task head trains"
    default_lr = 2e-3
    tasks = ("classification",)

    def prepare(self, model, layout, config):
        freeze_all(model)
        unfreeze_head(model, layout)
        return model

    def frozen_blocks(self, model, layout, config):
        return layout.num_blocks
