"""Conformance across architectures: every strategy that applies, on tiny random models of eleven
transformers architectures built from a config here (no download, 2 blocks, hidden 32).

Encoders: BERT, RoBERTa, DistilBERT, DeBERTa-v2, MPNet, ModernBERT; decoders: GPT-2, Llama, Qwen2,
Gemma 3 (text), Phi-3 — classification for all, causal LM for the decoders. Each case trains for real
through ``train()`` and must show:

- frozen weights bit-identical after training, every trainable tensor changed;
- the trainable count equal to the strategy's definition, computed here from the plain model and a
  table of facts written down per architecture (not from tunelab's layout);
- the saved artifact loads with plain transformers / peft and gives the same logits;
- LoRA on the attention projections, IA3 on keys, values and the feed-forward output;
- the frozen-layer cache giving the uncached logits wherever it is used;
- a strategy that cannot apply failing with one line that says why.

The same facts are checked through the ``tunelab train`` command on saved GPT-2 and MPNet folders.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import tunelab.run.artifacts
import tunelab.run.training
from conftest import (
    _NEGATIVE,
    _POSITIVE,
    _sentence,
    assert_same_logits,
    assert_same_plain_logits,
    tiny_tokenizer,
)
from tunelab.config import TrainConfig
from tunelab.errors import StrategyError
from tunelab.models import unused_trainable

N_BLOCKS = 2
TEXTS = ["the film was really good and moving", "a dull , boring and painful story", "zebra 42 !"]
DIMS = {"hidden_size": 32, "num_hidden_layers": N_BLOCKS, "num_attention_heads": 4, "intermediate_size": 64}
DECODER_IDS = {"bos_token_id": 2, "eos_token_id": 3}  # tiny_tokenizer: [CLS] = 2, [SEP] = 3


def _configs(vocab: int, pad: int) -> dict[str, tuple[Any, str]]:
    """name -> (config, class saved as the pre-trained checkpoint)."""
    import transformers as T

    common = {"vocab_size": vocab, "pad_token_id": pad, "max_position_embeddings": 64}
    return {
        "bert": (T.BertConfig(**common, **DIMS), "BertModel"),
        "roberta": (T.RobertaConfig(**common, **DIMS), "RobertaModel"),
        "distilbert": (
            T.DistilBertConfig(vocab_size=vocab, pad_token_id=pad, max_position_embeddings=64, dim=32, n_layers=N_BLOCKS, n_heads=4, hidden_dim=64),
            "DistilBertModel",
        ),
        "deberta-v2": (T.DebertaV2Config(**common, **DIMS, relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"]), "DebertaV2Model"),
        "mpnet": (T.MPNetConfig(**common, **DIMS), "MPNetModel"),
        "modernbert": (
            T.ModernBertConfig(**common, **DIMS, global_attn_every_n_layers=2, local_attention=8, bos_token_id=2, cls_token_id=2, sep_token_id=3, eos_token_id=3),
            "ModernBertModel",
        ),
        "gpt2": (T.GPT2Config(vocab_size=vocab, pad_token_id=pad, n_positions=64, n_embd=32, n_layer=N_BLOCKS, n_head=4, **DECODER_IDS), "GPT2LMHeadModel"),
        "llama": (T.LlamaConfig(**common, **DIMS, **DECODER_IDS, num_key_value_heads=2, tie_word_embeddings=True), "LlamaForCausalLM"),
        "qwen2": (T.Qwen2Config(**common, **DIMS, **DECODER_IDS, num_key_value_heads=2), "Qwen2ForCausalLM"),
        "gemma3": (T.Gemma3TextConfig(**common, **DIMS, **DECODER_IDS, num_key_value_heads=2, head_dim=8, sliding_window=8), "Gemma3ForCausalLM"),
        "phi3": (T.Phi3Config(**common, **DIMS, **DECODER_IDS, num_key_value_heads=2), "Phi3ForCausalLM"),
    }


ENCODERS = ("bert", "roberta", "distilbert", "deberta-v2", "mpnet", "modernbert")
DECODERS = ("gpt2", "llama", "qwen2", "gemma3", "phi3")
ARCHS = ENCODERS + DECODERS


@dataclass(frozen=True)
class Facts:
    """What a person reading each architecture's modeling file writes down (block-relative names)."""

    after: tuple[str, ...]  # body modules above the blocks that last-n trains with the top blocks
    pooler: tuple[str, ...]  # body modules every strategy trains with the classification head
    attention: tuple[str, ...]  # the attention's input projections (q, k, v or fused)
    kv: tuple[str, ...]  # IA3's rescaled attention projections: keys and values (or the fused one)
    ff_out: str  # the feed-forward output projection
    bias_added: tuple[str, ...] | None  # projections bitfit gives zero biases (None: bitfit cannot apply)


_BERT_LIKE = {
    "attention": ("attention.self.query", "attention.self.key", "attention.self.value"),
    "kv": ("attention.self.key", "attention.self.value"),
    "ff_out": "output.dense",
    "bias_added": (),
}
_LLAMA_LIKE = {
    "after": ("model.norm",),
    "pooler": (),
    "attention": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "kv": ("self_attn.k_proj", "self_attn.v_proj"),
    "ff_out": "mlp.down_proj",
}
_ALL_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FACTS = {
    "bert": Facts(after=("bert.pooler",), pooler=("bert.pooler",), **_BERT_LIKE),
    "roberta": Facts(after=(), pooler=(), **_BERT_LIKE),  # RobertaForSequenceClassification: no pooler
    "distilbert": Facts((), (), ("attention.q_lin", "attention.k_lin", "attention.v_lin"), ("attention.k_lin", "attention.v_lin"), "ffn.lin2", ()),
    "deberta-v2": Facts(
        (), (), ("attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"),
        ("attention.self.key_proj", "attention.self.value_proj"), "output.dense", (),
    ),
    "mpnet": Facts((), (), ("attention.attn.q", "attention.attn.k", "attention.attn.v"), ("attention.attn.k", "attention.attn.v"), "output.dense", ()),
    "modernbert": Facts(("model.final_norm",), (), ("attn.Wqkv",), ("attn.Wqkv",), "mlp.Wo", ("attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo")),
    "gpt2": Facts(("transformer.ln_f",), (), ("attn.c_attn",), ("attn.c_attn",), "mlp.c_proj", ()),
    "llama": Facts(**_LLAMA_LIKE, bias_added=_ALL_PROJ),
    "qwen2": Facts(**_LLAMA_LIKE, bias_added=()),  # q/k/v already have biases
    "gemma3": Facts(**_LLAMA_LIKE, bias_added=("q_proj", "k_proj", "v_proj", "o_proj")),  # attention_bias only
    "phi3": Facts(("model.norm",), (), ("self_attn.qkv_proj",), ("self_attn.qkv_proj",), "mlp.down_proj", None),
}


