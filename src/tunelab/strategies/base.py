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
import math
import numbers
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

from tunelab.errors import StrategyError, as_flags, setting

if TYPE_CHECKING:  # annotations only: the registry stays cheap to import for reports and listings
    from torch import nn

    from tunelab.models import Layout

STRATEGIES: dict[str, type[Strategy]] = {}

HEAD_LR = 2e-3
"""The learning rate of a new task head, whatever trains below it: the one place it is set (``--head-lr``
overrides it). A freshly initialised classifier needs a larger step than pre-trained weights; trained at a
body's rate (LoRA's then 5e-4, BitFit's then 1e-3) it lagged far behind the frozen-body head (issue 15: on bbc-news,
1,500 labels, 2 epochs, head 0.83 test accuracy, LoRA 0.62, BitFit 0.48)."""

ADVICE_REGIMES = ("few-near", "few-far", "plenty-far", "otherwise")
"""The data regimes of the hand-written advice before training (:mod:`tunelab.advice.recommend`, for a causal LM
or without a calibration file): few labels on a close or moderate domain, few on a far domain, plenty on a far
domain, and every other case. Each strategy says where it stands in each (:attr:`Strategy.advice_tiers`)."""

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


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0


#: What every registered strategy class must define, with the test its value must pass and the type that test
#: expects (the rest of the protocol has defaults).
_REQUIRED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty str"),
    "summary": (lambda v: isinstance(v, str), "a str"),
    "default_lr": (_is_positive_number, "a positive number"),
    "kind": (lambda v: isinstance(v, Kind), "a Kind (Kind.FROZEN, Kind.PEFT, Kind.STAGED or Kind.FULL)"),
    "order": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an int"),
}

#: The methods the base class leaves to each strategy: training calls ``prepare``; the model card and the
#: comparison's report call ``describe``.
_REQUIRED_METHODS = ("prepare", "describe")


def registration_problem(cls: Any) -> str | None:
    """Why ``cls`` cannot be registered as a strategy, in one line naming every problem; ``None`` when it can.

    The one check of both ways in, :func:`register_strategy` and the entry points (:mod:`.plugins`). The rest of
    tunelab reads every registered class without asking: listings sort by ``order`` and print ``kind.value``, the
    model card and the report call ``describe``, ``tunelab train`` reads every strategy's ``options`` off the config.
    Checked here, one broken strategy is refused where it is declared instead of breaking the commands of all the
    others. The same class registered again (a module reloaded, a notebook cell run again) replaces itself; a name
    another class holds, a built-in's included, is refused."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        what = getattr(cls, "__qualname__", None) or f"a {type(cls).__name__} object"
        return f"{what} is not a subclass of tunelab.strategies.Strategy"
    missing = [attr for attr in _REQUIRED if not hasattr(cls, attr)]
    missing += [f"{m}()" for m in _REQUIRED_METHODS if getattr(cls, m) is getattr(Strategy, m)]
    problems = [f"does not define {', '.join(missing)}"] if missing else []
    for attr, (fits, expected) in _REQUIRED.items():
        if hasattr(cls, attr) and not fits(getattr(cls, attr)):
            problems.append(f"has {attr} = {getattr(cls, attr)!r}, expected {expected}")
    problems += _options_problems(cls.options)
    name = getattr(cls, "name", None)
    taken = STRATEGIES.get(name) if _REQUIRED["name"][0](name) else None
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        problems.append(f"has the name '{name}', already the strategy {taken.__module__}.{taken.__qualname__}: "
                        "choose another name")
    return f"strategy class {cls.__qualname__} {'; '.join(problems)}" if problems else None


def _options_problems(options: Any) -> list[str]:
    """What is wrong with the shape of a strategy's :attr:`Strategy.options` (names of TrainConfig fields; that each
    is one, the config checks when the strategy is chosen: :meth:`tunelab.config.TrainConfig.problems`)."""
    if not (isinstance(options, (tuple, list)) and all(isinstance(o, str) for o in options)):
        return [f"has options = {options!r}, expected a tuple of TrainConfig field names"]
    return []


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Register ``cls`` under its ``name`` (a class decorator); return it.

    A class that :func:`registration_problem` refuses raises ``TypeError`` with that line: in the caller's own code
    it is a programming error, and the entry points turn the same line into a warning that leaves the plugin out."""
    problem = registration_problem(cls)
    if problem:
        raise TypeError(problem)
    STRATEGIES[cls.name] = cls
    return cls


