"""Strategies from other packages (the ``tunelab.strategies`` entry-point group): the example plugin in
``examples/plugins/tunelab_ln_tuning`` registers and trains through tunelab's own ``train()``; a broken plugin,
one that is not a Strategy, and one that takes a built-in's name are left out with a warning each."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

import tunelab.strategies.plugins as plugins
from tunelab import TrainConfig
from tunelab.strategies import STRATEGIES, get_strategy, strategy_names

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "tunelab_ln_tuning"


@pytest.fixture
def declared(monkeypatch, tmp_path):
    """The entry points an installed plugin package (and three bad ones) would declare."""
    (tmp_path / "bad_plugin.py").write_text("raise RuntimeError('needs a GPU library')\n")
    (tmp_path / "clash_plugin.py").write_text(
        "from tunelab.strategies import Kind, Strategy\n"
        "class Imposter(Strategy):\n    name, summary, default_lr, kind, order = 'lora', 'x', 1e-3, Kind.PEFT, 1\n"
        "class Renamed(Strategy):\n    name, summary, default_lr, kind, order = 'real-name', 'x', 1e-3, Kind.PEFT, 2\n"
    )
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        EntryPoint("ln-tuning", "tunelab_ln_tuning:LayerNormTuning", plugins.GROUP),
        EntryPoint("broken", "bad_plugin:Whatever", plugins.GROUP),
        EntryPoint("not-a-strategy", "json:dumps", plugins.GROUP),
        EntryPoint("clash", "clash_plugin:Imposter", plugins.GROUP),
        EntryPoint("alias", "clash_plugin:Renamed", plugins.GROUP),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [p for p in points if p.group == group])
    before = dict(STRATEGIES)
    STRATEGIES.pop("ln-tuning", None)  # where the example is installed, its real entry point registered it already
    yield
    STRATEGIES.clear()
    STRATEGIES.update(before)
    for name in ("tunelab_ln_tuning", "bad_plugin", "clash_plugin"):
        sys.modules.pop(name, None)


def test_a_plugin_strategy_is_registered_and_bad_ones_are_left_out_with_a_warning(declared, caplog):
    lora = STRATEGIES["lora"]
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        assert plugins.load_plugins() == ["ln-tuning", "real-name"]
    assert "ln-tuning" in strategy_names() and get_strategy("ln-tuning").kind.value == "peft"
    assert STRATEGIES["lora"] is lora  # a plugin never replaces a built-in
    said = [r.getMessage() for r in caplog.records]
    assert any("'broken'" in m and "could not be imported (RuntimeError: needs a GPU library)" in m for m in said)
    assert any("'not-a-strategy'" in m and "is not a subclass of tunelab.strategies.Strategy" in m for m in said)
    assert any("'clash'" in m and "its name 'lora' is already the strategy" in m for m in said)
    assert any("'alias'" in m and "registered as 'real-name'" in m and "--strategy real-name" in m for m in said)
    assert len(said) == 4 and all("\n" not in m for m in said)


def test_the_example_plugin_trains_only_the_norms_and_the_head(declared, tiny_bert_dir, toy_classification_data,
                                                               tmp_path):
    import tunelab.run.artifacts
    from tunelab.run.training import train

    plugins.load_plugins()
    seen = {}
    real_write = tunelab.run.artifacts.write_artifact

    def spy_write(run, *args, **kwargs):
        seen["model"] = run.model
        return real_write(run, *args, **kwargs)

    config = TrainConfig(model=str(tiny_bert_dir), strategy="ln-tuning", epochs=1, batch_size=8, out=str(tmp_path / "run"),
                         overwrite=True, forgetting=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tunelab.run.artifacts, "write_artifact", spy_write)
        record = train(config, data=toy_classification_data, progress=False)
    from transformers import AutoModelForSequenceClassification

    before = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2).state_dict()
    after = seen["model"].state_dict()
    changed = {name for name, value in before.items() if not torch.equal(value, after[name].cpu())}
    assert changed, "nothing trained"
    assert all("LayerNorm" in name or name.startswith(("classifier.", "bert.pooler.")) for name in changed), changed
    assert any(".layer." in name and "LayerNorm" in name for name in changed)
    info = record["train_info"]
    assert record["run_info"]["strategy"] == "ln-tuning" and 0 < info["trainable_params"] < info["total_params"]


def test_a_plugin_that_fails_or_trains_nothing_is_named_in_one_line(tiny_bert_dir, toy_classification_data, tmp_path):
    from tunelab.errors import StrategyError
    from tunelab.run.training import prepare
    from tunelab.strategies import Kind, Strategy
    from tunelab.strategies.base import freeze_all

    class Raises(Strategy):
        name, summary, default_lr, kind, order = "raises-test", "x", 1e-3, Kind.PEFT, 99

        def prepare(self, model, layout, config):
            raise KeyError("no_such_module")

    class TrainsNothing(Raises):
        name = "nothing-test"

        def prepare(self, model, layout, config):
            freeze_all(model)
            return model

    Raises.__module__ = TrainsNothing.__module__ = "someones_plugin"
    try:
        for cls in (Raises, TrainsNothing):
            STRATEGIES[cls.name] = cls
        with pytest.raises(StrategyError, match=r"strategy 'raises-test' \(someones_plugin\..*Raises, a plugin\) failed "
                                                r"to prepare the model: KeyError: 'no_such_module'"):
            prepare(TrainConfig(model=str(tiny_bert_dir), strategy="raises-test"), toy_classification_data)
        with pytest.raises(StrategyError, match="strategy 'nothing-test' left no weight of the model trainable"):
            prepare(TrainConfig(model=str(tiny_bert_dir), strategy="nothing-test"), toy_classification_data)
    finally:
        STRATEGIES.pop("raises-test", None)
        STRATEGIES.pop("nothing-test", None)
