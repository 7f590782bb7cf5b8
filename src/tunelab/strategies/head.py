from __future__ import annotations

from tunelab.strategies.base import Kind, Strategy, freeze_all, register_strategy, unfreeze_head


@register_strategy
class Head(Strategy):
    name = "head"
    summary = "feature extraction: the pre-trained body is frozen, only a new task head (with BERT's pooler) trains"
    default_lr = 2e-3
    kind = Kind.FROZEN
    order = 10
    tasks = ("classification",)

    def describe(self, config, task, *, num_blocks=None):
        blocks = f"all {num_blocks} blocks" if num_blocks is not None else "every block"
        return f"only a new task head (and the pooler, where the model has one); {blocks} and the embeddings are frozen"

    def prepare(self, model, layout, config):
        freeze_all(model)
        unfreeze_head(model, layout)
        # a pooler above the blocks (BERT's: dense + tanh on the first token) belongs to the classification
        # head rather than the body: sentence-transformers checkpoints such as all-MiniLM ship it untrained,
        # so a frozen pooler would feed the new classifier near-constant features
        pooler = layout.pooler_prefixes
        for name, p in model.named_parameters():
            if pooler and name.startswith(pooler):
                p.requires_grad_(True)
        return model

    def frozen_blocks(self, model, layout, config):
        return layout.num_blocks
