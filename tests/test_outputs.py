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
    reduced, _ = reduce_logits(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), reduction="sum")
    assert reduced[:, 0].sum().item() == pytest.approx(expected.item(), rel=1e-5)
    assert reduced[:, 1].tolist() == [4.0, 2.0]
    collector = OutputCollector("causal-lm")
    metrics = collector(EvalPrediction(predictions=(reduced.numpy(), _.numpy()), label_ids=labels.numpy()))
    assert metrics["loss"] == pytest.approx(expected.item() / 6, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["loss"]))


def test_lm_outputs_sum_each_predicted_token_with_the_text_it_belongs_to(tmp_path):
    """Two blocks of packed texts, evaluated in batches of different widths (the Trainer pads the second batch's
    per-token losses and labels with -100 alike): each text's loss is the sum of its own predicted tokens, whichever
    block they lie in, and the split's loss is the blocks' as before."""
    torch.manual_seed(0)
    labels = [torch.tensor([[1, 2, 3, 4, 5, 6]]), torch.tensor([[7, -100, 8, 9]])]
    logits = [torch.randn(1, 6, 11), torch.randn(1, 4, 11)]
    parts = [reduce_logits(x, y) for x, y in zip(logits, labels)]
    pad = lambda t, width: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=-100)  # noqa: E731
    sums = torch.cat([p[0] for p in parts]).numpy()
    losses = torch.cat([pad(p[1], 5) for p in parts]).numpy()
    collector = OutputCollector("causal-lm")
    metrics = collector(EvalPrediction(predictions=(sums, losses), label_ids=torch.cat([pad(y, 6) for y in labels]).numpy()))
    # block 1 predicts tokens 2..6: text 0 ends with token 3 (its EOS), text 1 is 4..6 and goes on into block 2,
    # whose 8 and 9 (7 opens it, -100 is context) are text 1's and text 2's
    outputs = collector.latest
    outputs.attribute(np.array([0, 0, 1, 1, 1, 1, 2]))
    token = [torch.nn.functional.cross_entropy(x[0, :-1], y[0, 1:], reduction="none", ignore_index=-100)
             for x, y in zip(logits, labels)]
    first, second = token[0].tolist(), token[1].tolist()
    by_text = outputs.by_text()
    assert by_text.token_counts.tolist() == [2, 4, 1] and list(by_text.texts) == [0, 1, 2]
    np.testing.assert_allclose(by_text.loss_sums, [sum(first[:2]), sum(first[2:]) + second[1], second[2]], rtol=1e-5)
    assert by_text.metrics()["loss"] == pytest.approx(metrics["loss"], rel=1e-6)
    outputs.save(tmp_path, "validation")
    back = ExampleOutputs.load(tmp_path, "validation")
    assert back.target_losses is None and back.by_text().token_counts.tolist() == [2, 4, 1]


def test_lm_outputs_of_older_runs_load_and_group_their_blocks_by_the_text_each_starts_in(tmp_path):
    """A run saved before each text's own sums were kept (blocks and the text each starts in): as it was."""
    np.savez_compressed(tmp_path / "old.npz", label_names=np.array([], dtype=str), loss_sums=np.array([1.0, 2.0, 4.0]),
                        token_counts=np.array([1.0, 2.0, 3.0]), texts=np.array([0, 0, 1]))
    (tmp_path / "outputs").mkdir()
    (tmp_path / "old.npz").rename(tmp_path / "outputs" / "validation.npz")
    old = ExampleOutputs.load(tmp_path, "validation")
    assert old.text_ids is None and old.by_text().loss_sums.tolist() == [3.0, 4.0]


def test_macro_f1_of_a_split_averages_over_its_gold_classes_in_every_path():
    """A validation split without class 2 ("meh"): a prediction of it is a wrong one of the gold class, not a third
    class at 0 (sklearn's default gave 0.556 here, a strategy never predicting it 2 classes' mean). The Trainer's hook,
    the saved outputs and the bootstrap give one value; accuracy is unchanged."""
    from tunelab.advice.stats import ExampleResults, metric_value
    from tunelab.run.training import classification_metrics

    labels, preds = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    logits = np.eye(3)[preds]
    hook = OutputCollector("classification", ["neg", "pos", "meh"])(EvalPrediction(predictions=logits, label_ids=labels))
    trainer = classification_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    saved = ExampleOutputs(labels=labels, predictions=preds).metrics()
    assert hook["f1_macro"] == trainer["f1_macro"] == saved["f1_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert metric_value(ExampleResults.classification(labels, preds), "f1_macro") == pytest.approx(saved["f1_macro"])
    assert hook["accuracy"] == trainer["accuracy"] == saved["accuracy"] == 0.75
