"""Signals from the frozen features, before any training: LogME, H-score and a head probe.

One pass of the frozen pre-trained body over at most ``max_examples`` training texts (length-sorted batches,
inference mode, bfloat16 autocast where the hardware multiplies it natively, as the frozen-layer cache does)
gives each text's features at the position the task head reads (the first token of an encoder, the last
non-padding token of a decoder, the mean where the head pools). On them:

- ``logme`` and ``h_score`` (:mod:`tunelab.advice.transferability`);
- ``probe_accuracy``: a logistic regression (scikit-learn, standardised features) scored by stratified
  3-fold cross-validation on those training texts only (no validation or test example is read), copies of one text
  (rows with the same features) kept in one fold, as the data's own splits keep them, and
  ``probe_gain``, the same above the majority class as a share of what is left to gain
  (``(acc - majority) / (1 - majority)``): what a head on the frozen body reaches with this much data;
  ``probe_score`` / ``probe_score_gain``: the same in the metric asked for (``probe_metric``: accuracy or
  macro F1, whose majority-class score is that of always predicting the most frequent class). All are
  ``None`` when a class has a single distinct text among those texts (no fold can hold it out): not measured.

>>> from tunelab.advice.features import frozen_feature_signals  # doctest: +SKIP
>>> frozen_feature_signals("minilm", load_task("rotten-tomatoes"))["probe_accuracy"]  # doctest: +SKIP
0.71
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def _sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of at most ``n`` rows, stratified by label (every class keeps its share), seeded; a plain seeded draw
    where scikit-learn cannot stratify (a class of one row, or more classes than ``n`` rows: 5,000 labels of two
    examples each raised its ValueError out of ``tunelab recommend``)."""
    if len(labels) <= n:
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    except ValueError:
        keep, _ = train_test_split(np.arange(len(labels)), train_size=n, random_state=seed)
    return np.sort(keep)


def frozen_features(model_name: str, texts: list[str], label_names: list[str], *, max_length: int = 128,
                    batch_size: int = 32, pairs: list[str] | None = None) -> np.ndarray:
    """``(len(texts), hidden)`` float32 features of the frozen body at the position the task head reads (of each
    text with its ``pairs`` entry, encoded as a pair, when given). Stored under ``<tunelab cache>/advice``, keyed by
    the model's identity, the token ids and the precision of the pass, so that the advice on data it has seen
    reads them back instead of running the model again."""
    from tunelab.io import stored_arrays
    from tunelab.models import load_tokenizer, measurement_file
    from tunelab.run.cache import build_device, native_bf16

    tokenizer = load_tokenizer(model_name)
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    ids = encoded["input_ids"]
    segments = encoded.get("token_type_ids") if pairs is not None and "token_type_ids" in tokenizer.model_input_names else None
    device = build_device()
    bf16 = native_bf16(device)
    file = measurement_file("advice", "features", model_name, [*ids, *(segments or [])],
                            measure="frozen-head-features-v1", bf16=bf16, segments=bool(segments))

    def measure() -> dict[str, np.ndarray]:
        return {"features": _features_of(model_name, tokenizer, ids, segments, label_names, batch_size, device, bf16)}

    return stored_arrays(file, measure)[0]["features"]


def _features_of(model_name: str, tokenizer, ids: list[list[int]], segments: list[list[int]] | None,
                 label_names: list[str], batch_size: int, device, bf16: bool) -> np.ndarray:
    """One pass of the frozen body over ``ids`` (see :func:`frozen_features`)."""
    import torch

    from tunelab.models import load_model, model_layout
    from tunelab.models.layout import head_index

    model, tokenizer = load_model(model_name, task="classification", label_names=label_names, tokenizer=tokenizer)
    tokenizer.padding_side = "right"
    layout = model_layout(model)
    body = layout.body.to(device).eval()
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = None  # (examples, width of the body's output), allocated from the first batch
    from tunelab.run.padding import one_pass_attention

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), autocast, one_pass_attention():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in rows]}
                                  | ({"token_type_ids": [segments[i] for i in rows]} if segments else {}),
                                  return_tensors="pt").to(device)
            hidden = body(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                          ).last_hidden_state.float()
            mask = batch["attention_mask"]
            if layout.head_reads in ("first", "last"):
                picked = hidden[torch.arange(len(rows)), head_index(mask, layout.head_reads).to(hidden.device)]
            else:  # every token: the mean over the non-padding ones
                picked = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            if out is None:
                out = np.zeros((len(ids), picked.shape[-1]), dtype=np.float32)
            out[rows] = picked.cpu().numpy()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _gain(score: float | None, chance: float) -> float | None:
    """``score`` above the majority class's, as a share of what is left to gain (None: not measured)."""
    return None if score is None else float((score - chance) / max(1 - chance, 1e-9))


