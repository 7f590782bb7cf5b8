"""A causal LM's texts packed into one block: each attends only to itself (``--document-mask``, the default)."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_tokenizer

TEXTS = ["the film was really good", "a very dull story and weak acting"]


def _decoder(family: str, tokenizer):
    import transformers as T

    torch.manual_seed(0)
    if family == "gpt2":  # learned absolute positions
        config = T.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                              eos_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id)
        return T.GPT2LMHeadModel(config).eval()
    cls = {"llama": (T.LlamaConfig, T.LlamaForCausalLM), "qwen2": (T.Qwen2Config, T.Qwen2ForCausalLM)}[family]
    config = cls[0](vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                    eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
    return cls[1](config).eval()


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_the_second_text_of_a_block_reads_as_if_alone(family):
    """Two texts packed into one block: the second was conditioned on the first (its logits differed from its own
    by the first text's influence, and GPT-2's positions counted on from the first text's). The block's position ids
    now restart at each text (at the EOS before it, which opens it), the collator leaves the attention mask out, and
    transformers keeps the texts apart: the second text's logits are its logits alone."""
    from tunelab.models import separates_documents
    from tunelab.run.packing import lm_blocks
    from tunelab.run.padding import task_collator

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    model = _decoder(family, tokenizer)
    model.config.use_cache = False  # as the Trainer sets it
    (block,), (labels,), _, (positions,) = lm_blocks({"text": TEXTS}, tokenizer, 64)
    # the first text; the EOS after it opens the second text (read as "<EOS> text"), whose own EOS opens the next
    first = len(tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"])
    assert positions == list(range(first)) + list(range(len(block) - first - 1)) + [0]
    assert block[first] == block[-1] == tokenizer.sep_token_id
    assert separates_documents(model)
    batch = task_collator(tokenizer, "causal-lm", 64, document_mask=True)(
        [{"input_ids": block, "labels": labels, "position_ids": positions, "text_index": 0}])
    assert "attention_mask" not in batch
    second = torch.tensor([block[first:-1]])
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, first:-1]
        alone = model(input_ids=second).logits[0]
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)


def test_a_block_that_starts_inside_a_text_counts_its_positions_from_zero():
    """A text longer than a block goes on in the next one: nothing before it is in that block, so its positions there
    start at 0 (within the model's position table, as in pre-training's windows)."""
    from tunelab.run.packing import lm_blocks

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    blocks, _, _, positions = lm_blocks({"text": ["the film was really good and the plot", "a story"]}, tokenizer, 5)
    assert positions[0] == [0, 1, 2, 3, 4]
    assert positions[1][0] == 0 and all(p < 5 for row in positions for p in row)


def test_a_short_padded_block_keeps_its_tokens_and_the_batch_is_cut_without_a_mask():
    """A split's short last block is padded: without a mask its pads come after every token (never attended, no
    targets), and the micro-batch splitter still cuts such a batch by rows, position ids with it."""
    from tunelab.metrics import IGNORE_INDEX
    from tunelab.run.padding import split_by_padding, task_collator

    tokenizer = tiny_tokenizer()
    tokenizer.eos_token = "[SEP]"
    model = _decoder("llama", tokenizer)
    long = {"input_ids": list(range(10, 18)), "labels": list(range(10, 18)), "position_ids": [0, 1, 2, 0, 1, 2, 3, 4]}
    short = {"input_ids": [20, 21, 22], "labels": [20, 21, 22], "position_ids": [0, 1, 2]}
    batch = task_collator(tokenizer, "causal-lm", None, document_mask=True)([long, short])
    assert "attention_mask" not in batch and batch["input_ids"].shape == (2, 8)
    assert (batch["labels"][1, 3:] == IGNORE_INDEX).all()
    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[1, :3]
        own = model(input_ids=torch.tensor([[20, 21, 22]]), use_cache=False).logits[0]
    torch.testing.assert_close(padded, own, rtol=1e-5, atol=1e-5)
    rows = task_collator(tokenizer, "causal-lm", None, document_mask=True)([long] * 8 + [short] * 8)
    parts = split_by_padding(rows, min_rows=2, max_tokens=32)
    assert parts is not None and all("position_ids" in part and "attention_mask" not in part for part, _ in parts)
    assert sum(len(part["input_ids"]) for part, _ in parts) == 16


