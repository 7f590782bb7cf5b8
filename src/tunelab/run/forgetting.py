"""What adaptation costs the model: how much general ability it lost, measured on a reference text.

The seed's first comparison axis is the balance between *retaining* what pre-training learnt and
*adapting* to the task. tunelab measures the retaining on general text that is not the training data:

- **language-model loss change** (a model that has a pre-trained LM head: decoders): the mean
  per-token cross-entropy of the adapted model minus that of the base model, in nats per token, on
  the reference texts, packed and read as the run read its own (each text attending only to itself where the run's
  did: :func:`token_losses`). For a peft adapter the adapted side runs the same model with the adapter on
  (a soft prompt through the peft model's own forward, which puts it before the text), the base side
  with it off; for a classification run the adapted *body* is read through the base
  model's original LM head (the new classification head has no language model to lose).
- **representation drift** (encoders): ``1 - linear CKA`` (Kornblith et al., 2019) between the base and
  the adapted model's sentence representations (mean-pooled last hidden states) of the reference
  texts, CKA estimated *debiased* (:func:`linear_cka`); 0 means the geometry is unchanged, about 1 means unrelated
  (the estimate of an unrelated pair scatters around 1, up to 2). The record names the estimator (``estimator``); one
  written before it did (no ``estimator``) was measured with the biased one, which reads unrelated representations of
  few texts as far from 1 (:func:`unit_of`). Where the checkpoint holds a
  pre-trained masked-LM head, the **masked-LM loss change** is measured beside it: the adapted body
  read through that head, 15 % of the tokens masked with the same seeded masks on both sides.

Both are 0 for the base model itself. Each comes with a 95 % interval over the reference texts
(paired: both sides resampled together; the jackknife for CKA, a percentile bootstrap for losses). The base model's side is computed once per
model, reference and length and kept under the cache root, so a run pays only for its own side.

>>> from tunelab.run.forgetting import linear_cka
>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(50, 8))
>>> round(1 - linear_cka(x, 3 * x + 1), 6)
0.0
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# the two measures, and the fewest reference texts each reads: tunelab.data.reference's (the config checks them there)
from tunelab.data.reference import DRIFT, LM_LOSS, MIN_TEXTS, measure_for, min_texts  # noqa: F401
from tunelab.metrics import IGNORE_INDEX

MLM_LOSS = "mlm_loss_change"
#: The two estimators of linear CKA (:func:`linear_cka`); drift is measured with ``CKA_ESTIMATOR``, and a drift record
#: that names none (written before tunelab recorded it) was measured ``BIASED``.
BIASED, DEBIASED = "biased", "debiased"
CKA_ESTIMATOR = DEBIASED
DRIFT_UNITS = {DEBIASED: "1 - debiased linear CKA", BIASED: "1 - biased linear CKA"}
_UNQUALIFIED_DRIFT_UNIT = "1 - linear CKA"  # what drift records said before they named the estimator (biased)
UNITS = {LM_LOSS: "nats/token", DRIFT: DRIFT_UNITS[CKA_ESTIMATOR], MLM_LOSS: "nats/masked token"}
#: What a value in each unit measures, for a reader of a table that shows the number and its unit only.
MEANINGS = {
    UNITS[LM_LOSS]: "the language model's loss per token, adapted minus as loaded (0: nothing lost; below 0: the run "
                    "predicts the reference better than the model as loaded did)",
    DRIFT_UNITS[DEBIASED]: "1 − linear CKA (debiased estimator) between the sentence representations as loaded and "
                           "adapted (0: unchanged, about 1: unrelated)",
    DRIFT_UNITS[BIASED]: "1 − linear CKA with the biased estimator of records written before tunelab debiased it "
                         "(0: unchanged; unrelated representations of a few dozen texts read well below 1), not "
                         "comparable with debiased values",
    UNITS[MLM_LOSS]: "the masked-LM loss per masked token, adapted minus as loaded (0: nothing lost)",
}


def unit_of(found: dict[str, Any]) -> str | None:
    """The unit of a recorded forgetting (``metrics.json``'s ``train_info.forgetting``), the CKA estimator named: a
    drift record without ``estimator`` was written before tunelab recorded one, with the biased estimator."""
    unit = found.get("unit")
    if found.get("measure") == DRIFT or unit == _UNQUALIFIED_DRIFT_UNIT:
        return DRIFT_UNITS.get(found.get("estimator") or BIASED, unit)
    return unit


#: The name a tracker (MLflow, TensorBoard) shows forgetting under, one per unit (:func:`unit_of`): values on other scales
#: (biased and debiased CKA, a loss change) never share an axis in one experiment.
TRACKED_NAMES = {UNITS[LM_LOSS]: "forgetting_lm_loss_change", UNITS[MLM_LOSS]: "forgetting_mlm_loss_change",
                 DRIFT_UNITS[DEBIASED]: "forgetting_debiased_cka", DRIFT_UNITS[BIASED]: "forgetting_biased_cka"}


def tracked_name(found: dict[str, Any]) -> str:
    """The name of a recorded forgetting (``train_info.forgetting``) in a tracker: its unit's (:data:`TRACKED_NAMES`),
    ``forgetting`` for a unit tunelab does not know.

    >>> tracked_name({"measure": DRIFT, "unit": "1 - linear CKA"}), tracked_name({"measure": DRIFT, "estimator": DEBIASED})
    ('forgetting_biased_cka', 'forgetting_debiased_cka')
    """
    return TRACKED_NAMES.get(unit_of(found) or "", "forgetting")


def meaning(unit: str | None, reference: str | None) -> str | None:
    """One sentence on what a forgetting value in ``unit`` measured, on ``reference`` (None: unknown unit)."""
    said = MEANINGS.get(unit or "")
    if said is None:
        return None
    return f"Forgetting: on the reference text{f' ({reference})' if reference else ''}, not the training data, {said}."




_MASK_SHARE = 0.15
# 32 texts of up to 96 tokens: a few seconds on a 135 M decoder on 2 CPU cores, well inside the budget
# (5 % of training or 10 s) for runs of minutes; the record states the measured cost
DEFAULT_TEXTS = 32
DEFAULT_MAX_LENGTH = 96
_RESAMPLES = 1000


@dataclass
class Forgetting:
    """One forgetting measurement (what ``metrics.json`` keeps under ``forgetting``)."""

    measure: str  # LM_LOSS or DRIFT
    unit: str
    value: float  # 0 = nothing lost; larger = more lost
    low: float  # 95 % bootstrap interval over the reference texts
    high: float
    reference: str  # where the reference texts came from
    n_texts: int
    time_s: float  # the run's own cost (the base side is cached)
    base_cached: bool
    estimator: str | None = None  # DRIFT only: the estimator of CKA (CKA_ESTIMATOR; none in older records: BIASED)
    base: float | None = None  # LM loss of the base model (LM_LOSS only)
    adapted: float | None = None
    # encoders whose checkpoint holds a pre-trained masked-LM head: the masked-LM loss change as well
    mlm_loss_change: float | None = None
    mlm_low: float | None = None
    mlm_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- the two measures


def linear_cka(x: np.ndarray, y: np.ndarray, estimator: str = CKA_ESTIMATOR) -> float:
    """Linear centered kernel alignment of two representations of the same rows (1 = same up to an orthogonal
    transform and isotropic scale; Kornblith et al., 2019): HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) of the linear
    kernels K = X Xᵀ, L = Y Yᵀ.

    ``"biased"``: HSIC's biased estimator, tr(KHLH) (Kornblith et al.'s). With fewer rows than dimensions it is
    strongly inflated: independent random representations read far from 0 (and 1 - CKA far from 1).
    ``"debiased"`` (the default): HSIC's unbiased estimator (Song et al., 2012, "Feature Selection via Dependence
    Maximization", JMLR 13, eq. 5), as Nguyen, Raghu & Kornblith (2021, "Do Wide and Deep Networks Learn the Same
    Things?") use it for CKA: independent representations read about 0 at any number of rows. It needs at least 4
    rows; it can read below 0 (down to -1) where the representations are unrelated.

    A representation without variance (every row the same, up to float32 rounding: :func:`constant`) has no
    geometry to compare: CKA is undefined there, ``nan`` with either estimator (it read 1, "unchanged")."""
    if constant(x) or constant(y):
        return float("nan")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(0)
    y = y - y.mean(0)
    if estimator == BIASED:
        cross = np.linalg.norm(y.T @ x, "fro") ** 2
        norms = np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")
        return float(min(cross / norms, 1.0)) if norms > 0 else 1.0  # above 1 by rounding only (Cauchy-Schwarz)
    if estimator != DEBIASED:
        raise ValueError(f"linear_cka: unknown estimator {estimator!r}; use {DEBIASED!r} or {BIASED!r}")
    if len(x) < 4:
        raise ValueError(f"debiased linear CKA needs at least 4 rows, got {len(x)}")
    k, gram_y = x @ x.T, y @ y.T
    cross = _hsic_unbiased(k, gram_y)
    norms = _hsic_unbiased(k, k) * _hsic_unbiased(gram_y, gram_y)
    return float(np.clip(cross / np.sqrt(norms), -1.0, 1.0)) if norms > 0 else 1.0  # outside by rounding only


#: Rows that differ by less than this share of their size are one row: float32 rounding (a mean-pooled representation
#: of texts of different lengths) leaves about 1e-7 of a value (float32's eps) per operation.
_CONSTANT_RTOL = 1e-5


def constant(x: np.ndarray) -> bool:
    """Whether every row of ``x`` is the same, up to float32 rounding (a model collapsed to one output).

    >>> constant(np.ones((5, 3))), constant(np.eye(3))
    (True, False)
    """
    x = np.asarray(x, dtype=np.float64)
    return bool(np.linalg.norm(x - x.mean(0)) <= _CONSTANT_RTOL * np.linalg.norm(x))


def _hsic_unbiased(k: np.ndarray, gram: np.ndarray) -> float:
    """Song et al.'s (2012) unbiased HSIC of two n × n Gram matrices (their diagonals left out), times n(n - 3)
    (the scale cancels in CKA): tr(K̃L̃) + 1ᵀK̃1 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀK̃L̃1."""
    n = len(k)
    k = k - np.diag(np.diag(k))
    gram = gram - np.diag(np.diag(gram))
    rows_k, rows_l = k.sum(1), gram.sum(1)
    return float(np.sum(k * gram) + rows_k.sum() * rows_l.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * rows_k @ rows_l)


def _bootstrap(stat, n: int, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of ``stat(rows)`` over resamples of ``n`` rows."""
    rng = np.random.default_rng(seed)
    values = [stat(rng.integers(0, n, n)) for _ in range(_RESAMPLES)]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def drift(base: np.ndarray, adapted: np.ndarray, estimator: str = CKA_ESTIMATOR) -> tuple[float, float, float]:
    """(1 - CKA, low, high) between base and adapted representations (CKA by ``estimator``: :func:`linear_cka`).

    The interval is the jackknife's (leave one reference text out; estimate ± 1.96 standard errors,
    kept within the estimate's range: [0, 1] biased, [0, 2] debiased), not the bootstrap's: a bootstrap resample
    repeats rows, and repeated rows make two representations look more alike, so bootstrap intervals of CKA sit
    below the estimate (seen on the demo: 0.629 with a percentile interval of [0.444, 0.602]). Debiased, it needs
    :data:`MIN_TEXTS` rows (4 for the estimate, one more to leave one out); biased, fewer than 4 leave the interval
    [v, v]."""
    n, fewest = len(base), MIN_TEXTS[DRIFT][0]
    if estimator == DEBIASED and n < fewest:
        raise ValueError(f"representation drift (debiased CKA) needs at least {fewest} reference texts, got {n}")
    for side, reps in (("as loaded", base), ("adapted", adapted)):
        if constant(reps):  # CKA would read 1 and drift 0, "nothing forgotten", for a model that lost everything
            raise ValueError(f"representation drift cannot be read: the model {side} gives all {n} reference texts "
                             "the same sentence representation (a model collapsed to one output), and CKA compares "
                             "how representations vary; check the run's own scores")
    value = 1.0 - linear_cka(base, adapted, estimator)
    if n < 3:
        return value, value, value
    keep = ~np.eye(n, dtype=bool)
    leave_out = np.array([1.0 - linear_cka(base[keep[i]], adapted[keep[i]], estimator) for i in range(n)])
    if np.isnan(leave_out).any():  # all texts but one read the same: the interval, left without it, is undefined
        raise ValueError(f"representation drift cannot be read: the model gives all but one of the {n} reference texts "
                         "the same sentence representation (a model collapsed to one output); check the run's own scores")
    se = float(np.sqrt((n - 1) / n * np.sum((leave_out - leave_out.mean()) ** 2)))
    top = 2.0 if estimator == DEBIASED else 1.0
    return value, max(0.0, value - 1.96 * se), min(top, value + 1.96 * se)