@pytest.fixture(scope="module")
def arch_dir(tmp_path_factory):
    """``arch_dir(name)``: a saved tiny random checkpoint of that architecture + the tiny tokenizer (built once)."""
    import transformers

    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            tokenizer = tiny_tokenizer()
            if name in DECODERS:
                tokenizer.eos_token = "[SEP]"
            config, cls = _configs(tokenizer.vocab_size, tokenizer.pad_token_id)[name]
            torch.manual_seed(0)
            folder = tmp_path_factory.mktemp(f"arch-{name}")
            getattr(transformers, cls)(config).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            built[name] = folder
        return built[name]

    return build


def _data(task: str):
    import random

    from datasets import Dataset

    from tunelab.data import TaskData

    rng = random.Random(0)

    def split(n: int) -> Dataset:
        labels = [i % 2 for i in range(n)]
        texts = [_sentence(rng, _POSITIVE if y else _NEGATIVE) for y in labels]
        return Dataset.from_dict({"text": texts, "label": labels} if task == "classification" else {"text": texts})

    labels = {"label_names": ["neg", "pos"]} if task == "classification" else {}
    return TaskData(task=task, train=split(16), validation=split(8), test=split(8), source="toy", fingerprint=f"toy-{task}", **labels)


DATA = {"classification": None, "causal-lm": None}


def data_for(task: str):
    if DATA[task] is None:
        DATA[task] = _data(task)
    return DATA[task]


def _config(model_dir: Path, strategy: str, out: Path, cache_dir: Path, **extra) -> TrainConfig:
    values = dict(
        model=str(model_dir), strategy=strategy, epochs=1, batch_size=8, max_length=16, layers=1, num_virtual_tokens=4,
        out=str(out), overwrite=True, cache_dir=str(cache_dir), cache_precision="fp32",
    )
    values.update(extra)
    return TrainConfig(**values)


# ----------------------------------------------------------------------------- expected counts


def _plain(model_dir: Path, task: str) -> nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if task == "classification":
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    return AutoModelForCausalLM.from_pretrained(model_dir)