def feature_signals(features: np.ndarray, labels: np.ndarray, *, seed: int = 42,
                    metric: str = "accuracy") -> dict[str, Any]:
    """LogME, H-score and the head probe on ``features`` (see the module docstring). The probe is scored in accuracy
    (``probe_accuracy``, ``probe_gain``: what the calibration learnt on) and in ``metric`` (``probe_score``,
    ``probe_score_gain``: what the advice reports), from the same folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import StratifiedGroupKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tunelab.advice.transferability import h_score, logme
    from tunelab.advice.verdict import chance_level
    from tunelab.metrics import classification_scores

    labels = np.asarray(labels)
    # copies of a text have the same features: one group, in one fold (a probe scored on texts it trained on read
    # macro F1 1.000 on a pair dataset where 225 of 300 rows repeated); each class needs a group per fold
    groups = np.unique(np.ascontiguousarray(features), axis=0, return_inverse=True)[1].ravel()
    classes = np.unique(labels, return_inverse=True)[1]
    counts = np.array([len(np.unique(groups[classes == c])) for c in range(classes.max() + 1)]) if len(labels) else np.zeros(1, int)
    t0 = time.perf_counter()
    folds = int(min(3, counts.min()))
    scores: dict[str, float | None] = dict.fromkeys(("accuracy", metric))
    if folds >= 2:  # each fold scored as a run is (tunelab.metrics.classification_scores)
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
        cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        scorers = {name: make_scorer(lambda y, p, name=name: classification_scores(y, p)[name]) for name in scores}
        result = cross_validate(probe, features, labels, groups=groups, cv=cv, scoring=scorers)
        scores = {name: float(np.mean(result[f"test_{name}"])) for name in scores}
    # else a class of one example cannot be on both sides of a fold: nothing measured (it was reported as a 0.00 gain)
    return {
        "logme": float(logme(features, labels)),
        "h_score": float(h_score(features, labels)),
        "probe_accuracy": scores["accuracy"],
        "probe_gain": _gain(scores["accuracy"], chance_level(labels, "accuracy")),
        "probe_metric": metric,
        "probe_score": scores[metric],
        "probe_score_gain": _gain(scores[metric], chance_level(labels, metric)),
        "probe_time_s": round(time.perf_counter() - t0, 3),
    }


def frozen_feature_signals(model_name: str, task_data: Any, *, max_length: int = 128, max_examples: int = 2000,
                           seed: int = 42, metric: str = "accuracy") -> dict[str, Any]:
    """The frozen-feature signals of ``task_data``'s training split (classification), with their cost."""
    train = task_data.train
    labels = np.asarray(train["label"])
    rows = _sample(labels, max_examples, seed)
    texts = [train[int(i)]["text"] for i in rows]
    pairs = [train[int(i)]["text_pair"] for i in rows] if task_data.text_pairs else None
    t0 = time.perf_counter()
    features = frozen_features(model_name, texts, list(task_data.label_names), max_length=max_length, pairs=pairs)
    feature_s = time.perf_counter() - t0
    signals = stored_feature_signals(features, labels[rows], seed=seed, metric=metric)
    signals.update(feature_examples=int(len(rows)), feature_time_s=round(feature_s, 3))
    return signals


_SIGNALS_FORMAT = 2  # 2: copies of a text in one fold. Raise when feature_signals measures otherwise: a stored result is then measured again


def stored_feature_signals(features: np.ndarray, labels: np.ndarray, *, seed: int = 42,
                           metric: str = "accuracy") -> dict[str, Any]:
    """:func:`feature_signals`, stored under ``<tunelab cache>/advice`` by the features, labels, seed and metric
    (the probe's cross-validation took seconds on every call of the advice on the same data); ``signals_reused``
    says whether it was read back."""
    import hashlib
    import json

    from tunelab.io import read_json, write_json
    from tunelab.models import cache_dir

    features, labels = np.ascontiguousarray(features), np.asarray(labels)
    digest = hashlib.sha256(json.dumps({"format": _SIGNALS_FORMAT, "seed": seed, "metric": metric,
                                        "shape": features.shape, "dtype": str(features.dtype)}).encode())
    digest.update(features.tobytes())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    path = cache_dir() / "advice" / f"signals-{digest.hexdigest()[:24]}.json"
    try:
        return {**read_json(path), "signals_reused": True}
    except (OSError, ValueError):  # none yet, or unreadable: measured again
        pass
    signals = feature_signals(features, labels, seed=seed, metric=metric)
    try:
        write_json(path, signals)
    except OSError:  # a read-only cache costs the reuse, never the advice
        pass
    return {**signals, "signals_reused": False}