def loss_change(base: np.ndarray, adapted: np.ndarray, tokens: np.ndarray) -> tuple[float, float, float]:
    """(adapted - base mean per-token loss, low, high); per-text summed losses, token-weighted."""

    def change(rows):
        t = tokens[rows].sum()
        return (adapted[rows].sum() - base[rows].sum()) / t

    value = float(change(np.arange(len(tokens))))
    low, high = _bootstrap(change, len(tokens))
    return value, low, high


# ----------------------------------------------------------------------------- running a model


def _batches(tokenizer, texts: list[str], max_length: int, batch_size: int = 16):
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            # as evaluation pads: on the left, a decoder's absolute positions moved with the padding, and each row's
            # first token was predicted from a pad, so the measure depended on the tokenizer's padding side
            padding_side="right",
            return_tensors="pt",
        )
        yield enc["input_ids"], enc["attention_mask"]


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.inference_mode()
def sentence_representations(body: nn.Module, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Mean-pooled last hidden states of ``body`` (a transformers base model), one row per text."""
    rows = []
    device = _device(body)
    for ids, mask in _batches(tokenizer, texts, max_length):
        hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        m = mask.to(hidden.device).unsqueeze(-1).to(hidden.dtype)
        rows.append(((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy())
    return np.concatenate(rows)


def _cut(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """Each text cut to its first ``max_length`` tokens (where it is longer): the measure's cost stays about one block
    a text, and each text still starts in a block, not at a block's first position (a text and its end-of-text token
    are one token longer than a block)."""
    fast = getattr(tokenizer, "is_fast", False)
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=fast)
    out = []
    for i, text in enumerate(texts):
        ids = enc["input_ids"][i]
        if len(ids) <= max_length:
            out.append(text)
        else:
            out.append(text[: enc["offset_mapping"][i][max_length - 1][1]] if fast else tokenizer.decode(ids[:max_length]))
    return out


@contextlib.contextmanager
def _padded_on_the_right(tokenizer):
    """As evaluation pads: on the left, a decoder's absolute positions moved with the padding, so the measure depended
    on the tokenizer's padding side."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        yield
    finally:
        tokenizer.padding_side = side


