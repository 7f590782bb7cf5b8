"""The strategy protocol: every registered strategy says what it is, what trains (with a run's own values),
what it adds, whether ``--merge`` applies, where it is listed, and what its widest trainable set is; and the
report, the model card, the estimate and the recommendation take those facts from it."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tunelab.advice import choose
from tunelab.config import TrainConfig
from tunelab.errors import StrategyError
from tunelab.models import load_model, model_layout
from tunelab.strategies import STRATEGIES, Kind, get_strategy, strategy_kind, strategy_names

NAMES = list(STRATEGIES)
N_BLOCKS = 3  # conftest.TINY_DIMS

#: A value different from the default for every strategy option, each distinct enough to find in a text.
OPTION_VALUES = {
    "layers": 5,
    "lora_r": 13,
    "lora_alpha": 29,
    "lora_dropout": 0.07,
    "use_dora": True,  # switches: the text must change (checked below), not show the value
    "use_rslora": True,
    "lora_layers": 3,
    "num_virtual_tokens": 17,
    "prompt_init_text": "Is this message spam?",
    "lora_target_modules": "q_proj,v_proj",
    "layer_lr_decay": 0.65,
}


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_declares_the_protocol(name):
    cls = STRATEGIES[name]
    assert cls.name == name and cls.summary and cls.default_lr > 0
    assert isinstance(cls.kind, Kind) and cls.kind.label
    assert isinstance(cls.order, int) and isinstance(cls.can_merge, bool)
    assert set(cls.options) <= set(TrainConfig.field_names()), "options must be TrainConfig fields"
    strategy = cls()
    for task in cls.tasks:
        for num_blocks in (None, 12):
            text = strategy.describe(TrainConfig(strategy=name, task=task), task, num_blocks=num_blocks)
            assert isinstance(text, str) and len(text) > 20
    added = strategy.adds(TrainConfig(strategy=name))
    assert added is None or (isinstance(added, str) and added)


def test_listing_order_is_the_declared_order_and_unique():
    orders = [STRATEGIES[n].order for n in NAMES]
    assert len(set(orders)) == len(orders)
    listed = strategy_names()
    assert sorted(listed) == sorted(NAMES)
    assert [STRATEGIES[n].order for n in listed] == sorted(orders)
    # the recommendation and the report sort by the same order; unknown names come last
    assert sorted([*reversed(NAMES), "zz-unknown"], key=choose.strategy_sort_key) == [*listed, "zz-unknown"]


@pytest.mark.parametrize("name", NAMES)
def test_kind_drives_the_recommendations_categories(name):
    kind = STRATEGIES[name].kind
    assert strategy_kind(name) is kind
    assert choose.trains_all_weights(name) == kind.trains_all_weights
    assert choose.is_full_fine_tuning(name) == (kind is Kind.FULL)
    assert strategy_kind("zz-unknown") is None and not choose.trains_all_weights("zz-unknown")


@pytest.mark.parametrize("name", NAMES)
def test_describe_shows_every_option_the_strategy_reads(name):
    cls = STRATEGIES[name]
    task = cls.tasks[0]
    base = TrainConfig(strategy=name, task=task)
    for option in cls.options:
        assert option in OPTION_VALUES, f"give {option} a test value in OPTION_VALUES"
        value = OPTION_VALUES[option]
        assert getattr(base, option) != value
        text = cls().describe(dataclasses.replace(base, **{option: value}), task, num_blocks=12)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert isinstance(value, bool) or re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", text), (option, text)
        assert text != cls().describe(base, task, num_blocks=12)


def test_last_n_and_gradual_describe_this_runs_values():
    last_n = get_strategy("last-n").describe(TrainConfig(strategy="last-n", layers=2), "classification", num_blocks=6)
    assert "the top 2 of 6 blocks" in last_n and "lower 4 blocks" in last_n
    gradual = get_strategy("gradual").describe(
        TrainConfig(strategy="gradual", lr=3e-4, layer_lr_decay=0.5), "classification", num_blocks=6
    )
    assert "evenly spaced steps over all of training" in gradual and "6 equal stages" in gradual
    assert "3e-04 × 0.5^depth" in gradual or "0.0003 × 0.5^depth" in gradual
    assert "one more block per epoch" not in gradual


@pytest.mark.parametrize("name", NAMES)
def test_merge_is_accepted_exactly_where_the_strategy_can_merge(name):
    problems = TrainConfig(strategy=name, merge=True).problems()
    merge_problems = [p for p in problems if p.startswith("merge=True")]
    strategy = get_strategy(name)
    if strategy.can_merge:
        assert not merge_problems
        strategy.check_merge(True)
    else:
        assert len(merge_problems) == 1 and f"'{name}'" in merge_problems[0]
        with pytest.raises(StrategyError, match="merge=True applies to"):
            strategy.check_merge(True)


@pytest.mark.parametrize("name", NAMES)
def test_head_only_and_widest_set_agree_with_a_real_model(name, tiny_bert_dir):
    """``trains_only_head`` (asked before any model exists) matches what ``prepare`` freezes on a real model,
    and ``widen`` only ever adds to the trainable set, saying so exactly when it does."""
    config = TrainConfig(model=str(tiny_bert_dir), strategy=name, task="classification", layers=1, num_virtual_tokens=4)
    strategy = get_strategy(name)
    model, _ = load_model(config.model, task="classification", label_names=["neg", "pos"])
    layout = model_layout(model)
    assert layout.num_blocks == N_BLOCKS
    model = strategy.prepare(model, layout, config)
    start = _trainable(model)
    # head only: the frozen prefix is every block of the real model, and indeed no block weight trains
    assert strategy.trains_only_head(config) == (strategy.frozen_blocks(model, layout, config) == layout.num_blocks)
    if strategy.trains_only_head(config):
        assert start and not any(f"{layout.blocks_path}." in n for n in start)
    changed = strategy.widen(model, layout, config)
    widest = _trainable(model)
    assert start <= widest
    assert changed == (widest != start)
    if strategy.kind is Kind.STAGED:  # a staged strategy ends with every weight training
        assert changed and widest == {n for n, _ in model.named_parameters()}


@pytest.fixture(scope="module")
def last_n_and_gradual_runs(tiny_bert_dir, toy_classification_data, tmp_path_factory):
    from tunelab.run.training import train

    out = tmp_path_factory.mktemp("runs")
    records = []
    for name in ("last-n", "gradual"):
        config = TrainConfig(model=str(tiny_bert_dir), strategy=name, layers=2, layer_lr_decay=0.5, epochs=1,
                             batch_size=8, out=str(out / name))
        records.append(train(config, data=toy_classification_data, progress=False))
    return out, records


def test_report_and_model_card_describe_a_real_last_n_and_gradual_run(last_n_and_gradual_runs, tmp_path):
    from tunelab.report import write_report

    out, records = last_n_and_gradual_runs
    assert all(r["meta_info"]["num_blocks"] == N_BLOCKS for r in records)
    page = write_report(tmp_path, records)["md"].read_text(encoding="utf-8")
    assert "the top 2 of 3 blocks" in page and "the lower 1 block" in page
    assert "evenly spaced steps over all of training (3 equal stages" in page
    assert "0.0001 × 0.5^depth" in page
    assert "transfer learning (frozen layers)" in page and "fine-tuning, unfrozen in stages" in page
    assert "top N" not in page and "block group per epoch" not in page
    card = (out / "last-n" / "model" / "README.md").read_text(encoding="utf-8")
    assert "What trains: the top 2 of 3 blocks" in card
    card = (out / "gradual" / "model" / "README.md").read_text(encoding="utf-8")
    assert "What trains: every weight, in stages" in card and "3 equal stages" in card


def test_estimate_measures_a_schedule_at_its_widest_set(tiny_bert_dir, toy_classification_data):
    from tunelab.advice.estimate import estimate

    config = TrainConfig(model=str(tiny_bert_dir), strategy="gradual", batch_size=8, epochs=1, cache=False)
    est = estimate(config, data=toy_classification_data, warmup_steps=1, timed_steps=2, isolate=False)
    assert est["trainable_params"] == est["total_params"]  # every block and the embeddings, as in the last stage
    assert any("widest trainable set" in note for note in est["notes"])
