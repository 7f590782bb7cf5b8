"""The one protocol every adaptation strategy implements, and the registry that names them.

A strategy decides *what trains*: it freezes or wraps the model (``prepare``), may ask the training
loop for parameter groups or callbacks, says how deep its frozen prefix goes (so the frozen layers
can be computed once and cached), and knows how its result is saved. Training itself is shared.

A new strategy is one module in this package::

    @register_strategy
    class MyStrategy(Strategy):
        name = "mine"
        summary = "what trains, in one line"
        default_lr = 1e-4
        def prepare(self, model, layout, config): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from tunelab.errors import StrategyError
from tunelab.models import Layout

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}': use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()


class Strategy:
    name: ClassVar[str]
    summary: ClassVar[str]
    default_lr: ClassVar[float]
    kind: ClassVar[str] = "transfer"  # "transfer" (frozen body / PEFT) or "full"
    tasks: ClassVar[tuple[str, ...]] = ("classification", "causal-lm")
    artifact_format: ClassVar[str] = "transformers"

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise StrategyError(
                f"strategy '{self.name}' does not apply to {task}: it supports {', '.join(self.tasks)}"
            )

    def prepare(self, model: nn.Module, layout: Layout, config: Any) -> nn.Module:
        """Freeze / wrap ``model`` so that exactly this strategy's parameters train; return the model to train."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module, lr: float, config: Any) -> list[dict[str, Any]]:
        """Optimizer parameter groups (default: every trainable parameter at ``lr``)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    def frozen_blocks(self, model: nn.Module, layout: Layout, config: Any) -> int | None:
        """How many bottom blocks (with the embeddings) stay frozen for the whole run, or ``None``
        when the embeddings train. The training loop may cache the output of that prefix."""
        return None

    def callbacks(self, model: nn.Module, layout: Layout, config: Any) -> list[Any]:
        return []

    def save(self, model: nn.Module, out_dir: Path, *, merge: bool = False) -> None:
        """Write a folder that plain transformers (or peft) loads."""
        model.save_pretrained(out_dir, safe_serialization=True)


# ----------------------------------------------------------------------------- helpers


def freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze_head(model: nn.Module, layout: Layout) -> None:
    """The new task head always trains (for causal LM the LM head is pre-trained and stays as asked)."""
    for name, p in model.named_parameters():
        if name.startswith(layout.head_prefixes) and not name.startswith("lm_head"):
            p.requires_grad_(True)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, counted as peft counts them (tied weights once)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total