@torch.inference_mode()
def token_losses(body: nn.Module, lm_head: nn.Module, tokenizer, texts: list[str], max_length: int,
                 document_mask: bool = False, batch_size: int = 16):
    """(summed next-token loss, predicted tokens) of ``lm_head(body(...))``, per reference text, every one read.

    The texts are read as a causal-LM run reads its own: joined with the end-of-text token and packed into blocks of
    ``max_length`` (:func:`tunelab.run.packing.lm_blocks`, each text cut first: :func:`_cut`), batched by the run's
    collator (:func:`tunelab.run.padding.task_collator`), each text attending only to itself (read as ``<EOS> text``)
    where ``document_mask`` (the run's own, :attr:`tunelab.run.training.PreparedRun.document_mask`), else to the texts
    before it in its block. Read one text a row, each text started at position 0 without the end-of-text token
    before it, which neither reading of a run ever gives a text (smollm2 as loaded: 315 perplexity read so, against
    182 per text and 114 across texts; ``benchmarks/README.md``, "document_mask.py"). Each predicted token's loss
    counts for its own text, as evaluation's intervals resample them (:meth:`tunelab.run.outputs.ExampleOutputs.by_text`),
    and the last, shorter block is kept, as an evaluation split keeps it (``keep_tail``): every text is read."""
    from tunelab.run.packing import lm_blocks
    from tunelab.run.padding import task_collator

    blocks, labels, owners, positions = lm_blocks({"text": _cut(tokenizer, texts, max_length)}, tokenizer, max_length,
                                               keep_tail=True)
    collate = task_collator(tokenizer, "causal-lm", None, document_mask)
    sums, counts = np.zeros(len(texts)), np.zeros(len(texts))
    device = _device(body)
    with _padded_on_the_right(tokenizer):
        for start in range(0, len(blocks), batch_size):
            rows = range(start, min(start + batch_size, len(blocks)))
            batch = collate([{"input_ids": blocks[i], "labels": labels[i], "position_ids": positions[i]} for i in rows])
            target = batch.pop("labels")[:, 1:].to(device)
            inputs = {k: v.to(device) for k, v in batch.items()}
            # a key-value cache turns transformers' per-text mask off (as in evaluation)
            hidden = body(**inputs, **({"use_cache": False} if "position_ids" in inputs else {})).last_hidden_state
            logits = lm_head(hidden[:, :-1]).float()
            loss = nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
            loss, scored = loss.cpu().numpy(), (target != IGNORE_INDEX).cpu().numpy()
            for row, i in enumerate(rows):  # each predicted token's loss counts for its own text (its EOS with it)
                text = np.asarray(owners[i][1:])
                mask = scored[row, : text.size]
                np.add.at(sums, text[mask], loss[row, : text.size][mask])
                np.add.at(counts, text[mask], 1)
    read = counts > 0  # a text with no predicted token (a one-token text that opens a block) is not read
    return sums[read], counts[read]