def _blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    return next((n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == N_BLOCKS)


def _projection(model: nn.Module, relative: str) -> list[nn.Module]:
    path, _ = _blocks(model)
    return [model.get_submodule(f"{path}.{i}.{relative}") for i in range(N_BLOCKS)]


def _in_out(module: nn.Module) -> tuple[int, int]:
    w = module.weight
    return (w.shape[0], w.shape[1]) if type(module).__name__ == "Conv1D" else (w.shape[1], w.shape[0])


def expected_trainable(strategy: str, arch: str, model_dir: Path, task: str) -> tuple[int, int]:
    from transformers.pytorch_utils import Conv1D

    model, facts = _plain(model_dir, task), FACTS[arch]
    numel = lambda keep: sum(p.numel() for n, p in model.named_parameters() if keep(n))  # noqa: E731
    total = numel(lambda n: True)
    body = model.base_model_prefix
    head_names = tuple(f"{c}." for c, _ in model.named_children() if c != body and c != "lm_head")
    # the new task head: the modules outside the body and a pooler above the blocks (every strategy trains both)
    head_names += tuple(f"{p}." for p in facts.pooler) if task == "classification" else ()
    head = numel(lambda n: n.startswith(head_names))
    path, blocks = _blocks(model)
    if strategy == "head":
        return head, total
    if strategy == "last-n":
        top = (f"{path}.{N_BLOCKS - 1}.",) + tuple(f"{p}." for p in facts.after)
        return numel(lambda n: n.startswith(top + head_names)), total
    if strategy == "lora":
        linears = [m for m in blocks.modules() if isinstance(m, (nn.Linear, Conv1D))]
        lora = sum(8 * sum(_in_out(m)) for m in linears)
        return lora + head, total + lora  # the head once: the saved model holds it once
    if strategy == "ia3":
        ia3 = sum(_in_out(m)[1] for r in facts.kv for m in _projection(model, r))
        ia3 += sum(_in_out(m)[0] for m in _projection(model, facts.ff_out))
        return ia3 + head, total + ia3  # the head once: the saved model holds it once
    if strategy == "bitfit":
        added = sum(
            m.out_features for n, m in blocks.named_modules()
            if isinstance(m, nn.Linear) and m.bias is None and n.endswith(facts.bias_added)
        )
        biases = numel(lambda n: n.endswith(".bias") and not n.startswith(head_names))
        return biases + added + head, total + added
    if strategy == "gradual":
        return total, total
    if strategy == "prompt-tuning":
        prompt = 4 * model.get_input_embeddings().embedding_dim
        return prompt + head, total + prompt  # the head once: the saved model holds it once
    raise AssertionError(f"no definition for {strategy}")


# ----------------------------------------------------------------------------- running a case


@dataclass
class Captured:
    record: dict[str, Any]
    before: dict[str, torch.Tensor]
    trainable_at_start: set[str]
    model: nn.Module
    model_dir: Path
    base_dir: Path


def run_captured(config: TrainConfig, data) -> Captured:
    seen: dict[str, Any] = {}
    real_prepare, real_write = tunelab.run.training.prepare, tunelab.run.artifacts.write_artifact

    def spy_prepare(*args, **kwargs):
        prepared = real_prepare(*args, **kwargs)
        seen["before"] = {n: p.detach().clone() for n, p in prepared.model.named_parameters()}
        seen["trainable"] = {n for n, p in prepared.model.named_parameters() if p.requires_grad}
        return prepared

    def spy_write(run_, *args, **kwargs):
        seen["model"] = run_.model
        return real_write(run_, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tunelab.run.training, "prepare", spy_prepare)
        mp.setattr(tunelab.run.artifacts, "write_artifact", spy_write)
        record = tunelab.run.training.train(config, data=data, progress=False)
    return Captured(record, seen["before"], seen["trainable"], seen["model"].eval(), Path(config.out) / "model", Path(config.model))


def load_plainly(captured: Captured, task: str) -> nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    if (captured.model_dir / "adapter_config.json").exists():
        from peft import PeftModel

        base = cls.from_pretrained(captured.base_dir, **({"num_labels": 2} if task == "classification" else {}))
        return PeftModel.from_pretrained(base, captured.model_dir).eval()
    return cls.from_pretrained(captured.model_dir).eval()


CLASSIFICATION = ("head", "last-n", "lora", "ia3", "bitfit", "gradual", "prompt-tuning")
CAUSAL = ("last-n", "lora", "ia3")
CASES = [(a, s, "classification") for a in ARCHS for s in CLASSIFICATION] + [(a, s, "causal-lm") for a in DECODERS for s in CAUSAL]


@pytest.mark.parametrize(("arch", "strategy", "task"), CASES, ids=[f"{a}-{s}-{t}" for a, s, t in CASES])
def test_strategy_conforms(arch, strategy, task, arch_dir, tmp_path):
    base = arch_dir(arch)
    config = _config(base, strategy, tmp_path / "out", tmp_path / "features")
    if strategy == "bitfit" and FACTS[arch].bias_added is None:
        with pytest.raises(StrategyError, match=r"^bitfit cannot apply to this \w+ model: its blocks have no bias terms"):
            tunelab.run.training.train(config, data=data_for(task), progress=False)
        assert not (tmp_path / "out").exists()
        return
    captured = run_captured(config, data_for(task))
    info = captured.record["train_info"]
    # the trainable count is the strategy's definition
    assert (info["trainable_params"], info["total_params"]) == expected_trainable(strategy, arch, base, task)
    # frozen tensors bit-identical, every trainable one changed
    after = dict(captured.model.named_parameters())
    assert set(after) == set(captured.before)
    trainable = {n for n, p in after.items() if p.requires_grad}
    unchanged = sorted(n for n in trainable if torch.equal(after[n].detach().cpu(), captured.before[n].cpu()))
    assert not unchanged, f"trainable tensors that did not change: {unchanged[:5]}"
    moved = sorted(n for n in set(after) - trainable if not torch.equal(after[n].detach().cpu(), captured.before[n].cpu()))
    assert not moved, f"frozen tensors that changed: {moved[:5]}"
    # every trainable tensor trained, so several processes need not look for unused ones each step
    assert unused_trainable(captured.model) == []
    # the artifact loads without tunelab and computes the same
    assert_same_plain_logits(load_plainly(captured, task), captured.model, captured.model_dir, TEXTS, rtol=1e-5, atol=1e-5)
    if strategy in ("head", "last-n"):  # a frozen prefix: the cache is used on every architecture
        assert info["cache"]["used"], info["cache"]
        assert not any("cache not used" in n for n in info["notes"])


# ----------------------------------------------------------------------------- the cache


@pytest.mark.parametrize(
    ("arch", "strategy", "task"),
    [(a, s, "classification") for a in ARCHS for s in ("head", "last-n")] + [(a, "last-n", "causal-lm") for a in DECODERS],
)
def test_cache_gives_the_uncached_output(arch, strategy, task, arch_dir, tmp_path, monkeypatch):
    from tunelab.run import cache as frozen_cache
    from tunelab.run.padding import task_collator

    monkeypatch.setenv("TUNELAB_CACHE_DTYPE", "float32")
    run = tunelab.run.training.prepare(_config(arch_dir(arch), strategy, tmp_path / "out", tmp_path / "features"), data_for(task))
    run.model.eval()
    ds = run.tokenized["validation"]
    n = min(6, len(ds))
    rows = [{k: ds[i][k] for k in ds.column_names if k != "length"} for i in range(n)]
    # the run's own collator: a causal LM's blocks with their position ids and each text attending to itself only
    collate = task_collator(run.tokenizer, task, run.max_length, run.document_mask)
    pick = (lambda out: out.logits) if task == "classification" else (lambda out: out.loss)
    with torch.no_grad():
        expected = pick(run.model(**collate(rows)))
    plan = frozen_cache.plan(run)
    assert plan is not None and plan.split == (N_BLOCKS if strategy == "head" else N_BLOCKS - 1)
    sets = tuple(run.tokenized[s] for s in frozen_cache.SPLITS)
    _, val, _, collator, info = frozen_cache.apply(plan, run, sets, collator=collate)
    assert info["used"], info
    if strategy == "head":  # only what the head reads: BERT-style encoders the first token, decoders the last
        assert info["positions"] == ("first" if arch in ENCODERS else "last")
    with torch.no_grad():
        got = pick(run.model(**collator([val[i] for i in range(n)])))
    frozen_cache.restore(plan, run)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # restored: the whole model again
        torch.testing.assert_close(pick(run.model(**collate(rows))), expected)


def test_cache_falls_back_where_the_body_cannot_be_fed(arch_dir, tmp_path, monkeypatch):
    """A body that ignores what the stand-in blocks return (here: a block that must run) fails the
    check: the run trains without the cache, says why, and still conforms."""
    from tunelab.run import cache as frozen_cache

    real = frozen_cache._skip_forward

    def broken(layout, feed):
        forward = real(layout, feed)
        return lambda *a, **k: forward(*a, **k) * 2 if layout.block_output is None else forward(*a, **k)

    monkeypatch.setattr(frozen_cache, "_skip_forward", broken)
    config = _config(arch_dir("llama"), "last-n", tmp_path / "out", tmp_path / "features")
    record = tunelab.run.training.train(config, data=data_for("classification"), progress=False)
    cache = record["train_info"]["cache"]
    assert not cache["used"] and "differs" in cache["fallback"]
    assert any(n.startswith("frozen-layer cache not used") for n in record["train_info"]["notes"])


def test_a_cache_whose_bfloat16_pass_fails_is_built_in_float32(tmp_path):
    """DeBERTa (v1) fills its attention mask with float32's minimum, which bfloat16 autocast cannot hold: the cache's
    bfloat16 pass fails, and the cache is built in float32 instead of being given up."""
    import transformers as T

    folder = _saved_tiny(tmp_path / "deberta", lambda tok: T.DebertaModel(T.DebertaConfig(
        vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, max_position_embeddings=64, **DIMS)))
    record = tunelab.run.training.train(_config(folder, "head", tmp_path / "out", tmp_path / "f", cache_precision="bf16"),
                                        data=data_for("classification"), progress=False)
    cache = record["train_info"]["cache"]
    assert cache["used"] and cache["precision"] == "fp32"
    assert not any(n.startswith("frozen-layer cache not used") for n in record["train_info"]["notes"])


# ----------------------------------------------------------------------------- adapter targets


@pytest.mark.parametrize("arch", ARCHS)
def test_adapters_go_on_attention_and_feed_forward(arch, arch_dir):
    from tunelab.models import ia3_targets, load_model, lora_targets, model_layout

    model, _ = load_model(str(arch_dir(arch)), task="classification", label_names=["neg", "pos"])
    layout = model_layout(model)
    facts = FACTS[arch]
    path, blocks = _blocks(model)
    lora = set(lora_targets(layout).modules)
    for i in range(N_BLOCKS):
        for r in facts.attention + (facts.ff_out,):
            assert f"{path}.{i}.{r}" in lora
    assert all(n.startswith(f"{path}.") for n in lora)  # never the head, never the pooler
    ia3 = ia3_targets(layout)
    want = {f"{path}.{i}.{r}" for i in range(N_BLOCKS) for r in facts.kv + (facts.ff_out,)}
    assert set(ia3.modules) == want
    assert set(ia3.feedforward) == {f"{path}.{i}.{facts.ff_out}" for i in range(N_BLOCKS)}
    top = lora_targets(layout, top=1)
    assert {n.split(f"{path}.")[1].split(".")[0] for n in top.modules} == {str(N_BLOCKS - 1)}


def _untrained(config):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


def _more_blocks():
    """Block shapes the eleven architectures above do not have: attention and feed-forward side by side on the same
    input (Phi, Falcon's old parallel attention with a fused q/k/v), and mixtures of experts (experts as fused
    parameters; a shared expert beside them)."""
    import transformers as T

    common = {"vocab_size": 64, "pad_token_id": 0, "max_position_embeddings": 64, "num_labels": 2}
    return {
        "phi": (T.PhiConfig(**common, **DIMS), ("self_attn.k_proj", "self_attn.v_proj"), "mlp.fc2"),
        "falcon-parallel": (T.FalconConfig(vocab_size=64, pad_token_id=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           parallel_attn=True, new_decoder_architecture=False, multi_query=True, num_labels=2),
                            ("self_attention.query_key_value",), "mlp.dense_4h_to_h"),
        "qwen2-moe": (T.Qwen2MoeConfig(**common, **DIMS, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                                       moe_intermediate_size=16, shared_expert_intermediate_size=32),
                      ("self_attn.k_proj", "self_attn.v_proj"), "mlp.shared_expert.down_proj"),
        "mixtral": (T.MixtralConfig(**common, **DIMS, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2), None, None),
    }


@pytest.mark.parametrize("arch", ["phi", "falcon-parallel", "qwen2-moe", "mixtral"])
def test_ia3_finds_keys_values_and_the_feed_forward_output_in_other_block_shapes(arch):
    """Not the feed-forward input that reads the attention's input (parallel blocks), not the attention's output
    projection, a router or a gate as the feed-forward output (mixtures of experts): where a block has no dense
    feed-forward output, IA3 is refused in one line."""
    from tunelab.models import ia3_targets, model_layout

    config, kv, ff_out = _more_blocks()[arch]
    layout = model_layout(_untrained(config))
    if kv is None:
        with pytest.raises(StrategyError, match=r"^ia3 cannot apply to this mixtral model: no dense projection outside the attention"):
            ia3_targets(layout)
        return
    path = layout.blocks_path
    ia3 = ia3_targets(layout)
    assert set(ia3.modules) == {f"{path}.{i}.{r}" for i in range(N_BLOCKS) for r in (*kv, ff_out)}
    assert set(ia3.feedforward) == {f"{path}.{i}.{ff_out}" for i in range(N_BLOCKS)}


def test_a_run_says_which_weights_an_adapter_of_dense_projections_leaves_as_they_were():
    """Mixtral's experts are fused 3-D tensors, not dense modules: an adapter of dense projections leaves them as they
    were and says so; LoRA reaches them (peft's target_parameters) unless dropout, DoRA or named modules rule it out."""
    from tunelab.models import model_layout
    from tunelab.strategies import STRATEGIES, get_strategy

    config, _, _ = _more_blocks()["mixtral"]
    layout = model_layout(_untrained(config))
    assert layout.fused_parameters == ("mlp.experts.down_proj", "mlp.experts.gate_up_proj")
    note = layout.unadaptable_note("ia3")
    assert note is not None and note.startswith("ia3 adapts dense projections only: this mixtral model holds ")
    assert "(mlp.experts.down_proj, mlp.experts.gate_up_proj: a mixture of experts' experts), which stay as pre-trained" in note
    lora = get_strategy("lora")
    assert lora.left_pretrained(layout, TrainConfig(strategy="lora")) is None
    assert lora.left_pretrained(layout, TrainConfig(strategy="lora", lora_dropout=0.1)).startswith(
        "lora adapts dense projections only here (peft adapts fused experts without --lora-dropout): this mixtral model")
    assert "(--lora-target-modules names dense projections)" in lora.left_pretrained(layout, TrainConfig(strategy="lora", lora_target_modules="q_proj"))
    assert model_layout(_untrained(_more_blocks()["qwen2-moe"][0])).unadaptable_note("ia3") is not None
    assert model_layout(_untrained(_more_blocks()["phi"][0])).unadaptable_note("ia3") is None
    assert {n for n, s in STRATEGIES.items() if s.adapts_modules} == {"lora", "ia3"}


def test_a_convolutions_kernel_is_not_taken_for_fused_experts():
    """ConvBERT's separable convolutions hold 3-D kernels inside its blocks: they were taken for a mixture of experts'
    fused experts, so LoRA put peft's per-expert adapters (target_parameters) on the convolution kernels and IA3 said
    that 0 % of the weights, "a mixture of experts' experts", stayed as pre-trained. No fused experts there: LoRA goes on
    the dense projections alone, and nothing is said."""
    import transformers as T

    from tunelab.models import lora_targets, model_layout

    layout = model_layout(_untrained(T.ConvBertConfig(vocab_size=64, pad_token_id=0, max_position_embeddings=64, embedding_size=32, **DIMS)))
    assert any(p.dim() == 3 for p in layout.blocks[0].parameters())  # the convolutions' kernels
    assert layout.fused_parameters == ()
    assert layout.unadaptable_note("ia3") is None
    assert lora_targets(layout).parameters == ()


def test_lora_adapts_a_mixture_of_experts_fused_experts(tmp_path):
    """transformers 5 keeps a mixture of experts' experts as 3-D tensors (77 % of a tiny Mixtral), which LoRA on dense
    projections does not reach. LoRA adapts them too, as peft's target_parameters: they train, the frozen experts stay
    bit-identical, the saved adapter loads with plain peft and computes the same, and --lora-layers limits them too."""
    import transformers as T

    folder = _saved_tiny(tmp_path / "mixtral", lambda tok: T.MixtralForCausalLM(T.MixtralConfig(
        vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, max_position_embeddings=64, **DIMS, num_key_value_heads=2,
        num_local_experts=4, num_experts_per_tok=2)))
    captured = run_captured(_config(folder, "lora", tmp_path / "out", tmp_path / "f"), data_for("classification"))
    info = captured.record["train_info"]
    assert not any("stay as pre-trained" in n for n in info["notes"]), info["notes"]
    trainable = {n for n, p in captured.model.named_parameters() if p.requires_grad}
    experts = {n for n in trainable if ".mlp.experts." in n and ".lora_" in n}
    assert {n.split(".mlp.")[0].rsplit(".", 1)[1] for n in experts} == {str(i) for i in range(N_BLOCKS)}  # every block
    after = dict(captured.model.named_parameters())
    assert all(not torch.equal(after[n].detach(), captured.before[n]) for n in experts if ".lora_B." in n)
    frozen = [n for n in after if ".mlp.experts." in n and n.endswith(("gate_up_proj", "down_proj"))]  # under peft's wrappers
    assert frozen and all(torch.equal(after[n].detach(), captured.before[n]) for n in frozen)
    adapter = json.loads((captured.model_dir / "adapter_config.json").read_text())
    assert len(adapter["target_parameters"]) == 2 * N_BLOCKS
    assert_same_plain_logits(load_plainly(captured, "classification"), captured.model, captured.model_dir, TEXTS, rtol=1e-5, atol=1e-5)
    top = run_captured(_config(folder, "lora", tmp_path / "out2", tmp_path / "f", lora_layers=1), data_for("classification"))
    adapted = {n.split(".mlp.")[0].rsplit(".", 1)[1] for n, p in top.model.named_parameters() if p.requires_grad and ".mlp.experts." in n}
    assert adapted == {str(N_BLOCKS - 1)}
    with_dropout = run_captured(_config(folder, "lora", tmp_path / "out3", tmp_path / "f", lora_dropout=0.1), data_for("classification"))
    assert not any(".mlp.experts." in n for n, p in with_dropout.model.named_parameters() if p.requires_grad)
    assert any("here (peft adapts fused experts without --lora-dropout)" in n for n in with_dropout.record["train_info"]["notes"])


def test_lora_target_modules_override(arch_dir, tmp_path):
    mpnet = arch_dir("mpnet")
    run = tunelab.run.training.prepare(_config(mpnet, "lora", tmp_path / "o", tmp_path / "f", lora_target_modules="q,v"), data_for("classification"))
    adapted = sorted(n.rsplit(".lora_A", 1)[0].split("mpnet.encoder.layer.")[1] for n, _ in run.model.named_parameters() if ".lora_A." in n)
    assert adapted == ["0.attention.attn.q", "0.attention.attn.v", "1.attention.attn.q", "1.attention.attn.v"]
    run = tunelab.run.training.prepare(
        _config(mpnet, "ia3", tmp_path / "o", tmp_path / "f", lora_target_modules=r".*layer\.1\.(attention\.attn\.k|output\.dense)"),
        data_for("classification"),
    )
    vectors = {n.split(".ia3_l")[0].split("layer.")[1]: p.shape for n, p in run.model.named_parameters() if ".ia3_l." in n}
    assert vectors == {"1.attention.attn.k": torch.Size([32, 1]), "1.output.dense": torch.Size([1, 64])}  # feed-forward: input side
    with pytest.raises(StrategyError, match=r"lora_target_modules='nothing_here' matches no dense projection"):
        tunelab.run.training.prepare(_config(mpnet, "lora", tmp_path / "o", tmp_path / "f", lora_target_modules="nothing_here"), data_for("classification"))
    assert TrainConfig(lora_target_modules="(").problems()[0].startswith("lora_target_modules='(' is not a valid regular expression")


def test_failed_run_leaves_a_fresh_out_folder_clean(arch_dir, tmp_path, monkeypatch):
    """A run that fails before its first checkpoint leaves no run_config.yaml / checkpoints/ behind in
    the folder it created (a run with a complete checkpoint keeps it for --resume)."""
    from tunelab.errors import TrainingError
    from tunelab.run import resilience

    def fail(*args, **kwargs):
        raise TrainingError("the loss is not finite at step 1")

    monkeypatch.setattr(resilience, "run_with_batch_search", fail)
    out = tmp_path / "fresh"
    with pytest.raises(TrainingError):
        tunelab.run.training.train(_config(arch_dir("gpt2"), "head", out, tmp_path / "f"), data=data_for("classification"), progress=False)
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError):
        tunelab.run.training.train(
            _config(arch_dir("gpt2"), "head", kept, tmp_path / "f", overwrite=True), data=data_for("classification"), progress=False
        )
    assert (kept / "notes.txt").exists()  # a folder the run did not create is left as it is


