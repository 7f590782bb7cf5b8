"""Conformance suite: every registered strategy × {tiny BERT, tiny Llama} × {classification, causal LM}.

Each case trains for real through ``train(config, data=...)`` (with and without the frozen-layer
cache) and must show the properties a strategy promises:

- the trainable count equals the strategy's definition, computed here independently of tunelab;
- after training every trainable tensor changed and every frozen one is bit-identical;
- the saved folder loads with plain transformers / peft (no tunelab) and gives the same logits;
- the same seed gives the same weights.

A run is captured by spying on ``prepare`` (weights and trainable flags before training) and on
``write_artifact`` (the trained model as it is saved). Runs are shared between tests of a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import tunelab.run.artifacts
import tunelab.run.training
from conftest import assert_same_plain_logits
from tunelab.config import TrainConfig
from tunelab.errors import StrategyError
from tunelab.strategies import STRATEGIES, get_strategy

TEXTS = ["the film was really good and moving", "a dull , boring and painful story", "zebra quantum 42 !"]
HEADS = ("classifier.", "score.")
N_BLOCKS = 3  # conftest.TINY_DIMS
TOP_LAYERS = 2  # --layers for last-n
VIRTUAL_TOKENS = 4


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, cls in STRATEGIES.items():
        for model, task in (("bert", "classification"), ("llama", "classification"), ("llama", "causal-lm")):
            if task in cls.tasks:
                cases.append((name, model, task))
    return cases


CASES = _cases()
CASE_IDS = [f"{s}-{m}-{t}" for s, m, t in CASES]


@dataclass
class Captured:
    """One real training run, seen from the inside."""

    record: dict[str, Any]
    out: Path
    before: dict[str, torch.Tensor]
    trainable_at_start: set[str]
    model: nn.Module  # the trained model, exactly as it was saved
    model_dir: Path
    base_dir: Path


_RUNS: dict[tuple, Captured] = {}


@pytest.fixture(scope="module")
def run_case(tmp_path_factory, tiny_bert_dir, tiny_llama_dir, toy_classification_data, toy_lm_data):
    """``run_case(strategy, model, task, cache=..., repeat=0)`` trains once per distinct argument set."""

    def run(strategy: str, model: str, task: str, *, cache: bool, repeat: int = 0) -> Captured:
        key = (strategy, model, task, cache, repeat)
        if key in _RUNS:
            return _RUNS[key]
        base = tiny_bert_dir if model == "bert" else tiny_llama_dir
        data = toy_classification_data if task == "classification" else toy_lm_data
        out = tmp_path_factory.mktemp(f"{strategy}-{model}-{task}-{int(cache)}-{repeat}")
        config = TrainConfig(
            model=str(base),
            strategy=strategy,
            epochs=1,
            batch_size=8,
            max_length=16 if task == "causal-lm" else None,
            layers=TOP_LAYERS,
            num_virtual_tokens=VIRTUAL_TOKENS,
            cache=cache,
            cache_dir=str(tmp_path_factory.getbasetemp() / "feature-cache"),
            out=str(out),
            overwrite=True,
        )
        seen: dict[str, Any] = {}
        real_prepare, real_write = tunelab.run.training.prepare, tunelab.run.artifacts.write_artifact

        def spy_prepare(*args, **kwargs):
            prepared = real_prepare(*args, **kwargs)
            params = prepared.model.named_parameters()
            seen["before"] = {n: p.detach().clone() for n, p in params}
            seen["trainable_at_start"] = {n for n, p in prepared.model.named_parameters() if p.requires_grad}
            return prepared

        def spy_write(run_, *args, **kwargs):
            seen["model"] = run_.model
            return real_write(run_, *args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tunelab.run.training, "prepare", spy_prepare)
            mp.setattr(tunelab.run.artifacts, "write_artifact", spy_write)
            record = tunelab.run.training.train(config, data=data, progress=False)
        captured = Captured(
            record, out, seen["before"], seen["trainable_at_start"], seen["model"].eval(), out / "model", Path(base)
        )
        _RUNS[key] = captured
        return captured

    return run


# ----------------------------------------------------------------------------- expected counts


def _plain_model(base_dir: Path, task: str) -> nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if task == "classification":
        return AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2)
    return AutoModelForCausalLM.from_pretrained(base_dir)


def _numel(model: nn.Module, keep) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if keep(n))  # named_parameters: tied weights once


def _blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    return next((n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == N_BLOCKS)


def _block_linears(model: nn.Module, keep) -> list[tuple[str, nn.Linear]]:
    path, blocks = _blocks(model)
    return [(f"{path}.{name}", m) for name, m in blocks.named_modules() if isinstance(m, nn.Linear) and keep(name)]


def expected_trainable(strategy: str, base_dir: Path, task: str) -> tuple[int, int]:
    """(trainable, total) by each strategy's definition, from a plain transformers model."""
    model = _plain_model(base_dir, task)
    total = _numel(model, lambda n: True)
    is_bert = model.config.model_type == "bert"
    # the new task head: the classifier, and BERT's pooler that feeds it (every strategy trains both)
    pooler = ("bert.pooler.",) if is_bert and task == "classification" else ()
    head = _numel(model, lambda n: n.startswith(HEADS + pooler))
    path, _ = _blocks(model)
    if strategy in ("full", "gradual"):  # gradual: by the end of training every block has been unfrozen
        return total, total
    if strategy == "head":
        return head, total
    if strategy == "last-n":
        top = tuple(f"{path}.{i}." for i in range(N_BLOCKS - TOP_LAYERS, N_BLOCKS))
        after = ("bert.pooler.",) if is_bert else ("model.norm.",)
        return _numel(model, lambda n: n.startswith(top + after + HEADS)), total
    if strategy == "bitfit":
        biases = _numel(model, lambda n: n.endswith(".bias") and not n.startswith(HEADS + pooler))
        added = 0 if is_bert else sum(m.out_features for _, m in _block_linears(model, lambda n: True))
        return biases + added + head, total + added
    if strategy == "lora":  # r * (in + out) per adapted projection inside the blocks
        names = ("query", "key", "value", "dense") if is_bert else ("_proj",)
        lora = sum(8 * (m.in_features + m.out_features) for _, m in _block_linears(model, lambda n: n.endswith(names)))
        return lora + head, total + lora  # the head once, not also peft's frozen original beside its trained copy
    if strategy == "ia3":  # one vector per adapted projection: input size on feed-forward ones, else output size
        if is_bert:
            attn = _block_linears(model, lambda n: n.endswith(("attention.self.key", "attention.self.value")))
            ff = _block_linears(model, lambda n: n.endswith("output.dense") and "attention" not in n)
        else:
            attn = _block_linears(model, lambda n: n.endswith(("k_proj", "v_proj")))
            ff = _block_linears(model, lambda n: n.endswith("down_proj"))
        ia3 = sum(m.out_features for _, m in attn) + sum(m.in_features for _, m in ff)
        return ia3 + head, total + ia3
    if strategy == "prompt-tuning":
        prompt = VIRTUAL_TOKENS * model.config.hidden_size
        return prompt + head, total + prompt
    raise AssertionError(f"strategy '{strategy}' has no expected count in this suite: add its definition here")