@torch.inference_mode()
def masked_token_losses(mlm: nn.Module, body: nn.Module, tokenizer, texts: list[str], max_length: int, seed: int = 0):
    """(summed masked-token loss per text, masked tokens per text) of the checkpoint's masked-LM head
    (``mlm``, a ``...ForMaskedLM``) reading ``body``'s hidden states: ``body`` stands in for ``mlm``'s own
    body for the pass. 15 % of the non-special tokens are masked (at least one a text), with a seeded
    generator, so the base and the adapted side see the same masks."""
    generator = torch.Generator().manual_seed(seed)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    prefix = mlm.base_model_prefix
    own = getattr(mlm, prefix)
    setattr(mlm, prefix, body)
    sums, counts = [], []
    try:
        device = _device(body)
        for ids, mask in _batches(tokenizer, texts, max_length):
            can = mask.bool() & ~torch.isin(ids, special)
            pick = (torch.rand(ids.shape, generator=generator) < _MASK_SHARE) & can
            first = can.float().argmax(1)
            pick[torch.arange(len(ids)), first] |= can[torch.arange(len(ids)), first] & ~pick.any(1)
            labels = ids.masked_fill(~pick, IGNORE_INDEX).to(device)
            logits = mlm(input_ids=ids.masked_fill(pick, tokenizer.mask_token_id).to(device),
                         attention_mask=mask.to(device)).logits.float()
            loss = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
            sums.append(loss.sum(1).cpu().numpy())
            counts.append(pick.sum(1).numpy())
    finally:
        setattr(mlm, prefix, own)
    return np.concatenate(sums).astype(np.float64), np.concatenate(counts).astype(np.float64)