# ----------------------------------------------------------------------------- the command


def tunelab_cli(*argv: str) -> tuple[int, str, str]:
    from tunelab.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["-q", *argv])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("arch", ["gpt2", "mpnet"])
def test_cli_trains_head_last_n_and_lora_on_other_architectures(arch, arch_dir, tmp_path):
    import csv

    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for row in data_for("classification").train:
            writer.writerow([row["text"], ["neg", "pos"][row["label"]]])
    common = ["--model", str(arch_dir(arch)), "--data", str(data), "--epochs", "1", "--batch-size", "8", "--max-length", "16",
              "--cache-dir", str(tmp_path / "features"), "--layers", "1"]
    for strategy in ("head", "last-n", "lora"):
        out = tmp_path / strategy
        code, _, err = tunelab_cli("train", *common, "--strategy", strategy, "--out", str(out))
        assert code == 0, err
        record = json.loads((out / "metrics.json").read_text())
        assert record["train_info"]["cache"]["used"] == (strategy != "lora")
    adapter = json.loads((tmp_path / "lora" / "model" / "adapter_config.json").read_text())
    attention = FACTS[arch].attention
    assert all(r.replace(".", r"\.") in adapter["target_modules"] for r in attention), adapter["target_modules"]
    code, _, err = tunelab_cli("train", *common, "--strategy", "lora", "--lora-target-modules", "nope", "--out", str(tmp_path / "bad"))
    assert code == 2 and err.startswith("tunelab: error: --lora-target-modules 'nope' matches no dense projection") and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("strategy", ["full", *CLASSIFICATION])
