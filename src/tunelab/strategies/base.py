"""The one protocol every adaptation strategy implements, and the registry that names them.

A strategy decides *what trains*: it freezes or wraps the model (``prepare``), may ask the training
loop for parameter groups or callbacks, says how deep its frozen prefix goes (so the frozen layers
can be computed once and cached), and knows how its result is saved. Training itself is shared.

It also says everything the rest of tunelab needs to know about it, so that no code outside this
package names a strategy: its :class:`Kind` (the report's "approach"), its place in listings
(``order``), the config fields it reads (``options``), whether ``--merge`` applies (``can_merge``),
what trains with a run's own values (``describe``), what it adds to the architecture
(``adds``), whether only the head trains (``trains_only_head``) and the widest trainable set a
schedule reaches (``widen``, for the estimate).

A new strategy is one module in this package::

    @register_strategy
    class MyStrategy(Strategy):
        name = "mine"
        summary = "what trains, in one line"
        default_lr = 1e-4
        kind = Kind.PEFT
        order = 45
        def prepare(self, model, layout, config): ...
        def describe(self, config, task, *, num_blocks=None): ...
"""

from __future__ import annotations

import enum
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

from tunelab.errors import StrategyError

if TYPE_CHECKING:  # annotations only: the registry stays cheap to import for reports and listings
    from torch import nn

    from tunelab.models import Layout

STRATEGIES: dict[str, type[Strategy]] = {}

#: What every registered strategy class must define (the rest of the protocol has defaults).
_REQUIRED = ("name", "summary", "default_lr", "kind", "order")


class Kind(enum.Enum):
    """How much of the pre-trained model a strategy trains: a short value (``tunelab strategies``) and a
    ``label``, the report's "approach"."""

    FROZEN = "frozen"
    PEFT = "peft"
    STAGED = "staged"
    FULL = "full"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]

    @property
    def trains_all_weights(self) -> bool:
        """Whether every weight of the model trains by the end of the run (not a frozen-body / PEFT strategy)."""
        return self in (Kind.STAGED, Kind.FULL)


_KIND_LABELS = {
    Kind.FROZEN: "transfer learning (frozen layers)",
    Kind.PEFT: "transfer learning (PEFT)",
    Kind.STAGED: "fine-tuning, unfrozen in stages",
    Kind.FULL: "full fine-tuning",
}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    missing = [attr for attr in _REQUIRED if not hasattr(cls, attr)]
    if missing:
        raise TypeError(f"strategy class {cls.__name__} does not define {', '.join(missing)}")
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}': use one of {', '.join(strategy_names())}")
    return STRATEGIES[name]()


def strategy_names() -> list[str]:
    """The registered strategies in listing order (fewest trained weights first)."""
    return sorted(STRATEGIES, key=lambda name: (STRATEGIES[name].order, name))


def strategy_kind(name: str) -> Kind | None:
    """The :class:`Kind` of the strategy called ``name``; ``None`` for a name no strategy has (an old record)."""
    cls = STRATEGIES.get(name)
    return cls.kind if cls is not None else None


class Strategy:
    name: ClassVar[str]
    summary: ClassVar[str]
    """What trains, in one line, without a run's values (``tunelab strategies``)."""
    default_lr: ClassVar[float]
    kind: ClassVar[Kind]
    order: ClassVar[int]
    """Place in listings, reports and plots: fewest trained weights first."""
    options: ClassVar[tuple[str, ...]] = ()
    """The :class:`~tunelab.config.TrainConfig` fields this strategy reads (beyond the shared ones)."""
    can_merge: ClassVar[bool] = False
    """Whether ``--merge`` applies: the trained adapter can be folded into the base weights."""
    tasks: ClassVar[tuple[str, ...]] = ("classification", "causal-lm")
    artifact_format: ClassVar[str] = "transformers"
    frozen_base: ClassVar[bool] = False
    """Whether every pre-trained weight stays frozen for the whole run (``--base-dtype bf16`` may hold them in bfloat16)."""
    fixed_trainable_set: ClassVar[bool] = True
    """Whether the weights that train stay the same for the whole run (several processes need it: data
    parallel training syncs the gradients of the weights trainable when it starts)."""

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
        self.check_merge(merge)
        model.save_pretrained(out_dir, safe_serialization=True)

    # ------------------------------------------------------------------ what it says about itself

    def describe(self, config: Any, task: str, *, num_blocks: int | None = None) -> str:
        """What trains in a run of ``config`` on ``task``, with that run's own values (``num_blocks``: the
        model's depth, when known). Used by the report and the model card."""
        raise NotImplementedError

    def adds(self, config: Any) -> str | None:
        """What this strategy adds to the model's architecture (besides a new task head), or ``None``."""
        return None

    def trains_only_head(self, config: Any) -> bool:
        """Whether no transformer block trains: the frozen prefix covers every block, at any depth.

        Answered from :meth:`frozen_blocks` without a model (which, like ``compare``'s cache sharing,
        only reads ``layout.num_blocks``), for settings such as the oneDNN cache taken before loading."""
        depth = 1_000  # deeper than any model: a prefix that covers it covers them all
        return self.frozen_blocks(None, SimpleNamespace(num_blocks=depth), config) == depth

    def freezes_prefix(self, config: Any) -> bool:
        """Whether a run of ``config`` keeps the embeddings and at least one block frozen (the frozen-layer cache
        applies), answered without a model like :meth:`trains_only_head`."""
        return bool(self.frozen_blocks(None, SimpleNamespace(num_blocks=1_000), config))

    def widen(self, model: nn.Module, layout: Layout, config: Any) -> bool:
        """Make the trainable set the widest this strategy reaches during a run (a schedule that unfreezes
        over time); return whether that changed it. The estimate measures memory there. Default: the set
        chosen by :meth:`prepare` never changes."""
        return False

    def check_merge(self, merge: bool) -> None:
        """Refuse ``--merge`` for a strategy that has nothing to merge (config validation says it first)."""
        if merge and not self.can_merge:
            raise StrategyError(merge_problem(self.name))


def merge_problem(name: str) -> str:
    """The one line that says ``--merge`` does not apply to strategy ``name``, and where it does."""
    mergeable = " and ".join(n for n in strategy_names() if STRATEGIES[n].can_merge)
    return f"--merge applies to {mergeable} adapters, not to '{name}' (it leaves no adapter to fold into the weights): drop --merge"


def blocks_phrase(count: int, num_blocks: int | None, *, top: bool = True) -> str:
    """'the top 2 of 6 blocks' (or 'the top 2 blocks' when the depth is unknown)."""
    where = "top" if top else "lower"
    of = f" of {num_blocks}" if num_blocks is not None else ""
    return f"the {where} {count}{of} block{'s' if count != 1 or of else ''}"


def and_head(task: str) -> str:
    """' and the new task head' for classification (causal LM keeps its pre-trained LM head)."""
    return " and the new task head" if task == "classification" else ""


def head_trains_too(task: str) -> str:
    """'; the new task head trains in full' for classification, after an adapter's description."""
    return "; the new task head trains in full" if task == "classification" else ""


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
