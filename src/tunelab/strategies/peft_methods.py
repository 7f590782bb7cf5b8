"""Strategies the peft library implements: thin wrappers over its configs.

Target modules are found from the layout (BERT: ``query``/``key``/``value``/``dense``; Llama:
``q_proj``/``k_proj``/``v_proj``/``o_proj`` and the MLP), and for classification the new head is
listed in ``modules_to_save`` so it trains and is saved with the adapter.
"""

from __future__ import annotations

import re
from pathlib import Path

from tunelab.errors import StrategyError
from tunelab.strategies.base import Kind, Strategy, blocks_phrase, head_trains_too, register_strategy

_TARGETS = {
    "bert": {"lora": ["query", "key", "value", "dense"], "ia3": ["key", "value", "output.dense"], "ia3_ff": ["output.dense"]},
    "llama": {
        "lora": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "ia3": ["k_proj", "v_proj", "down_proj"],
        "ia3_ff": ["down_proj"],
    },
}


def _task_type(config_task: str):
    from peft import TaskType

    return TaskType.SEQ_CLS if config_task == "classification" else TaskType.CAUSAL_LM


def _layers_to_transform(layout, top: int | None) -> list[int] | None:
    if top is None:
        return None
    if top > layout.num_blocks:
        raise StrategyError(f"--lora-layers {top} is more than the model's {layout.num_blocks} blocks")
    return list(range(layout.num_blocks - top, layout.num_blocks))


def _modules_to_save(layout, task: str) -> list[str] | None:
    if task != "classification":
        return None
    return [h for h in layout.head_prefixes if h != "lm_head"] or None


def _block_regex(layout, top: int | None, names: list[str]) -> str:
    """A peft ``target_modules`` regex matching ``names`` inside the blocks (the top ``top`` only)."""
    layers = _layers_to_transform(layout, top)
    index_re = "|".join(map(str, layers)) if layers else r"\d+"
    names_re = "|".join(n.replace(".", r"\.") for n in names)
    return rf".*{re.escape(layout.blocks_path)}\.({index_re})\..*\.({names_re})$"


def _scope(config, num_blocks: int | None) -> str:
    """Which blocks an adapter reaches: every block, or the top ``--lora-layers``."""
    top = config.lora_layers
    if top is None:
        return f"all {num_blocks} blocks" if num_blocks is not None else "every block"
    return blocks_phrase(top, num_blocks)


class _PeftStrategy(Strategy):
    artifact_format = "peft"
    kind = Kind.PEFT

    def _peft_config(self, layout, config, task):
        raise NotImplementedError

    def prepare(self, model, layout, config):
        from peft import get_peft_model

        task = config.task
        peft_config = self._peft_config(layout, config, task)
        model = get_peft_model(model, peft_config)
        return model

    def save(self, model, out_dir: Path, *, merge: bool = False) -> None:
        self.check_merge(merge)
        model.save_pretrained(out_dir, safe_serialization=True)
        if merge:
            merged = model.merge_and_unload()
            merged.save_pretrained(Path(out_dir) / "merged", safe_serialization=True)

    def frozen_blocks(self, model, layout, config):
        top = getattr(config, "lora_layers", None)
        return None if top is None else layout.num_blocks - top


@register_strategy
class LoRA(_PeftStrategy):
    name = "lora"
    summary = "LoRA (peft): low-rank adapters on attention and MLP projections; body frozen"
    default_lr = 5e-4
    order = 60
    options = ("lora_r", "lora_alpha", "lora_dropout", "lora_layers")
    can_merge = True

    def describe(self, config, task, *, num_blocks=None):
        return (
            f"LoRA low-rank adapters of rank {config.lora_r} (alpha {config.lora_alpha}, dropout {config.lora_dropout:g}) "
            f"on the attention and MLP projections of {_scope(config, num_blocks)}{head_trains_too(task)}; the base model is frozen"
        )

    def adds(self, config):
        return f"LoRA adapters (r={config.lora_r}, mergeable into the weights)"

    def _peft_config(self, layout, config, task):
        from peft import LoraConfig

        return LoraConfig(
            task_type=_task_type(task),
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            # only projections inside the blocks (BERT's pooler is also called 'dense')
            target_modules=_block_regex(layout, config.lora_layers, _TARGETS[layout.family]["lora"]),
            modules_to_save=_modules_to_save(layout, task),
        )


@register_strategy
class IA3(_PeftStrategy):
    name = "ia3"
    summary = "IA3 (peft): learned rescaling vectors on keys, values and feed-forward; body frozen"
    default_lr = 3e-3
    order = 50
    options = ("lora_layers",)
    can_merge = True

    def describe(self, config, task, *, num_blocks=None):
        return (
            f"IA3 scaling vectors on the attention keys and values and the feed-forward output of "
            f"{_scope(config, num_blocks)}{head_trains_too(task)}; the base model is frozen"
        )

    def adds(self, config):
        return "IA3 scaling vectors (mergeable into the weights)"

    def _peft_config(self, layout, config, task):
        from peft import IA3Config

        top = config.lora_layers
        if layout.family == "bert":
            # BERT has two 'output.dense' per block: rescale the feed-forward one (block.output.dense)
            layers = _layers_to_transform(layout, top)
            index_re = "|".join(map(str, layers)) if layers else r"\d+"
            block_re = re.escape(layout.blocks_path)
            target = rf".*{block_re}\.({index_re})\.(attention\.self\.(key|value)|output\.dense)$"
            feedforward = rf".*{block_re}\.({index_re})\.output\.dense$"
        else:
            target = _block_regex(layout, top, _TARGETS["llama"]["ia3"])
            feedforward = _block_regex(layout, top, _TARGETS["llama"]["ia3_ff"])
        return IA3Config(
            task_type=_task_type(task),
            target_modules=target,
            feedforward_modules=feedforward,
            modules_to_save=_modules_to_save(layout, task),
        )


@register_strategy
class PromptTuning(_PeftStrategy):
    name = "prompt-tuning"
    summary = "prompt tuning (peft): a learned soft prompt of --num-virtual-tokens vectors; model frozen"
    default_lr = 3e-2
    order = 40
    options = ("num_virtual_tokens",)

    def describe(self, config, task, *, num_blocks=None):
        return (
            f"a soft prompt of {config.num_virtual_tokens} virtual-token embeddings prepended to the input"
            f"{head_trains_too(task)}; the whole pre-trained model is frozen"
        )

    def adds(self, config):
        return f"a soft prompt of {config.num_virtual_tokens} virtual tokens"

    def _peft_config(self, layout, config, task):
        from peft import PromptTuningConfig, PromptTuningInit

        return PromptTuningConfig(
            task_type=_task_type(task),
            num_virtual_tokens=config.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.RANDOM,
        )

    def frozen_blocks(self, model, layout, config):
        return None