@pytest.mark.parametrize("arch", ARCHS)
def test_new_head_has_its_own_group_at_the_head_rate(arch, strategy, arch_dir, tmp_path):
    """Whatever the architecture, every trainable parameter of the new head (peft's trained copy inside a
    PeftModel), a pooler above the blocks included, sits in the head group at ``HEAD_LR``; nothing else does."""
    from tunelab.strategies.base import HEAD_LR

    config = _config(arch_dir(arch), strategy, tmp_path / "out", tmp_path / "features")
    try:
        run = tunelab.run.training.prepare(config, data_for("classification"))
    except StrategyError:
        pytest.skip(f"{strategy} does not apply to {arch}")
    groups = run.strategy.param_groups(run.model, run.layout, 1e-4, run.config)
    head_ids = {id(p) for name in run.layout.head_modules for p in run.layout.model.get_submodule(name).parameters()
                if p.requires_grad}
    in_head_group = {id(p) for g in groups if g.get("head") for p in g["params"]}
    assert head_ids and head_ids <= in_head_group
    assert all(g["lr"] == HEAD_LR for g in groups if g.get("head"))
    assert all(g["lr"] != HEAD_LR for g in groups if not g.get("head")) or strategy == "head"


def _unprobed():
    """Bodies whose wiring the probe cannot read: Funnel's blocks are lists of layers inside a list (no block runs as
    one), XLNet's blocks take (sequence, batch, hidden), Canine shortens the sequence inside its body."""
    import transformers as T

    return {
        "funnel": (lambda tok: T.FunnelForSequenceClassification(T.FunnelConfig(
            vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, block_sizes=[1, 1], d_model=32, n_head=4, d_head=8,
            d_inner=64, num_labels=2)), r"the modules taken for its blocks did not run, first to last"),
        "xlnet": (lambda tok: T.XLNetForSequenceClassification(T.XLNetConfig(
            vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, d_model=32, n_layer=2, n_head=4, d_inner=64,
            num_labels=2)), r"its blocks take hidden states shaped \(6, 2, 32\) for a batch of \(2, 6\) tokens, not "
                            r"\(batch, sequence, hidden\)"),
        # characters through hashed embeddings (no token table: get_input_embeddings raises), downsampled in the body
        "canine": (lambda tok: T.CanineForSequenceClassification(T.CanineConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, downsampling_rate=2,
            num_labels=2)), r"index \d+ is out of bounds"),
    }