def did_you_mean(name: Any) -> str:
    """`` (did you mean lora?)`` for a strategy name one typo away from a registered one, else ""."""
    import difflib

    close = difflib.get_close_matches(str(name), strategy_names(), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}'{did_you_mean(name)}: use one of {', '.join(strategy_names())}")
    return STRATEGIES[name]()


def strategy_names() -> list[str]:
    """The registered strategies in listing order (fewest trained weights first)."""
    return sorted(STRATEGIES, key=lambda name: (STRATEGIES[name].order, name))


def named_strategies(names: str | Iterable[str]) -> list[str]:
    """The strategy names a caller gave: a list as it is, or one string of comma-separated names as ``--strategies``
    takes it (``compare(base, "head,lora")`` was spelled letter by letter: "unknown h, e, a, d, ,, l, ...").

    >>> named_strategies("head, lora"), named_strategies(["full"])
    (['head', 'lora'], ['full'])
    """
    if isinstance(names, str):
        return [name.strip() for name in names.split(",") if name.strip()]
    wrong = names if not isinstance(names, Iterable) else next((n for n in names if not isinstance(n, str)), None)
    if wrong is not None:  # compare(base, 42) failed in list(): "'int' object is not iterable"
        raise StrategyError(f"strategies are names, a list of them or one string of comma-separated names "
                            f"(\"head,lora\"); got a {type(wrong).__name__}: {wrong!r:.60}")
    return list(names)


def default_comparison(task: str | None = None) -> list[str]:
    """The strategies ``tunelab compare`` trains when none are named (:attr:`Strategy.compared_by_default`), in
    listing order; with ``task``, only those that apply to it (``head`` does not train a causal LM)."""
    return [n for n in strategy_names() if STRATEGIES[n].compared_by_default and (task is None or task in STRATEGIES[n].tasks)]


def as_loaded() -> str:
    """The name of a strategy that leaves the model as loaded (:attr:`Strategy.leaves_model_as_loaded`)."""
    return next(n for n in strategy_names() if STRATEGIES[n].leaves_model_as_loaded)


