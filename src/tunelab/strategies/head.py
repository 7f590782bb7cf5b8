from __future__ import annotations

from tunelab.strategies.base import (
    HEAD_LR,
    Kind,
    Strategy,
    all_blocks,
    freeze_all,
    head_rate,
    register_strategy,
    unfreeze_head,
)


def _as_head_lr(config):
    """``config`` with ``head_lr`` taken from ``--lr`` when only that was given."""
    from types import SimpleNamespace

    head_lr = getattr(config, "head_lr", None)
    lr = getattr(config, "lr", None)
    return SimpleNamespace(head_lr=head_lr if head_lr is not None else lr)


@register_strategy
class Head(Strategy):
    name = "head"
    summary = "feature extraction: the pre-trained body is frozen, only a new task head (with BERT's pooler) trains"
    default_lr = HEAD_LR  # what trains is a head: the one head rate
    kind = Kind.FROZEN
    extra_options = ()  # reads no --extra key
    order = 10
    # the advice before training: few labels on a near domain: the frozen features suffice; a far domain or plenty of labels: they lag
    advice_tiers = {
        "few-near": (0, 0),
        "few-far": (1, 0),
        "plenty-far": (3, 0),
        "otherwise": (2, 0),
    }
    compared_by_default = True
    tasks = ("classification",)

    def describe(self, config, task, *, num_blocks=None):
        blocks = all_blocks(num_blocks)
        return (f"only a new task head (and the pooler, where the model has one), {head_rate(_as_head_lr(config))}; "
                f"{blocks} and the embeddings are frozen")

    def head_lr(self, config):
        """Here the head is all that trains, so ``--lr`` sets its rate too (``--head-lr`` wins when both are given)."""
        return super().head_lr(_as_head_lr(config))

    def prepare(self, model, layout, config):
        freeze_all(model)
        unfreeze_head(model, layout)  # with the pooler above the blocks, as in every strategy
        return model

    def frozen_blocks(self, model, layout, config):
        return layout.num_blocks