@pytest.mark.parametrize("arch", ["funnel", "xlnet", "canine"])
def test_a_body_whose_wiring_the_probe_cannot_read_trains_what_needs_no_blocks(arch, tmp_path):
    """The probe cannot read Funnel's nested blocks, XLNet's sequence-first ones or Canine's. It used to refuse the
    model, for full fine-tuning too (which needs no layout), and Canine's missing token table was a traceback: now full, head and BitFit train without the frozen-layer cache and
    save what plain transformers loads with the same logits, and what works by block (LoRA) is refused in one line
    that says why and what applies."""
    from tunelab.models.layout import model_layout

    build, why = _unprobed()[arch]
    folder = _saved_tiny(tmp_path / arch, build)
    layout = model_layout(build(tiny_tokenizer()))
    assert layout.probe is None and re.search(why, layout.blocks_problem())
    for strategy in ("full", "head", "bitfit"):
        captured = run_captured(_config(folder, strategy, tmp_path / strategy, tmp_path / "f"), data_for("classification"))
        info = captured.record["train_info"]
        assert not info["cache"]["used"]
        if strategy == "head":
            assert any(n.startswith(f"frozen-layer cache not used for this {arch} model, trained without it: tunelab "
                                    "cannot read how its blocks are wired") for n in info["notes"])
        assert_same_plain_logits(load_plainly(captured, "classification"), captured.model, captured.model_dir, TEXTS,
                                 rtol=1e-5, atol=1e-5)
    with pytest.raises(StrategyError, match=rf"^lora cannot apply to this {arch} model: tunelab cannot read how its blocks "
                                            rf"are wired \(a probe pass over .*{why}.*\), and it works by block; use one of "
                                            r"head, bitfit, prompt-tuning, full$"):
        tunelab.run.training.train(_config(folder, "lora", tmp_path / "lora", tmp_path / "f"), data=data_for("classification"),
                                   progress=False)
    assert not (tmp_path / "lora").exists()


@pytest.fixture(scope="module")
def longformer_dir(tmp_path_factory):
    """A tiny Longformer: global attention on the first token, which runs its own in-place steps after the
    projections and builds its global-attention mask from ``input_ids``."""
    import transformers as T

    return _saved_tiny(tmp_path_factory.mktemp("arch-longformer"), lambda tok: T.LongformerModel(T.LongformerConfig(
        vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, max_position_embeddings=64, attention_window=4, **DIMS)))


