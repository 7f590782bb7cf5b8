"""Strategies from other packages (the ``tunelab.strategies`` entry-point group): the example plugin in
``examples/plugins/tunelab_ln_tuning`` registers and trains through tunelab's own ``train()``; a broken plugin,
one that is not a Strategy, one that takes a built-in's name, one without ``describe``, one with an attribute of the
wrong type and one whose options are no TrainConfig fields are left out with a warning each, and
``register_strategy`` refuses them with the same line."""

from __future__ import annotations

import logging
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

import tunelab.strategies.plugins as plugins
from tunelab import TrainConfig
from tunelab.strategies import STRATEGIES, Kind, get_strategy, register_strategy, strategy_names

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "tunelab_ln_tuning"


@pytest.fixture
def declared(monkeypatch, tmp_path):
    """The entry points an installed plugin package (and three bad ones) would declare."""
    (tmp_path / "bad_plugin.py").write_text("raise RuntimeError('needs a GPU library')\n")
    (tmp_path / "clash_plugin.py").write_text(
        "from tunelab.strategies import Kind, Strategy\n"
        "class Renamed(Strategy):\n    name, summary, default_lr, kind, order = 'real-name', 'x', 1e-3, Kind.PEFT, 2\n"
        "    def prepare(self, model, layout, config): return model\n"
        "    def describe(self, config, task, *, num_blocks=None): return 'x'\n"
        "class Imposter(Renamed):\n    name, order = 'lora', 1\n"
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
    assert any("'clash'" in m and "has the name 'lora', already the strategy" in m for m in said)
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


_GOOD = """
from tunelab.strategies import Kind, Strategy

class Good(Strategy):
    name, summary, default_lr, kind, order = "good", "x", 1e-3, Kind.PEFT, 60
    def prepare(self, model, layout, config):
        return model
    def describe(self, config, task, *, num_blocks=None):
        return "x"
"""


@pytest.fixture
def load_declared(monkeypatch, tmp_path, caplog):
    """Load the plugin classes a module ``walk_plugins`` defines (after ``Good``, a valid one), one entry point each,
    named as the class in lower case: return the names registered and the warnings given."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(STRATEGIES)

    def load(source: str, *classes: str) -> tuple[list[str], list[str]]:
        (tmp_path / "walk_plugins.py").write_text(_GOOD + textwrap.dedent(source))
        points = [EntryPoint(c.lower(), f"walk_plugins:{c}", plugins.GROUP) for c in classes]
        monkeypatch.setattr(plugins, "entry_points", lambda group: points)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tunelab"):
            registered = plugins.load_plugins()
        return registered, [r.getMessage() for r in caplog.records]

    yield load
    STRATEGIES.clear()
    STRATEGIES.update(before)
    sys.modules.pop("walk_plugins", None)


def test_a_plugin_whose_options_are_no_config_fields_is_refused_when_chosen_and_train_still_checks_options(
        load_declared):
    from tunelab.errors import ConfigError
    from tunelab.strategies.base import unused_options

    registered, said = load_declared("""
        class OwnOption(Good):
            name, options = "own-option", ("scale_init",)
    """, "OwnOption")
    assert registered == ["own-option"] and not any("left out" in line for line in said)
    with pytest.raises(ConfigError, match=r"strategy 'own-option' \(walk_plugins\) has options scale_init, which are "
                                          r"not TrainConfig fields.*TrainConfig.extra"):
        TrainConfig(strategy="own-option").validate()
    # every other strategy is untouched: `tunelab train --strategy head` still works
    assert unused_options(TrainConfig(strategy="head")) == []
    assert unused_options(TrainConfig(strategy="head", lora_r=4)) == ["lora_r="]  # named as a Python caller passes it


def test_a_plugin_without_describe_or_prepare_is_left_out(load_declared):
    registered, said = load_declared("""
        class NoDescribe(Strategy):
            name, summary, default_lr, kind, order = "no-describe", "x", 1e-3, Kind.PEFT, 61
            def prepare(self, model, layout, config):
                return model

        class NoPrepare(Good):
            name = "no-prepare"
            prepare = Strategy.prepare
    """, "NoDescribe", "NoPrepare")
    assert registered == []
    assert said == [
        "strategy plugin 'nodescribe' (walk_plugins:NoDescribe) left out: strategy class NoDescribe does not define describe()",
        "strategy plugin 'noprepare' (walk_plugins:NoPrepare) left out: strategy class NoPrepare does not define prepare()",
    ]


@pytest.mark.parametrize(("attr", "value", "expected"), [
    ("order", "'x'", "an int"),
    ("kind", "'peft'", "a Kind (Kind.FROZEN, Kind.PEFT"),
    ("name", "3", "a non-empty str"),
    ("default_lr", "'fast'", "a positive number"),
    ("default_lr", "0", "a positive number"),
    ("summary", "None", "a str"),
    ("options", "'lora_r'", "a tuple of TrainConfig field names"),
])
def test_a_plugin_attribute_of_the_wrong_type_is_left_out_naming_it(load_declared, attr, value, expected):
    registered, said = load_declared(f"""
        class Bad(Good):
            name = "bad"
            {attr} = {value}
    """, "Bad")
    assert registered == [] and len(said) == 1
    assert said[0].endswith(f"left out: strategy class Bad has {attr} = {value}, expected {expected}" + (
        ", Kind.STAGED or Kind.FULL)" if attr == "kind" else ""))
    assert "bad" not in STRATEGIES and all(isinstance(cls.kind, Kind) for cls in STRATEGIES.values())
    strategy_names()  # the listing every command prints sorts by order: it still works


def test_register_strategy_refuses_a_taken_name_with_the_entry_points_line_and_allows_the_same_class_again(
        load_declared):
    lora = STRATEGIES["lora"]
    registered, said = load_declared("""
        class Imposter(Good):
            name = "lora"
    """, "Imposter")
    with pytest.raises(TypeError) as refused:
        register_strategy(sys.modules["walk_plugins"].Imposter)
    assert STRATEGIES["lora"] is lora and registered == []
    assert str(refused.value) == ("strategy class Imposter has the name 'lora', already the strategy "
                                  f"{lora.__module__}.{lora.__qualname__}: choose another name")
    assert said == [f"strategy plugin 'imposter' (walk_plugins:Imposter) left out: {refused.value}"]  # one check

    good = sys.modules["walk_plugins"].Good
    assert register_strategy(good) is good and register_strategy(good) is good and STRATEGIES["good"] is good
    again = type("Good", (good,), {"__module__": good.__module__})  # the class defined again: a module reloaded
    assert register_strategy(again) is again and STRATEGIES["good"] is again


def test_a_comparison_reuses_a_finished_run_only_with_the_same_plugin_settings():
    from tunelab.compare.runner import _same_config
    from tunelab.strategies.head import Head

    class ReadsAny(Head):  # declares no extra_options: it may read any key
        name, summary = "reads-any", "a plugin"

    before = dict(STRATEGIES)
    try:
        register_strategy(ReadsAny)
        planned = TrainConfig(strategy="reads-any", extra={"scale_init": 0.1})
        assert _same_config(planned, planned.to_dict())
        assert not _same_config(planned, planned.replace(extra={"scale_init": 0.2}).to_dict())
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(before)
    # a built-in reads no key of its own: another plugin's key is no other run, the cache's dtype is
    planned = TrainConfig(strategy="head", extra={"scale_init": 0.1})
    assert _same_config(planned, planned.replace(extra={"scale_init": 0.2}).to_dict())
    assert _same_config(planned, planned.replace(extra={}).to_dict())
    assert not _same_config(planned, planned.replace(extra={"scale_init": 0.1, "cache_dtype": "float32"}).to_dict())
    # where the logs go is not what the run computes: a resume that adds --report-to mlflow reuses it
    assert _same_config(planned.replace(report_to="mlflow"), planned.replace(report_to="none").to_dict())


def test_extra_flags_set_a_plugins_own_settings_over_the_config_files(tmp_path, capsys):
    """`--extra KEY=VALUE` (repeatable, YAML values) fills TrainConfig.extra on the command line, over an extra:
    mapping of --config; a malformed one is one line and exit code 2."""
    from tunelab.cli.options import _Parser, add_config_flags, config_from_args

    parser = _Parser(prog="tunelab train")
    add_config_flags(parser)
    config_file = tmp_path / "run.yaml"
    config_file.write_text("strategy: head\nextra: {scale_init: 0.1, name: kept}\n")
    config = config_from_args(parser.parse_args(["--config", str(config_file), "--extra", "scale_init=0.5",
                                                 "--extra", "layers=[1, 2]", "--extra", "flag=true"]))
    assert config.extra == {"scale_init": 0.5, "name": "kept", "layers": [1, 2], "flag": True}
    assert config_from_args(parser.parse_args([])).extra == {}
    with pytest.raises(SystemExit) as bad:
        parser.parse_args(["--extra", "scale_init"])
    assert bad.value.code == 2
    assert "'scale_init' is not KEY=VALUE (for instance --extra rank=64)" in capsys.readouterr().err


def test_a_comparisons_process_registers_a_class_the_caller_registered_from_another_module(monkeypatch, tmp_path):
    """The example plugin's module does not register its class on import (its entry point does): registered by a
    script with register_strategy and compared uninstalled, each run's process imported the module and still found
    no 'ln-tuning' ("--strategy 'ln-tuning' is unknown"), as did estimate's measuring process. Both register the
    classes the parent registered."""
    from tunelab.run import isolate

    monkeypatch.syspath_prepend(str(EXAMPLE))
    before = dict(STRATEGIES)
    STRATEGIES.pop("ln-tuning", None)
    try:
        import tunelab_ln_tuning

        register_strategy(tunelab_ln_tuning.LayerNormTuning)
        monkeypatch.setenv(isolate.STRATEGIES_ENV, isolate.child_environment()[isolate.STRATEGIES_ENV])
        del STRATEGIES["ln-tuning"]  # a job's process: the module may be imported, the class is not registered
        isolate.import_strategy_modules()
        assert STRATEGIES["ln-tuning"] is tunelab_ln_tuning.LayerNormTuning

        # estimate's and recommend's measuring process too: estimate(strategy="ln-tuning") said "unknown strategy"
        import tunelab.advice.estimate as estimate

        del STRATEGIES["ln-tuning"]
        monkeypatch.setattr(estimate, "_measure", lambda job, data: {"known": job["config"]["strategy"] in STRATEGIES})
        assert estimate._serve({"config": {"strategy": "ln-tuning"}}) == {"known": True}
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(before)
        sys.modules.pop("tunelab_ln_tuning", None)


def _train_registered(cls, model_dir, data, tmp_path, caplog) -> dict:
    """One run of strategy class ``cls``, registered for the run only (``STRATEGIES`` as it was after), one epoch on
    ``data`` into ``tmp_path / "run"``, warnings captured by ``caplog``: its record."""
    from tunelab.run.training import train

    before = dict(STRATEGIES)
    try:
        register_strategy(cls)
        config = TrainConfig(model=str(model_dir), strategy=cls.name, epochs=1, batch_size=8,
                             out=str(tmp_path / "run"), overwrite=True, forgetting=False)
        with caplog.at_level(logging.WARNING, logger="tunelab"):
            return train(config, data=data, progress=False)
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(before)


def test_a_plugin_whose_frozen_blocks_disagree_with_what_it_trains_is_told_why_the_cache_is_not_used(
        tiny_bert_dir, toy_classification_data, tmp_path, monkeypatch, caplog):
    """A strategy whose frozen_blocks says the bottom blocks stay frozen while its prepare() trains weights there ran
    without the frozen-layer cache and nothing said why: its author saw no speed-up and no reason."""

    monkeypatch.syspath_prepend(str(EXAMPLE))
    import tunelab_ln_tuning

    class SaysFrozen(tunelab_ln_tuning.LayerNormTuning):  # trains every block's norms, says two blocks stay frozen
        name = "says-frozen"

        def frozen_blocks(self, model, layout, config):
            return 2

    try:
        record = _train_registered(SaysFrozen, tiny_bert_dir, toy_classification_data, tmp_path, caplog)
    finally:
        sys.modules.pop("tunelab_ln_tuning", None)
    info = record["train_info"]
    assert not info["cache"]["used"]
    said = [n for n in info["notes"] if n.startswith("frozen-layer cache not used")]
    assert len(said) == 1 and "strategy 'says-frozen' says the embeddings and the bottom 2 blocks stay frozen" in said[0]
    assert "bert.encoder.layer.0.attention.output.LayerNorm.weight" in said[0] and "make the two agree" in said[0]
    assert said[0] in [r.getMessage() for r in caplog.records]


def test_a_plugin_that_saves_a_peft_adapter_without_saying_so_is_recorded_and_loaded_as_one(
        tiny_bert_dir, toy_classification_data, tmp_path, caplog):
    """A strategy that wraps the model with peft but keeps the default artifact_format ("transformers") saved an
    adapter that tunelab.json, the model card and predict called a transformers model: the card's loading code
    (AutoModelForSequenceClassification.from_pretrained(THIS_FOLDER)) did not load what was trained."""
    from tunelab.run.artifacts import load_artifact
    from tunelab.strategies.peft_methods import LoRA

    class Unlabelled(LoRA):
        name, artifact_format = "unlabelled-adapter", "transformers"

    _train_registered(Unlabelled, tiny_bert_dir, toy_classification_data, tmp_path, caplog)
    folder = tmp_path / "run" / "model"
    assert (folder / "adapter_config.json").is_file()
    import json

    assert json.loads((folder / "tunelab.json").read_text())["format"] == "peft"
    assert "library_name: peft" in (folder / "README.md").read_text()
    assert "PeftModel.from_pretrained" in (folder / "README.md").read_text()
    assert any("strategy 'unlabelled-adapter' has artifact_format = 'transformers' but saved a peft folder" in
               r.getMessage() for r in caplog.records)
    from peft import PeftModel

    assert isinstance(load_artifact(folder)[0], PeftModel)


def test_estimate_and_recommend_of_a_strategy_defined_in_the_running_script_say_so_before_measuring(
        tiny_bert_dir, toy_classification_data, monkeypatch):
    """A strategy defined in the script that calls estimate (or recommend) is unknown to the measuring process, which
    failed with "unknown strategy" after the data was read; compare said it up front in one line. One check for all
    three (tunelab.run.isolate.unimportable_problems), each naming its own isolate=False."""
    from tunelab.advice import estimate as estimate_module
    from tunelab.advice import recommend as recommend_module
    from tunelab.errors import ConfigError
    from tunelab.strategies.head import Head

    class ScriptHead(Head):
        name, summary = "script-head", "defined in __main__"

    ScriptHead.__module__ = "__main__"

    def no_process(*args, **kwargs):
        raise AssertionError("a measuring process was started")

    monkeypatch.setattr(estimate_module, "_run_isolated", no_process)
    monkeypatch.setattr(recommend_module, "_estimate_row", no_process)
    before = dict(STRATEGIES)
    try:
        register_strategy(ScriptHead)
        config = TrainConfig(model=str(tiny_bert_dir), strategy="script-head", batch_size=8)
        with pytest.raises(ConfigError, match=r"^strategy 'script-head' is defined in the script that runs the "
                                              r"estimate, .* or estimate\(\.\.\., isolate=False\)$"):
            estimate_module.estimate(config, use_data=False, reuse=False)
        with pytest.raises(ConfigError, match=r"^strategy 'script-head' is defined in the script that runs the "
                                              r"advice, .* or recommend\(\.\.\., isolate=False\)$"):
            recommend_module.recommend(str(tiny_bert_dir), toy_classification_data, strategies=["script-head"],
                                       config=config)
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(before)
