"""Per-example results of an evaluation, kept beside the run so verdicts can be paired and bootstrapped.

A metric alone (0.774 accuracy) cannot say whether two strategies differ: that needs the same examples
scored by both. Every evaluation therefore keeps, per example,

- classification: the gold label id, the predicted id and the example's cross-entropy loss;
- causal LM: the summed next-token loss and the number of predicted tokens of each block, and the same summed per
  text (:meth:`ExampleOutputs.attribute`), the units an interval resamples,

in ``<run>/outputs/<split>.npz``. They are small (two numbers an example) and written once per run.

The Trainer hands these to us through its own hooks: ``preprocess_logits_for_metrics`` reduces each
batch's logits (so the full ``(batch, length, vocab)`` logits are never accumulated) and
``compute_metrics`` sees every example of the split. :class:`OutputCollector` is that pair.

>>> import numpy as np
>>> outputs = ExampleOutputs(labels=np.array([0, 1, 1]), predictions=np.array([0, 1, 0]))
>>> round(outputs.metrics()["accuracy"], 3)
0.667
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.metrics import IGNORE_INDEX, classification_scores

FOLDER = "outputs"
AS_LOADED = "validation-as-loaded"
"""The outputs a causal-LM run keeps of the model as loaded, before its first step, on the validation split
(``<run>/outputs/<this>.npz``): the reference its adaptation must beat."""


@dataclass
class ExampleOutputs:
    """One split's per-example results (classification or causal LM)."""

    labels: np.ndarray | None = None  # gold class ids
    predictions: np.ndarray | None = None  # predicted class ids
    losses: np.ndarray | None = None  # cross-entropy loss per example (nats; classification, absent in older runs)
    loss_sums: np.ndarray | None = None  # summed next-token loss per example (nats)
    token_counts: np.ndarray | None = None  # predicted tokens per example
    texts: np.ndarray | None = None  # causal LM: the text each example (a block of packed texts) starts in
    # causal LM: each text with a predicted token (index into the split), its summed loss and predicted tokens, over
    # every block it lies in (absent in older runs)
    text_ids: np.ndarray | None = None
    text_loss_sums: np.ndarray | None = None
    text_token_counts: np.ndarray | None = None
    label_names: list[str] = field(default_factory=list)
    # causal LM, not saved: the loss of every predicted token, block after block (``token_counts`` of them each), in
    # the order of the block's targets, until :meth:`attribute` sums them per text
    target_losses: np.ndarray | None = field(default=None, repr=False)

    def by_text(self, own: bool = True) -> ExampleOutputs:
        """A causal LM's loss and predicted tokens summed per text: the units a bootstrap resamples, since blocks of
        one text are not independent (an interval over blocks came out about half as wide as over texts), each
        predicted token counted with the text it belongs to (:meth:`attribute`). Older runs kept only the text each
        block starts in: their blocks are summed per that text, as they are here with ``own=False`` (the unit a
        newer run shares with an older one: :func:`tunelab.advice.verdict.common_units`). ``texts``: each unit's
        text (an index into the split). As they are where no texts were recorded (classification, older runs
        still)."""
        if own and self.text_ids is not None and self.text_loss_sums is not None:
            return ExampleOutputs(loss_sums=self.text_loss_sums, token_counts=self.text_token_counts,
                                  texts=self.text_ids)
        if self.texts is None or self.loss_sums is None:
            return self
        texts, group = np.unique(self.texts, return_inverse=True)  # texts in their order
        return ExampleOutputs(loss_sums=np.bincount(group, weights=self.loss_sums),
                              token_counts=np.bincount(group, weights=self.token_counts), texts=texts)

    def attribute(self, target_texts: np.ndarray | None) -> None:
        """Sum the predicted tokens' losses per text: ``target_texts``, the text each predicted token belongs to,
        block after block in the order of :attr:`target_losses` (a block of short packed texts holds several; the
        EOS that ends a text is that text's). Nothing where they do not match (not a causal LM, other blocks)."""
        losses, self.target_losses = self.target_losses, None
        if losses is None or target_texts is None or len(target_texts) != len(losses):
            return
        self.text_ids, group = np.unique(np.asarray(target_texts, dtype=np.int64), return_inverse=True)
        self.text_loss_sums = np.bincount(group, weights=losses, minlength=len(self.text_ids))
        self.text_token_counts = np.bincount(group, minlength=len(self.text_ids)).astype(np.float64)

    @property
    def task(self) -> str:
        return "classification" if self.labels is not None else "causal-lm"

    def __len__(self) -> int:
        arr = self.labels if self.labels is not None else self.loss_sums
        return 0 if arr is None else len(arr)

    def metrics(self) -> dict[str, float]:
        """The split's metrics, computed from the examples (accuracy / macro-F1, or loss / perplexity)."""
        if self.task == "classification":
            scores = classification_scores(self.labels, self.predictions)
            if self.losses is not None and len(self.losses):
                # the mean over examples, whatever the batches: the Trainer's own mean repeats each batch's mean, and
                # over several processes its last, padded batch stands in for the split's last examples
                scores["loss"] = float(np.mean(self.losses))
            return scores
        loss = float(self.loss_sums.sum() / max(self.token_counts.sum(), 1))
        return {"loss": loss, "perplexity": float(math.exp(min(loss, 50)))}

    def per_class(self) -> dict[str, Any]:
        """Precision, recall, F1 and support per class, and the confusion matrix (rows: gold)."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        ids = list(range(len(self.label_names))) if self.label_names else sorted(set(self.labels) | set(self.predictions))
        names = self.label_names or [str(i) for i in ids]
        p, r, f, s = precision_recall_fscore_support(self.labels, self.predictions, labels=ids, zero_division=0)
        return {
            "classes": names,
            "precision": [float(x) for x in p],
            "recall": [float(x) for x in r],
            "f1": [float(x) for x in f],
            "support": [int(x) for x in s],
            "confusion": confusion_matrix(self.labels, self.predictions, labels=ids).tolist(),
        }

    def save(self, run_dir: str | Path, split: str) -> Path:
        path = Path(run_dir) / FOLDER / f"{split}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in self._arrays().items() if v is not None}
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez_compressed(tmp, label_names=np.array(self.label_names, dtype=str), **arrays)
        tmp.replace(path)
        return path

    def _arrays(self) -> dict[str, np.ndarray | None]:
        return {
            "labels": self.labels,
            "predictions": self.predictions,
            "losses": self.losses,
            "loss_sums": self.loss_sums,
            "token_counts": self.token_counts,
            "texts": self.texts,
            "text_ids": self.text_ids,
            "text_loss_sums": self.text_loss_sums,
            "text_token_counts": self.text_token_counts,
        }

    @classmethod
    def load(cls, run_dir: str | Path, split: str) -> ExampleOutputs | None:
        """The saved outputs of ``split``, or ``None`` when the run kept none (older runs)."""
        path = Path(run_dir) / FOLDER / f"{split}.npz"
        if not path.is_file():
            return None
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        names = [str(n) for n in arrays.pop("label_names", np.array([], dtype=str))]
        return cls(label_names=names, **arrays)


# ----------------------------------------------------------------------------- the Trainer hooks


def reduce_logits(logits, labels):
    """``preprocess_logits_for_metrics``: classification logits -> ``(predicted ids, cross-entropy per example)``
    (the ids alone without labels); causal-LM logits -> ``(summed next-token loss, predicted tokens)`` per example and
    each position's next-token loss (0 where it predicts no target; labels ``[:, 1:]`` say which do), so nothing of
    vocabulary size piles up, and each predicted token's loss can be counted with the text it belongs to."""
    import torch

    if isinstance(logits, tuple):
        logits = logits[0]
    if logits.dim() == 2:  # (batch, classes)
        if labels is None:
            return logits.argmax(-1)
        return logits.argmax(-1), torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
    if logits.shape[1] > labels.shape[1]:  # a soft prompt (prompt tuning) prepends positions without labels
        logits = logits[:, logits.shape[1] - labels.shape[1] :]
    shifted = logits[:, :-1].float()
    target = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        shifted.transpose(1, 2), target.clamp(min=0), reduction="none"
    ) * (target != IGNORE_INDEX)
    return torch.stack([loss.sum(1), (target != IGNORE_INDEX).sum(1).to(loss.dtype)], dim=1), loss


