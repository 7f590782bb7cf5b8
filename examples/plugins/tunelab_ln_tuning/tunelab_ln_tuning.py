"""LayerNorm tuning (Qi et al., 2022, "Parameter-efficient tuning on layer normalization for pre-trained
language models"): only the normalisation layers' scales and shifts of the blocks train, with the task head.

An example of a strategy that lives outside tunelab: it implements :class:`tunelab.strategies.Strategy` and is
declared under the ``tunelab.strategies`` entry-point group in this package's ``pyproject.toml``. Once installed
(``pip install -e examples/plugins/tunelab_ln_tuning``), every tunelab command knows it by name.
"""

from __future__ import annotations

from tunelab.errors import StrategyError
from tunelab.strategies import Kind, Strategy
from tunelab.strategies.base import and_head, freeze_all, unfreeze_head


def _is_norm(module) -> bool:
    """LayerNorm, RMSNorm (Llama's, Gemma's, ...): any module whose class says it normalises."""
    return type(module).__name__.endswith(("LayerNorm", "RMSNorm", "Norm"))


class LayerNormTuning(Strategy):
    name = "ln-tuning"
    summary = "LayerNorm tuning: only the blocks' normalisation scales and shifts (and the task head) train"
    default_lr = 3e-3  # like BitFit: a handful of per-feature parameters take large steps
    kind = Kind.PEFT
    order = 32
    # where the hand-written advice before training expects it, (tier, place) per regime: beside BitFit
    advice_tiers = {"few-near": (1, 1), "few-far": (1, 2), "plenty-far": (2, 1), "otherwise": (1, 2)}

    def describe(self, config, task, *, num_blocks=None):
        return f"only the normalisation layers' scales and shifts in the blocks{and_head(task, config)}"

    def prepare(self, model, layout, config):
        freeze_all(model)
        norms = [m for m in layout.blocks.modules() if _is_norm(m)]
        if not norms:
            raise StrategyError(f"ln-tuning found no normalisation layer in this {layout.family} model's blocks; use bitfit or lora")
        for module in norms:
            for p in module.parameters():
                p.requires_grad_(True)
        unfreeze_head(model, layout)
        return model
