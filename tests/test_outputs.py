"""Per-example outputs: the Trainer hooks keep what paired comparisons need, and metrics agree with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from tunelab.run.outputs import ExampleOutputs, OutputCollector, reduce_logits


def test_classification_outputs_round_trip_with_metrics_and_confusion(tmp_path):
    collector = OutputCollector("classification", ["neg", "pos", "meh"])
    logits = torch.tensor([[2.0, 0.1, 0.0], [0.0, 3.0, 0.1], [0.2, 0.1, 0.0], [0.0, 0.0, 1.0]])
    preds = reduce_logits(logits, None)
    metrics = collector(EvalPrediction(predictions=preds.numpy(), label_ids=np.array([0, 1, 1, 2])))
    assert metrics["accuracy"] == pytest.approx(0.75)
    collector.latest.save(tmp_path, "test")
    back = ExampleOutputs.load(tmp_path, "test")
    assert back.label_names == ["neg", "pos", "meh"] and back.metrics() == metrics
    table = back.per_class()
    assert table["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]] and table["support"] == [1, 2, 1]
    assert ExampleOutputs.load(tmp_path, "validation") is None


def test_lm_outputs_sum_the_next_token_loss_per_example():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, -100, -100]])
    reduced = reduce_logits(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), reduction="sum")
    assert reduced[:, 0].sum().item() == pytest.approx(expected.item(), rel=1e-5)
    assert reduced[:, 1].tolist() == [4.0, 2.0]
    collector = OutputCollector("causal-lm")
    metrics = collector(EvalPrediction(predictions=reduced.numpy(), label_ids=labels.numpy()))
    assert metrics["loss"] == pytest.approx(expected.item() / 6, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["loss"]))
