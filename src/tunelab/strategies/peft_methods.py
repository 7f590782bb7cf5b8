"""Strategies the peft library implements: thin wrappers over its configs.

Target modules come from the layout (:mod:`tunelab.models.targets`: LoRA on every dense projection
inside the blocks, IA3 on keys, values and the feed-forward output), or from
``--lora-target-modules``; for classification the new head is listed in ``modules_to_save`` so it
trains and is saved with the adapter.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import StrategyError
from tunelab.models import ia3_targets, lora_targets
from tunelab.strategies.base import Strategy, register_strategy


def _task_type(config_task: str):
    from peft import TaskType

    return TaskType.SEQ_CLS if config_task == "classification" else TaskType.CAUSAL_LM


def _modules_to_save(layout, task: str) -> list[str] | None:
    if task != "classification":
        return None
    return list(layout.head_modules) or None


class _PeftStrategy(Strategy):
    artifact_format = "peft"

    def _peft_config(self, layout, config, task):
        raise NotImplementedError

    def prepare(self, model, layout, config):
        from peft import get_peft_model

        task = config.task
        peft_config = self._peft_config(layout, config, task)
        model = get_peft_model(model, peft_config)
        return model

    def save(self, model, out_dir: Path, *, merge: bool = False) -> None:
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

    def _peft_config(self, layout, config, task):
        from peft import LoraConfig

        targets = lora_targets(layout, top=config.lora_layers, override=config.lora_target_modules)
        return LoraConfig(
            task_type=_task_type(task),
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets.pattern,
            fan_in_fan_out=targets.conv1d,  # GPT-2's Conv1D stores its weight transposed
            modules_to_save=_modules_to_save(layout, task),
        )


@register_strategy
class IA3(_PeftStrategy):
    name = "ia3"
    summary = "IA3 (peft): learned rescaling vectors on keys, values and feed-forward; body frozen"
    default_lr = 3e-3

    def _peft_config(self, layout, config, task):
        from peft import IA3Config

        targets = ia3_targets(layout, top=config.lora_layers, override=config.lora_target_modules)
        return IA3Config(
            task_type=_task_type(task),
            target_modules=targets.pattern,
            feedforward_modules=targets.feedforward_pattern or [],
            fan_in_fan_out=targets.conv1d,
            modules_to_save=_modules_to_save(layout, task),
        )


@register_strategy
class PromptTuning(_PeftStrategy):
    name = "prompt-tuning"
    summary = "prompt tuning (peft): a learned soft prompt of --num-virtual-tokens vectors; model frozen"
    default_lr = 3e-2

    def _peft_config(self, layout, config, task):
        from peft import PromptTuningConfig, PromptTuningInit

        return PromptTuningConfig(
            task_type=_task_type(task),
            num_virtual_tokens=config.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.RANDOM,
            # the prompt lives in the input-embedding space; peft reads these sizes from the config's dict,
            # where some configs (DistilBERT: dim, n_layers, n_heads) use their own names
            token_dim=layout.model.get_input_embeddings().embedding_dim,
            num_layers=layout.num_blocks,
            num_attention_heads=getattr(layout.model.config, "num_attention_heads", None),
            # the whole new head trains (peft alone would add only modules named classifier/score: not DeBERTa's pooler)
            modules_to_save=_modules_to_save(layout, task),
        )

    def frozen_blocks(self, model, layout, config):
        return None

    def save(self, model, out_dir: Path, *, merge: bool = False) -> None:
        if merge:
            raise StrategyError("--merge does not apply to prompt-tuning (a soft prompt cannot be merged into weights)")
        model.save_pretrained(out_dir, safe_serialization=True)