class OutputCollector:
    """``compute_metrics`` that also keeps the per-example outputs of the latest evaluation."""

    def __init__(self, task: str, label_names: list[str] | None = None):
        self.task, self.label_names = task, list(label_names or [])
        self.latest: ExampleOutputs | None = None

    def __call__(self, eval_pred) -> dict[str, float]:
        preds, losses = eval_pred.predictions, None
        if isinstance(preds, tuple):
            preds, losses = preds[0], (preds[1] if self.task == "classification" and len(preds) == 2 else None)
        preds = np.asarray(preds)
        if self.task == "classification":
            if preds.ndim > 1:
                preds = preds.argmax(-1)
            self.latest = ExampleOutputs(
                labels=np.asarray(eval_pred.label_ids).astype(np.int64),
                predictions=preds.astype(np.int64),
                losses=None if losses is None else np.asarray(losses, dtype=np.float64),
                label_names=self.label_names,
            )
        else:
            self.latest = ExampleOutputs(loss_sums=preds[:, 0].astype(np.float64), token_counts=preds[:, 1].astype(np.float64),
                                         target_losses=_target_losses(eval_pred))
        return self.latest.metrics()


def _target_losses(eval_pred) -> np.ndarray | None:
    """The loss of every predicted token of a causal LM's evaluation, block after block (:func:`reduce_logits`'s
    second output where its labels are no ``IGNORE_INDEX``; the Trainer pads both alike, across batches and
    processes), or None."""
    preds, labels = eval_pred.predictions, eval_pred.label_ids
    if not isinstance(preds, tuple) or len(preds) < 2 or labels is None:
        return None
    losses, targets = np.asarray(preds[1]), np.asarray(labels)[:, 1:]
    if losses.shape != targets.shape:
        return None
    return losses[targets != IGNORE_INDEX].astype(np.float64)