# ----------------------------------------------------------------------------- the base side, cached


def _base_key(model_path: str, reference: str, texts: list[str], measure: str, max_length: int,
              document_mask: bool = False) -> str:
    digest = hashlib.sha256()
    config = Path(model_path) / "config.json"
    weights = sorted(Path(model_path).glob("*.safetensors")) if Path(model_path).is_dir() else []
    facts = {
        "model": model_path,
        "config": config.read_text() if config.is_file() else "",
        "weights": [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights],
        "measure": measure,
        "max_length": max_length,
        "reference": reference,
    }
    if measure == LM_LOSS:  # read packed to the last text (token_losses), each text alone or after the ones before it
        facts["reading"] = "packed whole, per text" if document_mask else "packed whole"
    digest.update(json.dumps(facts, sort_keys=True).encode())
    for t in texts:
        digest.update(t.encode() + b"\0")
    return digest.hexdigest()[:20]


def _cached_base(folder: Path | None, key: str, compute) -> tuple[dict[str, np.ndarray], bool]:
    """The base side's arrays from ``folder/base-key.npz``, or computed now and stored there."""
    from tunelab.io import stored_arrays

    return stored_arrays(folder / f"base-{key}.npz" if folder is not None else None, compute)


# ----------------------------------------------------------------------------- the measurement