def _saved_tiny(folder: Path, build) -> Path:
    """``build(tokenizer)``'s random model (seed 0) and the tiny tokenizer, saved in ``folder`` as a checkpoint."""
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    build(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_lora_trains_a_model_that_divides_a_projection_in_place(longformer_dir, tmp_path):
    """LoRA's in-place forward on Longformer (``q /= sqrt(d)`` on a global-attention projection's output): trains,
    and the saved adapter loads with plain peft and gives the same logits."""
    captured = run_captured(_config(longformer_dir, "lora", tmp_path / "out", tmp_path / "features"), data_for("classification"))
    assert_same_logits(load_plainly(captured, "classification"), captured.model, captured.model_dir, TEXTS, rtol=1e-5, atol=1e-5)


def test_a_strategy_the_models_own_code_cannot_run_is_refused_before_anything_is_written(longformer_dir, tmp_path):
    """Prompt tuning feeds embeddings; Longformer's classifier builds its global-attention mask from ``input_ids``
    (a TypeError deep in transformers). The adapted model's probe pass turns that into one line, before out/."""
    config = _config(longformer_dir, "prompt-tuning", tmp_path / "out", tmp_path / "features")
    with pytest.raises(StrategyError, match=r"^prompt-tuning cannot run on this longformer model: its forward pass failed "
                                            r"on a probe input \(TypeError: .*modeling_longformer\.py.*\); try another strategy"):
        tunelab.run.training.train(config, data=data_for("classification"), progress=False)
    assert not (tmp_path / "out").exists()


def test_layers_that_share_block_weights_are_said_so(tmp_path, arch_dir):
    """ALBERT runs one block for all its layers: the layout counts the runs, ``--layers`` beyond the blocks says
    why, and a run notes that training the block trains every layer."""
    import transformers as T

    from tunelab.models import load_model, model_layout

    tokenizer = tiny_tokenizer()
    config = T.AlbertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, max_position_embeddings=64,
                            embedding_size=16, **{**DIMS, "num_hidden_layers": 4})
    folder = tmp_path / "albert"
    T.AlbertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    layout = model_layout(load_model(str(folder), task="classification", label_names=["neg", "pos"])[0])
    assert (layout.num_blocks, layout.block_runs) == (1, 4)
    assert model_layout(load_model(str(arch_dir("bert")), task="classification", label_names=["neg", "pos"])[0]).block_runs == 1
    with pytest.raises(StrategyError, match=r"^layers=2 is more than the model's 1 blocks \(its 4 layers share the weights of 1\)"):
        tunelab.run.training.train(_config(folder, "last-n", tmp_path / "out2", tmp_path / "f", layers=2),
                                   data=data_for("classification"), progress=False)
    record = tunelab.run.training.train(_config(folder, "last-n", tmp_path / "out", tmp_path / "f"), data=data_for("classification"),
                                        progress=False)
    assert any("albert shares block weights: its 4 layers run 1 block 4 times each" in n for n in record["train_info"]["notes"])
    # without --layers (its default, 2) last-n trains the one block: compare's default strategies all run on ALBERT
    default = run_captured(_config(folder, "last-n", tmp_path / "out4", tmp_path / "f", layers=None), data_for("classification"))
    assert {n for n in default.trainable_at_start if n.startswith("albert.encoder.albert_layer_groups.0.")}
    # gradual: one block is two stages (the block, then the embeddings with it), so the schedule ends with every weight
    captured = run_captured(_config(folder, "gradual", tmp_path / "out3", tmp_path / "f"), data_for("classification"))
    embeddings = [n for n in captured.before if n.startswith("albert.embeddings.") and n.endswith("word_embeddings.weight")]
    assert embeddings and embeddings[0] not in captured.trainable_at_start  # frozen when training starts
    moved = {n for n, p in captured.model.named_parameters() if not torch.equal(p.detach(), captured.before[n])}
    assert embeddings[0] in moved and captured.record["train_info"]["trainable_share"] == pytest.approx(1.0)