@pytest.mark.parametrize(("strategy", "kept_apart"), [("lora", True), ("prompt-tuning", False)])
def test_a_run_keeps_texts_apart_unless_a_soft_prompt_must_be_seen(tiny_llama_dir, toy_lm_data, strategy, kept_apart):
    """The run decides per model and strategy, and says so in one line where it cannot: a soft prompt's virtual
    tokens come first and every text must see them (peft builds its own mask and drops position ids)."""
    from tunelab.config import TrainConfig
    from tunelab.run.training import prepare

    run = prepare(TrainConfig(model=str(tiny_llama_dir), strategy=strategy, max_length=32, num_virtual_tokens=4),
                  toy_lm_data)
    assert run.document_mask is kept_apart
    notes = [w for w in run.warnings if "as with --no-document-mask" in w]
    assert len(notes) == (0 if kept_apart else 1)
    off = prepare(TrainConfig(model=str(tiny_llama_dir), strategy=strategy, max_length=32, num_virtual_tokens=4,
                              document_mask=False), toy_lm_data)
    assert off.document_mask is False and not [w for w in off.warnings if "document-mask" in w]


def test_a_run_records_the_attention_it_trained_with_beside_the_flag_asked(tiny_llama_dir, toy_lm_data, tmp_path):
    """Prompt tuning asked for per-text attention (the default) and packed across texts: run_config.yaml and the
    record's config said ``document_mask: true``, the model's tunelab.json false, and the record nothing of what the
    run did. The config keeps the setting as asked; the record's ``train_info.document_mask`` is what the run did, the
    value tunelab.json holds. A comparison reuses the run whether or not it asks for the flag, which cannot apply."""
    import json

    import yaml

    from tunelab.compare.runner import finished_record
    from tunelab.config import TrainConfig
    from tunelab.run.training import train

    for strategy, kept_apart in (("prompt-tuning", False), ("lora", True)):
        out = tmp_path / strategy
        config = TrainConfig(model=str(tiny_llama_dir), strategy=strategy, max_length=32, num_virtual_tokens=4,
                             epochs=1, batch_size=8, forgetting=False, out=str(out))
        record = train(config, data=toy_lm_data, progress=False)
        assert yaml.safe_load((out / "run_config.yaml").read_text())["document_mask"] is True  # as asked
        assert record["config"]["document_mask"] is True
        assert record["train_info"]["document_mask"] is kept_apart  # as done
        assert json.loads((out / "model" / "tunelab.json").read_text())["document_mask"] is kept_apart
        reused = finished_record(out, TrainConfig.from_dict(record["config"]).replace(document_mask=False))
        assert (reused is not None) is (not kept_apart)  # the flag changes a lora run, not a soft prompt's


@pytest.mark.parametrize(("task", "strategy", "reused"), [("classification", "lora", True),
                                                          ("causal-lm", "prompt-tuning", True),
                                                          ("causal-lm", "lora", False)])
def test_compare_reuses_a_run_recorded_before_the_flag_where_it_could_not_apply(tmp_path, task, strategy, reused):
    """A finished run whose record predates --document-mask (its config without it) was never reused by a comparison
    (``--document-mask None → True``): compare --resume refused every such finished run, a classifier's too. It is
    now read as having packed across texts (config.UNRECORDED): reused where the flag cannot apply (not a causal LM,
    a soft prompt), trained again where it does."""
    import json

    from tunelab.compare.runner import _recorded_settings, finished_record
    from tunelab.config import TrainConfig

    config = TrainConfig(model="m", data="d", strategy=strategy, task=task, out=str(tmp_path))
    old = config.to_dict()
    del old["document_mask"]
    (tmp_path / "metrics.json").write_text(json.dumps({"run_info": {"status": "success"}, "config": old}))
    assert (finished_record(tmp_path, config) is not None) is reused
    assert config.changed_from(_recorded_settings(tmp_path)) == ([] if reused else [("document_mask", False, True)])


def test_an_evaluation_split_keeps_each_packing_batch_tail_and_training_drops_it(tiny_llama_dir, toy_lm_data,
                                                                                 monkeypatch):
    """Texts are packed a batch of rows at a time (LM_PACKING_ROWS) and each batch's last partial block was dropped:
    with a large split a few texts every 1,000 rows were never scored. The validation and test splits keep it (a last,
    shorter block, padded by the collator): every text has a predicted token; training still drops it (full blocks)."""
    import numpy as np

    from tunelab.models.loading import load_tokenizer
    from tunelab.run import training
    from tunelab.run.packing import TARGET_TEXTS_COLUMN
    from tunelab.run.training import flat_column, tokenize

    monkeypatch.setattr(training, "LM_PACKING_ROWS", 5)  # 12 validation rows: batches of 5, 5 and 2 texts
    tokenized, _ = tokenize(toy_lm_data, load_tokenizer(str(tiny_llama_dir)), 16)
    for split in ("validation", "test"):
        texts = np.unique(flat_column(tokenized[split], TARGET_TEXTS_COLUMN))
        assert texts.tolist() == list(range(len(toy_lm_data.splits()[split])))
        assert min(tokenized[split]["length"]) < 16  # the tails, shorter
    assert set(tokenized["train"]["length"]) == {16}