# ----------------------------------------------------------------------------- loading without tunelab


def load_plainly(captured: Captured, task: str) -> nn.Module:
    """Load the artifact as a user without tunelab would: transformers, plus peft for adapters."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    if (captured.model_dir / "adapter_config.json").exists():
        from peft import PeftModel

        extra = {"num_labels": 2} if task == "classification" else {}
        base = cls.from_pretrained(captured.base_dir, **extra)
        return PeftModel.from_pretrained(base, captured.model_dir).eval()
    return cls.from_pretrained(captured.model_dir).eval()


# ----------------------------------------------------------------------------- the suite


def test_every_strategy_is_covered():
    assert {s for s, _, _ in CASES} == set(STRATEGIES)
    assert len(STRATEGIES) >= 8


@pytest.mark.parametrize(("strategy", "model", "task"), CASES, ids=CASE_IDS)
def test_trainable_count_matches_definition(run_case, strategy, model, task):
    captured = run_case(strategy, model, task, cache=False)
    want_trainable, want_total = expected_trainable(strategy, captured.base_dir, task)
    info = captured.record["train_info"]
    assert (info["trainable_params"], info["total_params"]) == (want_trainable, want_total)
    assert info["trainable_share"] == pytest.approx(want_trainable / want_total)
    # the saved model agrees with the record
    trainable_now = sum(p.numel() for p in _unique_trainable(captured.model))
    assert trainable_now == want_trainable


def _unique_trainable(model: nn.Module) -> list[torch.Tensor]:
    seen, out = set(), []
    for p in model.parameters():
        if id(p) not in seen and p.requires_grad:
            seen.add(id(p))
            out.append(p)
    return out


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
@pytest.mark.parametrize(("strategy", "model", "task"), CASES, ids=CASE_IDS)
def test_trainable_tensors_change_and_frozen_ones_stay_bit_identical(run_case, strategy, model, task, cache):
    captured = run_case(strategy, model, task, cache=cache)
    after = dict(captured.model.named_parameters())
    assert set(after) == set(captured.before)
    trainable = {n for n, p in after.items() if p.requires_grad}
    assert trainable, "nothing trains"
    unchanged = sorted(n for n in trainable if torch.equal(after[n].detach().cpu(), captured.before[n].cpu()))
    assert not unchanged, f"trainable tensors that did not change: {unchanged[:5]}"
    moved = sorted(n for n in set(after) - trainable if not torch.equal(after[n].detach().cpu(), captured.before[n].cpu()))
    assert not moved, f"frozen tensors that changed: {moved[:5]}"
    if strategy == "gradual":  # the schedule starts from the top block and ends with everything
        assert captured.trainable_at_start < trainable == set(after)
    else:
        assert captured.trainable_at_start == trainable


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
@pytest.mark.parametrize(("strategy", "model", "task"), CASES, ids=CASE_IDS)
def test_saved_artifact_loads_plainly_with_the_same_logits(run_case, strategy, model, task, cache):
    captured = run_case(strategy, model, task, cache=cache)
    files = {p.name for p in captured.model_dir.iterdir()}
    if get_strategy(strategy).artifact_format == "peft":
        assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    else:
        assert {"config.json", "model.safetensors"} <= files
    assert {"tokenizer.json", "tokenizer_config.json", "README.md", "tunelab.json"} <= files
    loaded = load_plainly(captured, task)
    if task == "classification" and "config.json" in files:
        assert loaded.config.id2label == {0: "neg", 1: "pos"}
    # only a soft prompt on a decoder classifier is read text by text (see assert_same_plain_logits)
    one_by_one = bool(get_strategy(strategy).positions_added(TrainConfig())) and task == "classification" and model == "llama"
    assert ("classify one text at a time" in (captured.model_dir / "README.md").read_text()) == one_by_one
    assert_same_plain_logits(loaded, captured.model, captured.model_dir, TEXTS, rtol=1e-5, atol=1e-5)
    if "adapter_config.json" in files:
        # peft adds its own head names (classifier, score) to those tunelab lists, twice for a soft prompt: each
        # module was listed two or three times in the saved config
        listed = json.loads((captured.model_dir / "adapter_config.json").read_text())["modules_to_save"] or []
        assert len(listed) == len(set(listed)), listed
        if task == "classification":  # the one-call way, the base read from adapter_config.json
            from peft import AutoPeftModelForSequenceClassification

            again = AutoPeftModelForSequenceClassification.from_pretrained(captured.model_dir, num_labels=2).eval()
            assert_same_plain_logits(again, captured.model, captured.model_dir, TEXTS, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("strategy", "model", "task"), CASES, ids=CASE_IDS)
def test_same_seed_gives_the_same_result(run_case, strategy, model, task):
    first = run_case(strategy, model, task, cache=False)
    again = run_case(strategy, model, task, cache=False, repeat=1)
    a, b = dict(first.model.named_parameters()), dict(again.model.named_parameters())
    assert set(a) == set(b)
    worst = max(float((a[n].detach() - b[n].detach()).abs().max()) for n in a)
    assert worst <= 1e-6
    for split in ("validation", "test"):
        for metric, value in first.record["metrics"][split].items():
            assert again.record["metrics"][split][metric] == pytest.approx(value, abs=1e-6)


def test_head_refuses_causal_lm_with_a_clear_error(tiny_llama_dir, toy_lm_data, tmp_path):
    config = TrainConfig(model=str(tiny_llama_dir), strategy="head", epochs=1, out=str(tmp_path / "out"))
    with pytest.raises(StrategyError, match=r"'head' does not apply to causal-lm.*classification; for causal-lm use "
                                            r"one of .*lora"):  # what to use instead
        tunelab.run.training.train(config, data=toy_lm_data, progress=False)
    assert not (tmp_path / "out" / "model").exists()


def test_gradual_gives_lower_blocks_decayed_learning_rates(tiny_bert_dir, toy_classification_data):
    config = TrainConfig(model=str(tiny_bert_dir), strategy="gradual", layer_lr_decay=0.5)
    run = tunelab.run.training.prepare(config, toy_classification_data)
    groups = run.strategy.param_groups(run.model, run.layout, 1e-3, config)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(run.model.named_parameters())
    assert len(rate) == len(named)  # every parameter is in exactly one group
    assert rate[id(named["classifier.weight"])] == pytest.approx(2e-3)  # the new head: its own rate
    assert rate[id(named["bert.pooler.dense.weight"])] == pytest.approx(2e-3)  # the pooler feeds it: part of it
    for i in range(N_BLOCKS):
        depth = N_BLOCKS - 1 - i
        assert rate[id(named[f"bert.encoder.layer.{i}.attention.self.query.weight"])] == pytest.approx(1e-3 * 0.5**depth)
    assert rate[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.5**N_BLOCKS)


def test_last_n_refuses_more_layers_than_the_model_has(tiny_bert_dir, toy_classification_data):
    config = TrainConfig(model=str(tiny_bert_dir), strategy="last-n", layers=N_BLOCKS + 1)
    with pytest.raises(StrategyError, match=rf"layers={N_BLOCKS + 1} .* at most {N_BLOCKS}"):
        tunelab.run.training.prepare(config, toy_classification_data)


def test_lora_target_modules_is_said_to_be_ignored_where_no_adapter_reads_it_and_described_where_one_does():
    from tunelab.strategies.base import unused_options

    # last-n, gradual and prompt-tuning adapt no projection: the flag was silently dropped
    for strategy in ("last-n", "gradual", "prompt-tuning", "head"):
        assert unused_options(TrainConfig(strategy=strategy, lora_target_modules="query")) == ["lora_target_modules="]
    for strategy in ("lora", "ia3"):
        config = TrainConfig(strategy=strategy, lora_target_modules="query,value")
        assert unused_options(config) == []
        # the model card and the report say which projections were adapted, not the strategy's own choice
        said = get_strategy(strategy).describe(config, "classification", num_blocks=N_BLOCKS)
        assert "the projections --lora-target-modules names (query,value) of all 3 blocks" in said
        assert "keys and values" not in said and "MLP" not in said


def test_gradual_run_shorter_than_its_stages_says_which_weights_never_trained(tiny_bert_dir, toy_classification_data,
                                                                               tmp_path):
    # 3 blocks: 3 stages; 48 rows at batch 32 make 2 optimizer steps, so the last stage (block 0, the embeddings) never
    # came, while the run was said to train every weight in stages
    config = TrainConfig(model=str(tiny_bert_dir), strategy="gradual", epochs=1, batch_size=32, cache=False,
                         forgetting=False, out=str(tmp_path / "short"))
    record = tunelab.run.training.train(config, data=toy_classification_data, progress=False)
    info = record["train_info"]
    assert info["steps"] == 2 and info["trainable_params"] < info["total_params"]
    assert ("gradual unfreezing made 2 optimizer steps, fewer than its 3 stages, and stopped at stage 2: its lowest 1 "
            "block and the embeddings never trained; give it at least 3 steps") in " ".join(info["notes"])
    # enough steps: every stage came, nothing to say
    enough = config.replace(batch_size=8, out=str(tmp_path / "enough"))
    info = tunelab.run.training.train(enough, data=toy_classification_data, progress=False)["train_info"]
    assert info["trainable_params"] == info["total_params"]
    assert not [n for n in info["notes"] if "gradual unfreezing" in n]


def test_prompt_tuning_starts_from_the_tokens_of_a_text_when_asked(tiny_bert_dir, toy_classification_data):
    """peft's TEXT initialisation of a soft prompt (``prompt_tuning_init_text``) could not be chosen: every soft prompt
    started random. ``--prompt-init-text`` starts it from the text's token embeddings, repeated to the prompt's
    length, and the model card says so; an empty text is refused."""
    from transformers import AutoTokenizer

    from tunelab.errors import ConfigError
    from tunelab.run.training import prepare

    text = "good or bad"
    config = TrainConfig(model=str(tiny_bert_dir), strategy="prompt-tuning", num_virtual_tokens=VIRTUAL_TOKENS + 3,
                         prompt_init_text=text, epochs=1, batch_size=8)
    prepared = prepare(config, data=toy_classification_data)
    prompt = prepared.model.prompt_encoder["default"].embedding.weight
    ids = AutoTokenizer.from_pretrained(tiny_bert_dir)(text)["input_ids"]
    ids = (ids * VIRTUAL_TOKENS * 2)[: VIRTUAL_TOKENS + 3]
    words = prepared.model.get_input_embeddings().weight
    assert torch.equal(prompt.detach(), words[ids].detach())
    assert 'started from the tokens of "good or bad"' in get_strategy("prompt-tuning").describe(config, "classification")
    random_start = prepare(config.replace(prompt_init_text=None), data=toy_classification_data)
    assert not torch.equal(random_start.model.prompt_encoder["default"].embedding.weight.detach(), words[ids].detach())
    with pytest.raises(ConfigError, match="prompt_init_text= is empty"):
        prepare(config.replace(prompt_init_text="  "), data=toy_classification_data)


def test_last_n_on_every_block_says_only_the_embeddings_stay_frozen():
    """last-n over all of a model's blocks (ALBERT's one shared block, by default) froze 'the lower 0 blocks'."""
    from tunelab.config import TrainConfig
    from tunelab.strategies import get_strategy

    text = get_strategy("last-n").describe(TrainConfig(), "classification", num_blocks=1)
    assert text.startswith("the one block") and text.endswith("; only the embeddings are frozen")
    assert get_strategy("last-n").describe(TrainConfig(), "classification", num_blocks=6).endswith(
        "; the lower 4 blocks and the embeddings are frozen")


@pytest.mark.parametrize("strategy", ["lora", "ia3", "head", "last-n"])
def test_a_model_of_one_block_is_told_as_the_one_block(strategy):
    """ALBERT shares one block among its layers: lora's model card said 'projections of all 1 blocks', last-n
    'the top 1 of 1 blocks'."""
    from tunelab.config import TrainConfig
    from tunelab.strategies import get_strategy

    text = get_strategy(strategy).describe(TrainConfig(), "classification", num_blocks=1)
    assert "the one block" in text and "1 block" not in text
    assert "all 6 blocks" in get_strategy(strategy).describe(TrainConfig(layers=6), "classification", num_blocks=6)