def measure(
    adapted: nn.Module,
    tokenizer,
    texts: list[str],
    *,
    reference: str,
    base_path: str,
    base_body: nn.Module | None = None,
    base_lm_head: nn.Module | None = None,
    adapter_off=None,
    mlm: nn.Module | None = None,
    cache: Path | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    document_mask: bool = False,
) -> Forgetting:
    """Forgetting of ``adapted`` against its base on ``texts``.

    ``adapted`` is a transformers model or a peft model. The caller (who knows the model) passes
    ``base_lm_head`` when the base has a pre-trained LM head (then the LM-loss change is measured,
    else representation drift), and either ``adapter_off`` (a context manager that turns a peft adapter
    off, so the base side is the same module) or ``base_body`` (the base model's body, loaded by the
    caller) when the base side is not in the cache yet. ``mlm``: the checkpoint's masked-LM model, for
    encoders that have one: the masked-LM loss change is measured beside the drift. ``document_mask``: the
    run's packed texts each attended only to itself (the run's effective value, not the flag asked for): the LM loss
    reads the reference so on both sides (:func:`token_losses`), so base and adapted are compared under the
    attention the model trained with.
    """
    from tunelab.models import soft_prompt_length

    t0 = time.perf_counter()
    body = _body_of(adapted)
    kind = LM_LOSS if base_lm_head is not None else DRIFT
    document_mask = document_mask and kind == LM_LOSS
    key = _base_key(base_path, reference, texts, kind, max_length, document_mask)
    soft = soft_prompt_length(adapted)

    def base_side() -> dict[str, np.ndarray]:
        # a soft prompt leaves the body as loaded, so the body alone is the base: no switch (peft's fails on a
        # classifier, where it swaps a generation method that classifiers lack)
        with adapter_off() if adapter_off is not None and not soft else contextlib.nullcontext():
            source = body if adapter_off is not None else base_body
            if source is None:
                raise ValueError("forgetting: give adapter_off or base_body to compute the base side")
            if kind == LM_LOSS:
                sums, counts = token_losses(source, base_lm_head, tokenizer, texts, max_length, document_mask)
                return {"sums": sums, "counts": counts}
            return {"reps": sentence_representations(source, tokenizer, texts, max_length)}

    stored, cached = _cached_base(cache, key, base_side)
    if soft:  # the body alone is the base: the soft prompt comes from the adapted model's own forward
        body = _AsPredicted(adapted, body)
    was_training = adapted.training
    adapted.eval()
    try:
        if kind == LM_LOSS:
            sums, counts = token_losses(body, base_lm_head, tokenizer, texts, max_length, document_mask)
            value, low, high = loss_change(stored["sums"], sums, counts)
            base_loss = float(stored["sums"].sum() / counts.sum())
            extra = {"base": base_loss, "adapted": float(sums.sum() / counts.sum())}
        else:
            reps = sentence_representations(body, tokenizer, texts, max_length)
            value, low, high = drift(stored["reps"], reps)
            extra = {"estimator": CKA_ESTIMATOR,
                     **(_mlm_change(mlm, body, tokenizer, texts, max_length, cache, key) if mlm is not None else {})}
    finally:
        adapted.train(was_training)
    return Forgetting(
        measure=kind,
        unit=UNITS[kind],
        value=value,
        low=low,
        high=high,
        reference=reference,
        n_texts=len(texts),
        time_s=time.perf_counter() - t0,
        base_cached=cached,
        **extra,
    )


def _mlm_change(mlm: nn.Module, body: nn.Module, tokenizer, texts: list[str], max_length: int, cache: Path | None,
                key: str) -> dict[str, float]:
    """The masked-LM loss change of ``body`` under the checkpoint's own MLM head (base side cached)."""
    stored, _ = _cached_base(
        cache, f"{key}-mlm",
        lambda: dict(zip(("sums", "counts"), masked_token_losses(mlm, mlm.base_model, tokenizer, texts, max_length))),
    )
    sums, counts = masked_token_losses(mlm, body, tokenizer, texts, max_length)
    value, low, high = loss_change(stored["sums"], sums, counts)
    return {"mlm_loss_change": value, "mlm_low": low, "mlm_high": high}