def advice_tiers(regime: str, names: list[str]) -> list[list[str]]:
    """``names`` in the tiers that the strategies declare for ``regime`` (:attr:`Strategy.advice_tiers`), best tier
    first and each in its declared order; the empty tiers are left out, and the names without a place there (a plugin,
    an unknown name) make a last tier, in the order given."""
    if regime not in ADVICE_REGIMES:
        raise ValueError(f"unknown advice regime {regime!r}: one of {', '.join(ADVICE_REGIMES)}")
    placed: dict[int, list[tuple[int, str]]] = {}
    rest = []
    for name in names:
        where = STRATEGIES[name].advice_tiers.get(regime) if name in STRATEGIES else None
        if where is None:
            rest.append(name)
        else:
            placed.setdefault(where[0], []).append((where[1], name))
    tiers = [[n for _, n in sorted(placed[t])] for t in sorted(placed)]
    return [*tiers, rest] if rest else tiers


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
    """The :class:`~tunelab.config.TrainConfig` fields this strategy reads (beyond the shared ones); a plugin's own
    settings, which are not fields, go in ``TrainConfig.extra``."""
    extra_options: ClassVar[tuple[str, ...] | None] = None
    """The :attr:`~tunelab.config.TrainConfig.extra` keys it reads (``--extra KEY=VALUE``); ``None``: not declared (a
    plugin's, which may read any). A list the class declares itself (not inherited: a plugin's subclass of a built-in
    may read keys of its own) lets a run say that another key is ignored (:func:`unused_options`)."""
    compared_by_default: ClassVar[bool] = False
    """Whether ``tunelab compare`` (and the demo) trains it when no ``--strategies`` are named: one of each kind
    (:func:`default_comparison`)."""
    advice_tiers: ClassVar[dict[str, tuple[int, int]]] = {}
    """Where the hand-written advice before training expects it to stand, per regime of :data:`ADVICE_REGIMES`:
    ``(tier, place)``. Strategies of one tier are expected to reach about the same accuracy (tier 0 the best); the
    advice takes the cheapest of the first tier that fits, or, with costs not timed, the first ``place``. A strategy
    without an entry for a regime stands after every tier there."""
    leaves_model_as_loaded: ClassVar[bool] = False
    """Whether :meth:`prepare` leaves every weight as loaded and trainable, nothing wrapped: a run prepared only to read
    the model and its data (the shared frozen-layer cache) is prepared with such a strategy (:func:`as_loaded`)."""
    can_merge: ClassVar[bool] = False
    """Whether ``--merge`` applies: the trained adapter can be folded into the base weights."""
    tasks: ClassVar[tuple[str, ...]] = ("classification", "causal-lm")
    artifact_format: ClassVar[str] = "transformers"
    frozen_base: ClassVar[bool] = False
    """Whether every pre-trained weight stays frozen for the whole run (``--base-dtype bf16`` may hold them in bfloat16)."""
    fixed_trainable_set: ClassVar[bool] = True
    """Whether the weights that train stay the same for the whole run (several processes need it: data
    parallel training syncs the gradients of the weights trainable when it starts)."""
    adapts_modules: ClassVar[bool] = False
    """Whether it adds adapters to dense projections, the modules ``--lora-target-modules`` names (LoRA, IA3): weights
    held otherwise (a mixture of experts' fused expert tensors) stay as pre-trained unless it reaches them too, and a
    run says so (:meth:`left_pretrained`)."""
    needs_blocks: ClassVar[bool] = False
    """Whether it freezes, adapts or schedules the model by transformer block (so it cannot apply to a body whose
    layers are not one list of blocks: :meth:`tunelab.models.Layout.blocks_problem`)."""
    unshardable: ClassVar[str | None] = None
    """Why this strategy cannot run when FSDP or DeepSpeed ZeRO-3 shard the weights across processes (its
    artifact is not written from the gathered state dict :meth:`save` receives), or ``None`` when it can."""

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            fitting = [n for n in strategy_names() if task in STRATEGIES[n].tasks]
            raise StrategyError(
                f"strategy '{self.name}' does not apply to {task}: it supports {', '.join(self.tasks)}"
                + (f"; for {task} use one of {', '.join(fitting)}" if fitting else "")
            )

    def prepare(self, model: nn.Module, layout: Layout, config: Any) -> nn.Module:
        """Freeze / wrap ``model`` so that exactly this strategy's parameters train; return the model to train."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module, layout: Layout, lr: float, config: Any) -> list[dict[str, Any]]:
        """Optimizer parameter groups: the new task head at :meth:`head_lr`, every other trainable
        parameter at ``lr`` (the strategy's rate)."""
        return split_head_group([p for p in model.parameters() if p.requires_grad], self.head_parameter_ids(layout),
                                lr, self.head_lr(config))

    def head_lr(self, config: Any) -> float:
        """The learning rate of the new task head: ``--head-lr``, else :data:`HEAD_LR`."""
        value = getattr(config, "head_lr", None)
        return float(value) if value is not None else HEAD_LR

    def head_parameter_ids(self, layout: Layout) -> set[int]:
        """``id()`` of every parameter of the new task head (none for causal LM, whose LM head is pre-trained).

        Found through the model's modules, not names: inside a peft model the head's module is replaced in
        place by peft's ``modules_to_save`` wrapper, whose trained copy is then what the head's module holds."""
        ids: set[int] = set()
        for name in layout.new_head_modules:
            ids.update(id(p) for p in layout.model.get_submodule(name).parameters())
        return ids

    def frozen_blocks(self, model: nn.Module, layout: Layout, config: Any) -> int | None:
        """How many bottom blocks (with the embeddings) stay frozen for the whole run, or ``None``
        when the embeddings train. The training loop may cache the output of that prefix."""
        return None

    def frozen_prefix(self, model: nn.Module | None, layout: Any, config: Any) -> int | None:
        """:meth:`frozen_blocks` as the frozen-layer cache takes it: at most ``layout.num_blocks`` (more means every
        block: a plugin counting ALBERT's 12 layers over its one shared block), ``None`` where no block stays frozen."""
        split = self.frozen_blocks(model, layout, config)
        return None if split is None or split < 1 else min(split, layout.num_blocks)

    def callbacks(self, model: nn.Module, layout: Layout, config: Any) -> list[Any]:
        return []

    def save(self, model: nn.Module, out_dir: Path, *, merge: bool = False, state_dict: dict | None = None) -> None:
        """Write a folder that plain transformers (or peft) loads. ``state_dict``: the model's whole weights
        gathered from every process when FSDP or ZeRO-3 shard them (``model`` then holds only a shard)."""
        self.check_merge(merge)
        model.save_pretrained(out_dir, safe_serialization=True, state_dict=state_dict)

    # ------------------------------------------------------------------ what it says about itself

    def describe(self, config: Any, task: str, *, num_blocks: int | None = None) -> str:
        """What trains in a run of ``config`` on ``task``, with that run's own values (``num_blocks``: the
        model's depth, when known). Used by the report and the model card."""
        raise NotImplementedError

    def resolved_options(self, config: Any, num_blocks: int) -> dict[str, Any]:
        """Each of its :attr:`options` as a run of ``config`` on a model of ``num_blocks`` blocks takes it: an option left
        to its default (``None``) resolved from the model. A comparison's reuse compares these, so that a run recorded
        with a value (``--layers 2``, the default before it was None) is the same run as one asked with the default
        that resolves to that value on its model. Default: each option as given."""
        return {name: getattr(config, name) for name in self.options}

    def adds(self, config: Any) -> str | None:
        """What this strategy adds to the model's architecture (besides a new task head), or ``None``."""
        return None

    def positions_added(self, config: Any) -> int:
        """How many positions this strategy puts before every input (a soft prompt's virtual tokens): they count
        against the model's position limit, so the longest input is that much shorter. Default: none."""
        return 0

    def trains_only_head(self, config: Any) -> bool:
        """Whether no transformer block trains: the frozen prefix covers every block, at any depth.

        Answered from :meth:`frozen_blocks` without a model (which, like ``compare``'s cache sharing,
        only reads ``layout.num_blocks``), for settings such as the oneDNN cache taken before loading."""
        depth = 1_000  # deeper than any model: a prefix that covers it covers them all
        return self.frozen_blocks(None, SimpleNamespace(num_blocks=depth), config) == depth

    def freezes_prefix(self, config: Any) -> bool:
        """Whether a run of ``config`` keeps the embeddings and at least one block frozen (the frozen-layer cache
        applies), answered without a model like :meth:`trains_only_head`."""
        return bool(self.frozen_prefix(None, SimpleNamespace(num_blocks=1_000), config))

    def widen(self, model: nn.Module, layout: Layout, config: Any) -> bool:
        """Make the trainable set the widest this strategy reaches during a run (a schedule that unfreezes
        over time); return whether that changed it. The estimate measures memory there. Default: the set
        chosen by :meth:`prepare` never changes."""
        return False

    def steps_note(self, layout: Layout, config: Any, steps: int) -> str | None:
        """One line for the user when a run of ``steps`` optimizer steps was too short for what this strategy
        schedules over its steps (a schedule that never reached its last stage); else None (the default)."""
        return None

    def left_pretrained(self, layout: Layout, config: Any) -> str | None:
        """One line for the user when a run of ``config`` leaves pre-trained weights that this kind of adaptation is meant
        to reach (a mixture of experts' fused experts, for an adapter of dense projections); else None."""
        return layout.unadaptable_note(self.name) if self.adapts_modules else None

    def check_merge(self, merge: bool) -> None:
        """Refuse ``--merge`` for a strategy that has nothing to merge (config validation says it first)."""
        if merge and not self.can_merge:
            raise StrategyError(merge_problem(self.name))


def options_not_read(name: str) -> set[str]:
    """The strategy options (:attr:`Strategy.options`) of other strategies that strategy ``name`` does not read: a run
    of it trains the same whatever their values."""
    own = set(STRATEGIES[name].options) if name in STRATEGIES else set()
    return {o for cls in STRATEGIES.values() for o in cls.options} - own


def unused_options(config: Any, read_elsewhere: tuple[str, ...] = ()) -> list[str]:
    """The strategy options (another strategy's :attr:`Strategy.options`) that ``config`` sets away from their default
    and its own strategy does not read, as flags (``--use-dora``), then the ``--extra`` keys outside
    :meth:`~tunelab.config.TrainConfig.extra_in_effect` (neither its strategy, where it declares
    :attr:`Strategy.extra_options`, nor tunelab reads them: ``--extra rank``) or ``read_elsewhere``: a single run would
    silently ignore them."""
    import dataclasses

    if not isinstance(config.strategy, str) or config.strategy not in STRATEGIES:  # the options' check says so
        return []
    others = options_not_read(config.strategy)
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    # an option that is no field is refused at registration, but a class put in STRATEGIES by hand may still name one
    flags = sorted(setting(o) for o in others if o in defaults and getattr(config, o) != defaults[o])
    kept = config.extra_in_effect()
    extra = [f"--extra {k}" if as_flags() else f"extra[{k!r}]" for k in sorted(config.extra or {})
             if k not in kept and k not in read_elsewhere]
    return flags + extra


def extra_keys_read(name: Any) -> tuple[str, ...] | None:
    """The :attr:`~tunelab.config.TrainConfig.extra` keys strategy ``name`` declares it reads (its class's own
    :attr:`Strategy.extra_options`: a subclass may read keys of its own), ``None`` where it declares none or is unknown
    (it may read any). :meth:`~tunelab.config.TrainConfig.extra_in_effect` adds tunelab's own keys."""
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    return None if cls is None else vars(cls).get("extra_options")


def merge_problem(name: str) -> str:
    """The one line that says ``--merge`` does not apply to strategy ``name``, and where it does."""
    mergeable = " and ".join(n for n in strategy_names() if STRATEGIES[n].can_merge)
    merge = setting("merge", True)
    return f"{merge} applies to {mergeable} adapters, not to '{name}' (it leaves no adapter to fold into the weights): drop {merge}"


def blocks_phrase(count: int, num_blocks: int | None, *, top: bool = True) -> str:
    """'the top 2 of 6 blocks' (or 'the top 2 blocks' when the depth is unknown; :func:`all_blocks` when it is all)."""
    if top and num_blocks is not None and count >= num_blocks:
        return all_blocks(num_blocks)
    where = "top" if top else "lower"
    of = f" of {num_blocks}" if num_blocks is not None else ""
    return f"the {where} {count}{of} block{'s' if count != 1 or of else ''}"


def all_blocks(num_blocks: int | None) -> str:
    """'all 6 blocks', 'the one block' (ALBERT's shared block), or 'every block' when the depth is unknown."""
    if num_blocks is None:
        return "every block"
    return "the one block" if num_blocks == 1 else f"all {num_blocks} blocks"


def head_rate(config: Any) -> str:
    """'at the head learning rate, 0.002' (``--head-lr`` or :data:`HEAD_LR`)."""
    value = getattr(config, "head_lr", None)
    return f"at the head learning rate, {value if value is not None else HEAD_LR:g}"


def and_head(task: str, config: Any = None) -> str:
    """' and the new task head (at the head learning rate, 0.002)' for classification (causal LM keeps its
    pre-trained LM head)."""
    return f" and the new task head ({head_rate(config)})" if task == "classification" else ""


def head_trains_too(task: str, config: Any = None) -> str:
    """'; the new task head trains in full, at the head learning rate, 0.002' for classification, after an
    adapter's description."""
    return f"; the new task head trains in full, {head_rate(config)}" if task == "classification" else ""


def split_head_group(params: list, head_ids: set[int], lr: float, head_lr: float) -> list[dict[str, Any]]:
    """``params`` as optimizer groups: those in ``head_ids`` at ``head_lr`` (marked ``"head": True``), the
    rest at ``lr``; an empty group is left out."""
    head = [p for p in params if id(p) in head_ids]
    body = [p for p in params if id(p) not in head_ids]
    groups = [{"params": body, "lr": lr}] if body else []
    if head:
        groups.append({"params": head, "lr": head_lr, "head": True})
    return groups


# ----------------------------------------------------------------------------- helpers


def freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze_head(model: nn.Module, layout: Layout) -> None:
    """The new task head (with the pooler above the blocks, :attr:`Layout.new_head_modules`) always trains (for
    causal LM the LM head is pre-trained and stays as asked)."""
    prefixes = tuple(f"{m}." for m in layout.new_head_modules)
    for name, p in model.named_parameters():
        if name.startswith(prefixes) and not name.startswith("lm_head"):
            p.requires_grad_(True)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, counted as peft counts them (tied weights once), except that a module peft
    trains as a copy (``modules_to_save``: the new task head) counts once, as the saved model holds it: peft's total
    also counts the frozen original beside the copy, so a PEFT strategy's share of a model with a large head (a
    pooler) read lower than ``head``'s, which trains a subset of its weights."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        originals = {id(p): p for m in model.modules() if hasattr(m, "modules_to_save") and hasattr(m, "original_module")
                     for p in m.original_module.parameters()}
        return int(trainable), int(total) - sum(getattr(p, "ds_numel", None) or p.numel() for p in originals.values())
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        numel = getattr(p, "ds_numel", None) or p.numel()  # DeepSpeed ZeRO-3 leaves an empty placeholder
        total += numel
        if p.requires_grad:
            trainable += numel
    return trainable, total
