"""Selective attention recomputation: same numbers as the plain path, less memory kept for backward."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from tunelab.config import TrainConfig
from tunelab.run.attention import NAME, recompute_attention
from tunelab.run.training import train


def _bert(dropout: float = 0.1) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64, attention_probs_dropout_prob=dropout, num_labels=2)
    config._attn_implementation = "sdpa"
    return BertForSequenceClassification(config).train()


def _step(model, enabled: bool):
    """One seeded forward/backward: (applied, loss, gradients, bytes saved for backward)."""
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(1, 100, (4, 48), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, 30:] = 0  # a padded row: the mask must reach the recomputed attention too
    torch.manual_seed(123)  # the dropout masks
    with recompute_attention(model, enabled) as applied, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0, 1]))
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return applied, out.loss.item(), grads, sum(saved.values())


def test_recomputed_attention_gives_the_plain_paths_loss_and_gradients_for_less_memory():
    model = _bert()
    plain_applied, plain_loss, plain_grads, plain_bytes = _step(model, enabled=False)
    applied, loss, grads, saved_bytes = _step(model, enabled=True)
    assert (plain_applied, applied) == (False, True)
    assert loss == plain_loss  # the same dropout masks: the recomputation replays the random state
    assert all(torch.equal(a, b) for a, b in zip(grads, plain_grads))
    # per layer, the (batch, heads, L, L) softmax and dropped probabilities (float32) and the dropout mask
    # (bool) are no longer kept: 2 layers x 4 x 4 x 48 x 48 elements x 9 bytes at least
    assert plain_bytes - saved_bytes >= 2 * 4 * 4 * 48 * 48 * 9
    assert model.config._attn_implementation == "sdpa"  # restored after the block


def test_it_stays_out_of_the_way_without_dropout_or_without_sdpa():
    assert _step(_bert(dropout=0.0), enabled=True)[0] is False
    eager = _bert()
    eager.config._attn_implementation = "eager"
    assert _step(eager, enabled=True)[0] is False
    llama = LlamaForSequenceClassification(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                       intermediate_size=64, pad_token_id=0))
    with recompute_attention(llama) as applied:  # attention_dropout 0.0: the fused kernel already stores little
        assert applied is False


def test_it_is_undone_on_error():
    model = _bert()
    with pytest.raises(RuntimeError), recompute_attention(model):
        assert model.config._attn_implementation == NAME
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"


def test_training_records_it_and_the_saved_model_does_not_carry_it(tiny_bert_dir, toy_classification_data, tmp_path):
    config = TrainConfig(model=str(tiny_bert_dir), strategy="lora", epochs=1, batch_size=8, out=str(tmp_path / "run"), merge=True,
                         recompute_attention=True)
    record = train(config, data=toy_classification_data, progress=False)
    # on CUDA the fused kernels never store the matrix: the option does not apply there
    assert record["train_info"]["attention_recomputed"] is (not torch.cuda.is_available())
    merged = tmp_path / "run" / "model" / "merged"
    assert NAME not in (merged / "config.json").read_text()
    reloaded = AutoModelForSequenceClassification.from_pretrained(merged)
    assert reloaded.config._attn_implementation != NAME
    assert TrainConfig(model="m", data="d").recompute_attention is False  # opt-in: it costs time on CPU
    off = train(config.replace(recompute_attention=False, out=str(tmp_path / "off")), data=toy_classification_data, progress=False)
    assert off["train_info"]["attention_recomputed"] is False
    assert json.loads((tmp_path / "off" / "metrics.json").read_text())["train_info"]["attention_recomputed"] is False


def test_asked_for_where_it_cannot_apply_it_says_why_once(tiny_llama_dir, toy_lm_data, tmp_path, caplog):
    config = TrainConfig(model=str(tiny_llama_dir), strategy="lora", epochs=1, batch_size=8, max_length=32,
                         out=str(tmp_path / "run"), recompute_attention=True)
    with caplog.at_level("WARNING", logger="tunelab"):
        record = train(config, data=toy_lm_data, progress=False)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("--recompute-attention:")]
    assert len(said) == 1 and "without attention dropout" in said[0] and "LlamaForCausalLM" in said[0]
    assert record["train_info"]["attention_recomputed"] is False
    assert said[0] in record["train_info"]["notes"]  # the record says it too
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunelab"):  # not asked for: nothing said
        train(config.replace(recompute_attention=False, out=str(tmp_path / "off")), data=toy_lm_data, progress=False)
    assert not [r for r in caplog.records if "--recompute-attention" in r.getMessage()]
