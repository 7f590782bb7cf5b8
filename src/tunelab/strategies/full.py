from __future__ import annotations

from tunelab.strategies.base import Kind, Strategy, and_head, register_strategy


@register_strategy
class Full(Strategy):
    name = "full"
    summary = "full fine-tuning: every weight trains"
    default_lr = 5e-5
    kind = Kind.FULL
    extra_options = ()  # reads no --extra key
    order = 80
    # the advice before training: first with plenty of labels on a far domain; last with few labels on a near one (over-fits)
    advice_tiers = {
        "few-near": (2, 2),
        "few-far": (2, 0),
        "plenty-far": (0, 0),
        "otherwise": (0, 1),
    }
    leaves_model_as_loaded = True
    compared_by_default = True

    def describe(self, config, task, *, num_blocks=None):
        lr = config.lr if config.lr is not None else self.default_lr
        return f"every weight of the pre-trained model, from the first step, at lr {lr:g}{and_head(task, config)}"

    def prepare(self, model, layout, config):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