def _body_of(model: nn.Module) -> nn.Module:
    """The transformer body (a ``base_model`` whose output has ``last_hidden_state``) of a transformers
    model, through a peft wrapper when there is one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, "base_model", inner)


class _BodyDone(Exception):
    """Raised once the body has run inside the adapted model: its head's output (a causal LM's logits over the whole
    vocabulary, as large again as the ones measured) is not needed."""


class _AsPredicted(nn.Module):
    """``body`` as ``adapted`` (a peft prompt-learning model) runs it when it predicts: the adapter puts its soft
    prompt before the text in its own forward, around the body, so the body called alone is the base model and its
    forgetting read exactly 0. Called as the body is (token ids and their mask), this runs the adapted model up to the
    body's output and returns it at the text's positions (the soft prompt's left out), for the LM head, the pooling or
    the masked-LM head to read as the base's."""

    def __init__(self, adapted: nn.Module, body: nn.Module):
        super().__init__()
        self.adapted, self.body = adapted, body

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_):
        from transformers.modeling_outputs import BaseModelOutput

        seen: dict[str, torch.Tensor] = {}

        def keep(module, args, output):
            seen["hidden"] = output.last_hidden_state
            raise _BodyDone

        hook = self.body.register_forward_hook(keep)
        try:
            # the class's forward: a run trained in mixed precision keeps accelerate's autocast wrapper on the
            # instance's, which computed this side in bfloat16 and the base side in float32
            type(self.adapted).forward(self.adapted, input_ids=input_ids, attention_mask=attention_mask)
        except _BodyDone:
            pass
        finally:
            hook.remove()
        hidden = seen["hidden"]
        return BaseModelOutput(last_hidden_state=hidden[:, hidden.shape[1] - input_ids.shape[1] :])


def measure_run(model: nn.Module, config, model_path: str, tokenizer, document_mask: bool = False) -> Forgetting:
    """Forgetting of a trained run's ``model`` (a transformers or peft model) against its checkpoint; ``document_mask``:
    the run's own (:attr:`tunelab.run.training.PreparedRun.document_mask`), what its model trained with.

    The reference is :func:`tunelab.data.reference.reference_for` (never the run's own data); the
    base side is cached under ``<tunelab cache>/forgetting``; a peft adapter is measured against the
    same model with the adapter switched off, anything else against the checkpoint loaded afresh.
    """
    from tunelab.data.reference import reference_for
    from tunelab.models import (
        cache_dir,
        load_base_parts,
        load_pretrained_mlm,
        max_input_length,
        soft_prompt_length,
    )

    t0 = time.perf_counter()
    reference, texts = reference_for(config.data, config.reference_text, n=DEFAULT_TEXTS, seed=0)
    cache = cache_dir() / "forgetting"
    adapter_off = getattr(model, "disable_adapter", None)
    # never past the positions the model has (a small or custom checkpoint may have fewer than the default), a soft
    # prompt's before the text's
    max_length = min(DEFAULT_MAX_LENGTH, max_input_length(model, tokenizer, reserved=soft_prompt_length(model)))
    kind_probe = _base_key(model_path, reference, texts, LM_LOSS, max_length, document_mask)
    cached = any((cache / f"base-{k}.npz").is_file() for k in (kind_probe, _base_key(model_path, reference, texts, DRIFT, max_length)))
    body, head = load_base_parts(model_path, need_body=adapter_off is None and not cached, trust_remote_code=config.trust_remote_code)
    mlm = load_pretrained_mlm(model_path, tokenizer) if head is None else None
    device = _device(model)
    for module in (body, head, mlm):
        if module is not None:
            module.to(device)
    result = measure(model, tokenizer, texts, reference=reference, base_path=model_path, base_body=body,
                     base_lm_head=head, adapter_off=adapter_off, mlm=mlm, cache=cache, max_length=max_length,
                     document_mask=document_mask)
    result.time_s = time.perf_counter() - t0  # loading the reference and the base's head included
    return result
