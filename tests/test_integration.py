"""Integration: the packaged real models (minilm, smollm2) on small slices of the built-in data.

Each run trains for real and is checked end to end: the record's numbers, the artifact loaded with
plain transformers / peft, and ``tunelab predict`` giving the same answer as that plain load.
Slices are small so the file runs in a few minutes on 2 cores (smollm2 gets a smaller one: it is
6x larger than minilm). The first smollm2 test converts its GGUF file once (~15 s).

    pytest -m integration tests/test_integration.py
"""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.config import TrainConfig
from tunelab.run.artifacts import MODEL_DIR, predict
from tunelab.run.training import train

pytestmark = pytest.mark.integration

SLICE = {"max_train_samples": 200, "max_eval_samples": 100, "max_length": 64, "epochs": 1}
SMALL_SLICE = {"max_train_samples": 48, "max_eval_samples": 24, "max_length": 64, "epochs": 1}
# hamlet rows are 1-2k character chunks (~400 tokens): 6 chunks make ~40 training blocks of 64 tokens
HAMLET_SLICE = {"max_train_samples": 6, "max_eval_samples": 2, "max_length": 64, "epochs": 1, "batch_size": 8}
REVIEWS = ["A gripping, beautiful film with a terrific cast.", "Dull, predictable and far too long.", "It exists."]


def _train(tmp_path, **options) -> tuple[dict, object]:
    config = TrainConfig(out=str(tmp_path / "run"), **options)
    return train(config, progress=False), tmp_path / "run"


def _plain_classifier(model_dir, record):
    """The artifact loaded as its model card says, without tunelab."""
    from transformers import AutoModelForSequenceClassification

    if (model_dir / "adapter_config.json").exists():
        from peft import PeftConfig, PeftModel

        base_path = PeftConfig.from_pretrained(model_dir).base_model_name_or_path
        labels = record["meta_info"]["label_names"]
        base = AutoModelForSequenceClassification.from_pretrained(base_path, id2label=dict(enumerate(labels)))
        return PeftModel.from_pretrained(base, model_dir).eval()
    return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


def _check_classification_run(record, out, *, n_train: int, n_eval: int, strategy: str) -> None:
    from transformers import AutoTokenizer

    meta, info = record["meta_info"], record["train_info"]
    assert record["run_info"]["status"] == "success" and record["run_info"]["strategy"] == strategy
    assert meta["label_names"] == ["fresh", "rotten"]
    assert meta["n_train"] == n_train and meta["n_test"] == n_eval
    assert 0 < info["trainable_params"] <= info["total_params"]
    assert 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0

    model_dir = out / MODEL_DIR
    model = _plain_classifier(model_dir, record)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    with torch.no_grad():
        probs = model(**tokenizer(REVIEWS, padding=True, return_tensors="pt")).logits.softmax(-1)
    rows = predict(out, REVIEWS)
    for row, p in zip(rows, probs):
        assert row["label"] == model.config.id2label[int(p.argmax())]
        for j, name in model.config.id2label.items():
            assert row["probabilities"][name] == pytest.approx(float(p[j]), abs=1e-4)


@pytest.mark.parametrize("strategy", ["head", "lora", "full"])
def test_minilm_on_rotten_tomatoes(strategy, tmp_path):
    record, out = _train(tmp_path, model="minilm", data="rotten-tomatoes", strategy=strategy, **SLICE)
    _check_classification_run(record, out, n_train=200, n_eval=100, strategy=strategy)
    share = record["train_info"]["trainable_share"]
    if strategy == "full":
        assert share == 1.0
    else:
        assert share < 0.025  # a head (with the 148 k-weight pooler) or adapters: a small fraction of 22.7 M weights


@pytest.mark.parametrize("strategy", ["head", "lora"])
def test_smollm2_on_rotten_tomatoes(strategy, tmp_path):
    record, out = _train(tmp_path, model="smollm2", data="rotten-tomatoes", strategy=strategy, **SMALL_SLICE)
    _check_classification_run(record, out, n_train=48, n_eval=24, strategy=strategy)
    assert record["train_info"]["total_params"] > 100_000_000


def test_smollm2_lora_on_hamlet_reports_perplexity_and_generates_like_plain_peft(tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    record, out = _train(tmp_path, model="smollm2", data="hamlet", strategy="lora", **HAMLET_SLICE)
    assert record["meta_info"]["task"] == "causal-lm"
    for split in ("validation", "test"):
        m = record["metrics"][split]
        assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
        assert 1 < m["perplexity"] < 500  # a pre-trained LM on English text; an untrained one is ~49,000
    model_dir = out / MODEL_DIR
    model = AutoPeftModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = "To be, or not to be,"
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)  # as training tokenizes its texts
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    # what follows the prompt, as transformers' text-generation pipeline cuts it: the whole decoding less the prompt's
    whole = tokenizer.decode(ids[0], skip_special_tokens=True)
    expected = whole[len(tokenizer.decode(ids[0, : enc["input_ids"].shape[1]], skip_special_tokens=True)) :]
    assert predict(out, [prompt], max_new_tokens=8)[0]["generated"] == expected
