"""The new task head trains in its own optimizer group at the head's learning rate, whatever the strategy
(issue 15): a strategy that trains a superset of the head's weights must not train the head slower than
``head`` does. Checked on the optimizer each strategy's ``Trainer`` really builds, on tiny BERT and Llama."""

from __future__ import annotations

import re

import pytest

import tunelab.run.training
from tunelab.config import TrainConfig
from tunelab.errors import ConfigError
from tunelab.strategies import STRATEGIES, get_strategy
from tunelab.strategies.base import HEAD_LR

HEADS = ("classifier.", "score.", "bert.pooler.")  # BERT's pooler feeds the classifier: part of the new head


def _optimizer(run, tmp_path):
    from transformers import TrainingArguments

    from tunelab.run.training import TrainerSetup

    setup = TrainerSetup(run, tmp_path / "out")
    trainer = tunelab.run.training.make_trainer_class()(model=run.model, args=TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, learning_rate=setup.lr))
    trainer.tunelab_param_groups = run.strategy.param_groups(run.model, run.layout, setup.lr, run.config)
    setup.initial.discard()
    return trainer.create_optimizer()


def _rates(run, optimizer) -> dict[str, float]:
    """The learning rate of every trainable parameter, by its name in the model that trains."""
    names = {id(p): n for n, p in run.model.named_parameters()}
    return {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"] if p.requires_grad}


def _is_head(name: str) -> bool:
    """A head parameter's name, in a plain model or as peft's modules_to_save copy inside a PeftModel."""
    short = re.sub(r"^base_model\.(model\.)?", "", name)
    return short.startswith(HEADS) and "original_module" not in short


@pytest.mark.parametrize("model_dir", ["tiny_bert_dir", "tiny_llama_dir"])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_trains_the_new_head_at_the_head_rate(strategy, model_dir, request, toy_classification_data, tmp_path):
    config = TrainConfig(model=str(request.getfixturevalue(model_dir)), strategy=strategy, layers=2, num_virtual_tokens=4)
    run = tunelab.run.training.prepare(config, toy_classification_data)
    rates = _rates(run, _optimizer(run, tmp_path))
    head = {n: r for n, r in rates.items() if _is_head(n)}
    assert head, f"{strategy}: no trainable head parameter in the optimizer"
    assert all(r == pytest.approx(HEAD_LR) for r in head.values()), head
    body = {n: r for n, r in rates.items() if not _is_head(n) and ".pooler." not in n}
    if strategy != "head":
        assert body, f"{strategy}: nothing trains below the head"
        top_rate = get_strategy(strategy).default_lr
        assert max(body.values()) == pytest.approx(top_rate), f"{strategy}: the body keeps the strategy's rate"
    # every trainable parameter is in the optimizer exactly once
    trainable = [n for n, p in run.model.named_parameters() if p.requires_grad]
    assert sorted(rates) == sorted(trainable) or strategy == "gradual"


def test_head_lr_overrides_only_the_head(tiny_bert_dir, toy_classification_data, tmp_path):
    config = TrainConfig(model=str(tiny_bert_dir), strategy="lora", head_lr=3e-3, lr=1e-4)
    run = tunelab.run.training.prepare(config, toy_classification_data)
    rates = _rates(run, _optimizer(run, tmp_path))
    assert {r for n, r in rates.items() if _is_head(n)} == {3e-3}
    assert {r for n, r in rates.items() if not _is_head(n)} == {1e-4}
    assert "at the head learning rate, 0.003" in run.strategy.describe(config, "classification", num_blocks=3)


def test_head_strategy_takes_lr_as_its_head_rate(tiny_bert_dir, toy_classification_data, tmp_path):
    run = tunelab.run.training.prepare(TrainConfig(model=str(tiny_bert_dir), strategy="head", lr=5e-3), toy_classification_data)
    assert set(_rates(run, _optimizer(run, tmp_path)).values()) == {5e-3}


def test_causal_lm_has_no_head_group(tiny_llama_dir, toy_lm_data, tmp_path):
    run = tunelab.run.training.prepare(TrainConfig(model=str(tiny_llama_dir), strategy="full"), toy_lm_data)
    groups = run.strategy.param_groups(run.model, run.layout, 5e-5, run.config)
    assert not any(g.get("head") for g in groups)


@pytest.mark.parametrize("value", [0.0, -1e-3])
def test_head_lr_must_be_positive(value):
    with pytest.raises(ConfigError, match="head_lr= must be positive"):
        TrainConfig(head_lr=value).validate()


def test_head_lr_is_recorded(tiny_bert_dir, toy_classification_data, tmp_path):
    config = TrainConfig(model=str(tiny_bert_dir), strategy="bitfit", head_lr=4e-3, epochs=1, out=str(tmp_path / "run"),
                         forgetting=False)
    record = tunelab.run.training.train(config, data=toy_classification_data, progress=False)
    assert record["train_info"]["head_learning_rate"] == pytest.approx(4e-3)
    assert record["train_info"]["learning_rate"] == pytest.approx(get_strategy("bitfit").default_lr)
    assert "head_lr: 0.004" in (tmp_path / "run" / "run_config.yaml").read_text()
    assert "the new task head: 0.004" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_cli_accepts_head_lr():
    from tunelab.cli.options import _Parser, add_config_flags, config_from_args

    parser = _Parser()
    add_config_flags(parser)
    assert config_from_args(parser.parse_args(["--head-lr", "1e-3"])).head_lr == 1e-3