@pytest.mark.parametrize("strategy", ["lora", "prompt-tuning"])
def test_an_adapter_peft_refuses_for_the_model_is_one_line_naming_peft(strategy, tmp_path):
    """Mamba: peft refuses LoRA on its ``out_proj``/``conv1d`` and prompt tuning without attention heads. That is a
    fact about the model, not a bug: one line (exit 2 on the command line), with peft's reason and what to try."""
    import transformers as T

    folder = _saved_tiny(tmp_path / "mamba", lambda tok: T.MambaForCausalLM(T.MambaConfig(
        vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, hidden_size=32, num_hidden_layers=2, state_size=4, **DECODER_IDS)))
    hint = r"; try another strategy, or name the modules with lora_target_modules=$" if strategy == "lora" else r"; try another strategy$"
    with pytest.raises(StrategyError, match=rf"^{strategy} cannot apply to this mamba model: peft refused it \(.+\){hint}"):
        tunelab.run.training.train(_config(folder, strategy, tmp_path / "out", tmp_path / "f", task="causal-lm"),
                                   data=data_for("causal-lm"), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def xlm_dir(tmp_path_factory):
    """A tiny XLM (FlauBERT's architecture): each layer's attention, feed-forward and norms in four parallel lists."""
    import transformers as T

    return _saved_tiny(tmp_path_factory.mktemp("arch-xlm"), lambda tok: T.XLMModel(T.XLMConfig(
        vocab_size=tok.vocab_size, pad_index=tok.pad_token_id, emb_dim=32, n_layers=N_BLOCKS, n_heads=4, max_position_embeddings=64)))


def test_a_body_whose_layers_are_parallel_lists_refuses_the_strategies_that_work_by_block(xlm_dir, tmp_path):
    """No one module of XLM is a layer: last-n, LoRA, IA3 and gradual would reach part of each (last-n trained 53 %
    with every block asked for, LoRA no feed-forward) and are refused in one line; head (without the cache, noted)
    and full train."""
    from tunelab.models import load_model, model_layout

    layout = model_layout(load_model(str(xlm_dir), task="classification", label_names=["neg", "pos"])[0])
    assert layout.blocks_problem() == ("its layers are spread over parallel lists (transformer.attentions, transformer.layer_norm1, "
                                       "transformer.ffns, transformer.layer_norm2) rather than one list of blocks")
    for strategy in ("last-n", "lora", "ia3", "gradual"):
        with pytest.raises(StrategyError, match=rf"^{strategy} cannot apply to this xlm model: its layers are spread over parallel "
                                                r"lists .*, and it works by block; use one of head, bitfit, prompt-tuning, full$"):
            tunelab.run.training.train(_config(xlm_dir, strategy, tmp_path / strategy, tmp_path / "f"), data=data_for("classification"),
                                       progress=False)
    head = tunelab.run.training.train(_config(xlm_dir, "head", tmp_path / "head", tmp_path / "f"), data=data_for("classification"),
                                      progress=False)
    assert not head["train_info"]["cache"].get("used")
    assert any(n.startswith("frozen-layer cache not used for this xlm model") for n in head["train_info"]["notes"])
    full = tunelab.run.training.train(_config(xlm_dir, "full", tmp_path / "full", tmp_path / "f"), data=data_for("classification"),
                                      progress=False)
    assert full["train_info"]["trainable_share"] == pytest.approx(1.0)


def test_gradual_ends_with_a_causal_lms_own_output_embeddings_training(arch_dir, tmp_path):
    """Qwen2's lm_head is untied from its input embeddings: gradual's last stage ("every weight") trains it too, as full
    fine-tuning does (it stayed frozen: 84 % of a tiny Mistral's weights); tied ones are the input embeddings."""
    from tunelab.models import load_model, model_layout

    captured = run_captured(_config(arch_dir("qwen2"), "gradual", tmp_path / "out", tmp_path / "f", task="causal-lm", epochs=2),
                            data_for("causal-lm"))
    assert "lm_head.weight" in captured.before and "lm_head.weight" not in captured.trainable_at_start
    assert not torch.equal(dict(captured.model.named_parameters())["lm_head.weight"].detach(), captured.before["lm_head.weight"])
    assert captured.record["train_info"]["trainable_share"] == pytest.approx(1.0)
    tied = model_layout(load_model(str(arch_dir("llama")), task="causal-lm")[0])
    assert tied.model.config.tie_word_embeddings and tied.output_embedding_prefixes == ()


def test_a_causal_lm_run_measures_the_model_as_loaded_where_it_starts_as_it(arch_dir, tmp_path):
    """A causal LM's adaptation is judged against the model before it (a classifier's against always predicting the
    most frequent class). Every strategy whose prepared model computes what the loaded one does (adapters that start
    as the identity, added zero biases, every weight as loaded) measures it on validation before its first step, the
    same number whichever strategy; a random soft prompt does not start as the model, so prompt tuning measures none."""
    from tunelab.run.outputs import AS_LOADED, ExampleOutputs

    base = arch_dir("llama")
    seen = {}
    for strategy in ("lora", "ia3", "bitfit", "last-n", "full", "prompt-tuning"):
        out = tmp_path / strategy
        record = tunelab.run.training.train(_config(base, strategy, out, tmp_path / "f", task="causal-lm"),
                                            data=data_for("causal-lm"), progress=False)
        seen[strategy] = record["train_info"].get("as_loaded_validation")
        saved = ExampleOutputs.load(out, AS_LOADED)
        assert (saved is None) == (seen[strategy] is None)
        if saved is not None:
            assert saved.metrics()["perplexity"] == pytest.approx(seen[strategy]["perplexity"])
            assert len(saved) == len(ExampleOutputs.load(out, "validation"))  # the same blocks as the final evaluation
    assert seen.pop("prompt-tuning") is None
    values = [s["perplexity"] for s in seen.values()]
    assert all(v == pytest.approx(values[0], rel=1e-3) for v in values), seen
    record = tunelab.run.training.train(_config(arch_dir("bert"), "lora", tmp_path / "cls", tmp_path / "f"),
                                        data=data_for("classification"), progress=False)
    assert "as_loaded_validation" not in record["train_info"]  # a classifier's new head is random: no such reference


@pytest.mark.parametrize("arch", ["roberta", "xlm-roberta"])
def test_an_encoder_keeps_its_own_padding_id_where_its_tokenizer_pads_with_another(arch, tmp_path):
    """A RoBERTa / XLM-R checkpoint whose config keeps its family's padding id (1) beside a tokenizer that pads with
    another (0; a user's own vocabulary): its position table numbers positions from ``pad_token_id + 1``, so loading it
    with the tokenizer's id shifted every pre-trained position by one and the frozen body computed something else
    than the checkpoint. The body computes what plain transformers computes, and the model card's loading lines and
    ``tunelab predict``'s loader give the trained logits."""
    import transformers as T

    from tunelab.run.artifacts import load_artifact

    build = {"roberta": lambda tok: T.RobertaModel(T.RobertaConfig(vocab_size=tok.vocab_size, pad_token_id=1, max_position_embeddings=64, **DIMS)),
             "xlm-roberta": lambda tok: T.XLMRobertaModel(T.XLMRobertaConfig(vocab_size=tok.vocab_size, pad_token_id=1, max_position_embeddings=64, **DIMS))}
    folder = _saved_tiny(tmp_path / "base", build[arch])
    tokenizer = tiny_tokenizer()
    assert tokenizer.pad_token_id == 0
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    ids = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    head = run_captured(_config(folder, "head", tmp_path / "head", tmp_path / "features"), data_for("classification"))
    plain = T.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(head.model.base_model(**ids).last_hidden_state, plain(**ids).last_hidden_state)

    lora = run_captured(_config(folder, "lora", tmp_path / "lora", tmp_path / "features"), data_for("classification"))
    card = (lora.model_dir / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", card, re.S)[0].replace("THIS_FOLDER", repr(str(lora.model_dir)))
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - the model card's own loading lines
    assert_same_logits(namespace["model"].eval(), lora.model, lora.model_dir, TEXTS, rtol=1e-5, atol=1e-5)
    loaded, _, _ = load_artifact(tmp_path / "lora")
    assert_same_logits(loaded, lora.model, lora.model_dir, TEXTS, rtol=1e-5, atol=1e-5)
