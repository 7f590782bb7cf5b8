"""ULMFiT-style gradual unfreezing (Howard & Ruder, 2018) with layer-wise decayed learning rates.

Training starts with only the head (and the top block) trainable; at each step of the schedule one
more block, from the top down, is unfrozen, until every block trains in the last stage. Block ``i``
counted from the top gets ``lr * layer_lr_decay**i`` (discriminative fine-tuning); the embeddings
get the lowest rate.
"""

from __future__ import annotations

import functools

from tunelab.strategies.base import (
    Kind,
    Strategy,
    and_head,
    freeze_all,
    register_strategy,
    split_head_group,
    unfreeze_head,
)


class _Unfreezing:
    """Unfreeze one more block from the top at evenly spaced points of training (the ``TrainerCallback`` is
    :func:`_callback_class`: transformers' trainer module is imported when a run needs it, not with the registry)."""

    def __init__(self, model, layout):
        self.model, self.layout = model, layout
        self.unfrozen = 1  # stages reached so far: blocks unfrozen, counted from the top

    @property
    def stages(self) -> int:
        """One per block, the embeddings with the last; a body of one block (ALBERT's shared layer) has two, the
        embeddings in the second, so that its schedule also ends with every weight training."""
        return max(2, self.layout.num_blocks)

    def _apply(self) -> None:
        n = self.layout.num_blocks
        prefixes = tuple(self.layout.block_prefix(i) for i in range(max(0, n - self.unfrozen), n))
        if self.unfrozen >= self.stages:  # the embeddings, and a causal LM's own output embeddings: every weight
            prefixes += self.layout.embedding_prefixes + self.layout.output_embedding_prefixes
        for name, p in self.model.named_parameters():
            if name.startswith(prefixes):
                p.requires_grad_(True)

    @staticmethod
    def stage_at(step: int, total: int, stages: int) -> int:
        """The stage (1 to ``stages``) that step ``step`` of ``total`` trains in: stage k of n covers steps
        [k/n, (k+1)/n) of training; the last stage trains everything."""
        return min(stages, 1 + int(step * stages / max(total, 1)))

    def on_step_begin(self, args, state, control, **kwargs):
        target = self.stage_at(state.global_step, state.max_steps, self.stages)
        if target != self.unfrozen:
            self.unfrozen = target
            self._apply()


@register_strategy
class Gradual(Strategy):
    name = "gradual"
    summary = "ULMFiT gradual unfreezing from the top, with layer-wise decayed learning rates"
    default_lr = 1e-4
    kind = Kind.STAGED
    extra_options = ()  # reads no --extra key
    order = 70
    needs_blocks = True
    # the advice before training: with full fine-tuning where every weight should move; over-fits a few labels less than it
    advice_tiers = {
        "few-near": (2, 1),
        "few-far": (1, 3),
        "plenty-far": (0, 1),
        "otherwise": (0, 2),
    }
    options = ("layer_lr_decay",)
    fixed_trainable_set = False  # the schedule unfreezes blocks during the run

    def describe(self, config, task, *, num_blocks=None):
        lr = config.lr if config.lr is not None else self.default_lr
        stages = f"{max(2, num_blocks)} equal stages" if num_blocks is not None else "one stage per block"
        return (
            f"every weight, in stages: starts with the top block{and_head(task, config)}, then unfreezes one more block from "
            f"the top at evenly spaced steps over all of training ({stages}, not one per epoch), the "
            f"embeddings with the last; each block at lr × decay^depth from the top ({lr:g} × {config.layer_lr_decay:g}^depth)"
        )

    def widen(self, model, layout, config):
        """Every block and the embeddings trainable: where the schedule ends, in its last stage."""
        schedule = _Unfreezing(model, layout)
        schedule.unfrozen = schedule.stages
        schedule._apply()
        return True

    def prepare(self, model, layout, config):
        freeze_all(model)
        n = layout.num_blocks
        for name, p in model.named_parameters():
            if name.startswith((layout.block_prefix(n - 1), *layout.after_prefixes)):
                p.requires_grad_(True)
        unfreeze_head(model, layout)
        return model

    def param_groups(self, model, layout, lr, config):
        """Every parameter that will ever train, each block at its decayed rate (frozen ones have no grad yet);
        the new task head at the head's rate."""
        n = layout.num_blocks
        emb = layout.embedding_prefixes
        head_ids = self.head_parameter_ids(layout)
        groups: dict[float, list] = {}
        head = []
        for name, p in model.named_parameters():
            if id(p) in head_ids:
                head.append(p)
                continue
            depth = 0  # post-block modules (a final norm): full rate; a pooler is part of the new head
            for i in range(n):
                if name.startswith(layout.block_prefix(i)):
                    depth = n - 1 - i
                    break
            else:
                if name.startswith(emb):
                    depth = n
            groups.setdefault(lr * config.layer_lr_decay**depth, []).append(p)
        body = [{"params": params, "lr": rate} for rate, params in sorted(groups.items(), reverse=True)]
        return body + split_head_group(head, head_ids, lr, self.head_lr(config))

    def steps_note(self, layout, config, steps):
        """A run of fewer optimizer steps than stages ends before its last stage: its lowest blocks and the embeddings
        never train, though the run is said to train every weight in stages."""
        stages = _Unfreezing(None, layout).stages
        if steps < 1 or steps >= stages:
            return None
        reached = _Unfreezing.stage_at(steps - 1, steps, stages)
        lower = layout.num_blocks - min(reached, layout.num_blocks)
        never = f"its lowest {lower} block{'s' if lower != 1 else ''} and the embeddings" if lower else "the embeddings"
        return (f"gradual unfreezing made {steps} optimizer step{'s' if steps != 1 else ''}, fewer than its {stages} "
                f"stages, and stopped at stage {reached}: {never} never trained; give it at least {stages} steps "
                "(more --epochs or data, or a smaller --batch-size)")

    def callbacks(self, model, layout, config):
        return [_callback_class()(model, layout)]


@functools.cache
def _callback_class() -> type:
    from transformers import TrainerCallback

    return type("GradualUnfreezing", (_Unfreezing, TrainerCallback), {})
