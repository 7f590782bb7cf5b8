"""A random batch of texts, trained as a few micro-batches of similar length: the same gradient, fewer pad tokens.

A batch is padded to its longest text, and on a CPU a step costs about what its padded tokens cost. transformers'
``group_by_length`` sorts texts by length only inside megabatches of ``min(n // (4 x batch), 50)`` batches, so a run
on fewer than a few hundred examples (round 1 of a planned comparison, a user with 200 labels) trains on batches in
random order, each padded to a text two or three times its mean length.

:func:`split_by_padding` sorts one such batch's rows by length and cuts it into 2, 4, ... micro-batches, each padded
only to its own longest text, while each cut saves at least :data:`MIN_SAVING` of the padded tokens.
``TunelabTrainer.training_step`` then runs forward and backward on each and adds the gradients, each loss weighted by
its share of the rows (of the next-token targets, for a causal LM): the batch, the loss and the gradient are the batch's own (up to float rounding and the
dropout masks drawn), so the recipe does not change, only its cost. Measured on minilm, full fine-tuning, random
batches of 32 of rotten-tomatoes' texts (``max_length`` 128): padded tokens 1,661 -> 1,067 a step, and step time
1.15-1.30 -> 0.82-0.87 s (``benchmarks/padding_split.py``).

It applies only where the result is the same: one process on a CPU (on an accelerator a smaller batch does not cost
proportionally less, and under DDP every backward would synchronize), labels that say what the loss is a mean over
(one per row, or a causal LM's next-token labels with ``-100`` wherever a row is padding: each micro-batch's loss is
then weighted by its share of the rows, or of the next-token targets; under gradient accumulation, of the targets the
Trainer scales the step's loss by), right padding, and inputs that
are either per row or per position: the token inputs a model takes from the tokenizer, and the hidden states the
frozen-layer cache feeds in their place (``last-n`` on a small run: its trained top blocks see the same rows and
positions, cut the same way).

The same cut bounds a step's memory: a batch of more than ``max_tokens`` padded tokens (``--micro-batch-tokens``,
1,024 by default) is cut further, while each micro-batch keeps :data:`MIN_ROWS` rows, until none holds more. A step
stores the activations of one micro-batch at a time, and on a CPU they are most of a run's peak (minilm at 32 x 128
tokens: 1,140 MB stored, against 91 MB of weights). Time per token is flat from about 1,024 tokens a micro-batch
up: one forward and backward of minilm full fine-tuning took 0.56, 1.04 and 2.16 s at 1,024, 2,048 and 4,096
tokens, smollm2 LoRA 1.62, 3.14 and 6.55 s at 512, 1,024 and 2,048 (``benchmarks/profile_peft_step.py``). On
real batches of rotten-tomatoes, the cap changed a step's time by -3 to +10 % (the most on smollm2 batches just
above the cap, cut into halves of about 530 tokens). In whole runs at ``bench_peft_memory.py``'s settings it cut
minilm full fine-tuning's peak RSS from 1,582 to 1,343 MB and LoRA's from 1,408 to 1,039 MB; smollm2 LoRA's was 3.1,
4.1 and 4.1 GB over three seeds without it, and 3.1-3.2 GB with it. Whole runs pay for it mostly in system time
(page faults): minilm full fine-tuning took 1.07x as long, median of three alternating pairs, and smollm2 LoRA
1.02x over three seeds (benchmarks/README, "Session 21"). ``--micro-batch-tokens 0`` leaves batches whole.

On an accelerator the opposite holds, and :func:`task_collator` pads every batch up to a multiple of
:data:`ACCELERATOR_PAD_MULTIPLE` tokens instead (see there).
"""

from __future__ import annotations

from typing import Any

from tunelab.metrics import IGNORE_INDEX

#: Each further cut must save at least this share of the padded tokens, or the batch is not cut further: a
#: micro-batch has a fixed cost (a forward and a backward call through every layer) that a small saving does not pay.
MIN_SAVING = 0.15

#: The fewest rows a micro-batch keeps: below that, matrix multiplies on a CPU lose their efficiency.
MIN_ROWS = 8

#: The token inputs, cut along the sequence (so are hidden states of 3 or more dimensions whose first two are the mask's:
#: :func:`_per_position`); everything else in the batch must hold one value per row (``labels``, the ``length`` that
#: ``group_by_length`` reads).
_SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")

#: On an accelerator each batch is padded up to a multiple of this many tokens. There a step costs its kernel
#: launches, not its tokens, and every new sequence length costs once: cuDNN's attention builds a plan per shape
#: (on an H200, 27 of 228 attention calls in a 30-step minilm run built one, at up to 127 ms each, 98 % of the
#: attention's CPU time: benchmarks/README, "gpu_step.py"), and cuBLAS picks its kernels per shape. With dynamic
#: padding a run meets nearly every length up to ``max_length``; with this multiple, ``max_length / 8`` of them.
#: A CPU pays for every pad token, so there batches stay padded to their longest text.
ACCELERATOR_PAD_MULTIPLE = 8


def pad_multiple(max_length: int | None) -> int | None:
    """The multiple a batch's length is padded up to: ``None`` on a CPU; on an accelerator the largest divisor of
    :data:`ACCELERATOR_PAD_MULTIPLE` that also divides ``max_length``, so that a padded batch never outgrows the run's
    ``max_length`` (the model's position table may end there)."""
    import math

    import torch

    if not torch.cuda.is_available() or not max_length:
        return None
    multiple = math.gcd(ACCELERATOR_PAD_MULTIPLE, int(max_length))
    return multiple if multiple > 1 else None


def padded_length(longest: int, max_length: int | None) -> int:
    """``longest`` rounded up to :func:`pad_multiple` (unchanged on a CPU)."""
    multiple = pad_multiple(max_length)
    return longest if multiple is None else -(-longest // multiple) * multiple


def task_collator(tokenizer, task: str, max_length: int | None, document_mask: bool = False):
    """The collator of a task, padding to :func:`pad_multiple` of the run's ``max_length``: dynamic padding
    (classification); for a causal LM, the blocks' own next-token labels (which tokens are targets:
    :func:`tunelab.run.training.tokenize`) padded with ``IGNORE_INDEX``. Not ``DataCollatorForLanguageModeling``:
    it labels the input ids again, and where the pad token is the EOS token (most decoders) it drops every EOS
    between packed texts from the targets.

    ``document_mask`` (a causal LM whose model keeps packed texts apart:
    :func:`tunelab.models.probe.separates_documents`): each block's ``position_ids``, restarting at every text's
    start, and no ``attention_mask``. transformers then makes the causal mask block-diagonal, one block per text
    (``masking_utils.find_packed_sequence_indices``, as for ``DataCollatorWithFlattening``'s rows), so no text
    attends to the one before it in the block. A padded row (a split's short last block) needs no mask either: pads
    come after every real token (or, padded on the left, before a position 0, which starts a text of its own), and a
    causal mask never lets a token see what follows it; the pads' own outputs are no targets."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    multiple = pad_multiple(max_length)
    if task == "classification":
        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)
    pad = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=multiple)
    # no inputs of the padding collator: the text each block starts in, and each predicted token's; positions
    extra = ("text_index", "target_texts", "position_ids")

    def collate(features):
        batch = pad([{k: v for k, v in f.items() if k not in extra} for f in features])
        if tokenizer.padding_side == "left":
            # a block's first token is no target (the model shifts the labels: nothing before it in the block predicts
            # it); padded on the left, padding stands before it, and the shift would make it one, predicted from a pad
            width = batch["labels"].shape[1]
            for row, f in enumerate(features):
                if len(f["input_ids"]) < width:
                    batch["labels"][row, width - len(f["input_ids"])] = IGNORE_INDEX
        if document_mask and features and all("position_ids" in f for f in features):
            batch["position_ids"] = padded_positions(features, batch["input_ids"].shape[1], tokenizer.padding_side)
            batch.pop("attention_mask", None)
        return batch

    return collate


def padded_positions(features, width: int, side: str):
    """The rows' ``position_ids``, padded to ``width``: a pad position counts from its column (right padding) or from
    0 (left padding), so that every real token keeps its own and a row's first real token still starts a text."""
    import torch

    out = torch.arange(width).repeat(len(features), 1)
    for row, f in enumerate(features):
        ids = torch.as_tensor(f["position_ids"], dtype=torch.long)
        if side == "left":
            out[row, width - len(ids) :] = ids
        else:
            out[row, : len(ids)] = ids
    return out


def one_pass_attention():
    """The attention kernels for one pass over batches of ever-changing shape on an accelerator: the frozen-layer
    cache's build and the advice's frozen features (length-sorted batches whose rows and lengths both change),
    ``evaluate`` and ``predict`` on a saved model (batches as given; generation grows the keys by one token a step). There nearly every batch is a new
    shape, and PyTorch's cuDNN attention builds a plan per shape (up to 127 ms a layer on an H200:
    benchmarks/README, "gpu_step.py"); its other fused kernels (flash, memory-efficient) build none: there, with
    cuDNN's excluded, minilm's training step padded only to its longest took 20.9 ms on average, against 90.9 ms with
    it (and 20.1 ms padded to a multiple of 8). The math kernel stays as the fallback for inputs the fused ones
    refuse. Nothing changes on a CPU, which has no cuDNN attention."""
    import contextlib

    import torch

    if not torch.cuda.is_available():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def split_by_padding(inputs: dict[str, Any], *, min_saving: float = MIN_SAVING, min_rows: int = MIN_ROWS,
                     max_tokens: int | None = None) -> list[tuple[dict[str, Any], float]] | None:
    """The batch ``inputs`` as micro-batches sorted by length, each with its share of the rows; ``None`` when it is
    not worth cutting, or cannot be cut without changing what the model computes (see the module docstring).
    ``max_tokens``: cut further, while every micro-batch keeps ``min_rows`` rows, until none holds more padded
    tokens (rows x its longest) than this: the stored activations of a step are those of its largest micro-batch."""
    import torch

    mask, labels = inputs.get("attention_mask"), inputs.get("labels")
    if mask is None and isinstance(inputs.get("position_ids"), torch.Tensor):
        # per-text attention (task_collator's document_mask): no mask, rows taken whole; rows cut apart still compute
        # what they computed together, and a short block's pads after its tokens are never attended
        mask = torch.ones_like(inputs["position_ids"])
    if not isinstance(mask, torch.Tensor) or not isinstance(labels, torch.Tensor) or mask.dim() != 2:
        return None
    per_token = labels.dim() == 2  # a causal LM's next-token labels, one per position
    if per_token and (tuple(labels.shape) != tuple(mask.shape) or bool((labels[mask == 0] != IGNORE_INDEX).any())):
        return None  # padding that is a target would be cut away with the padding
    if not per_token and labels.dim() != 1:
        return None
    rows, width = mask.shape
    along = {key for key, value in inputs.items() if _per_position(key, value, mask)}
    for key, value in inputs.items():  # per-position inputs (above); anything else one value per row (labels, length)
        if key not in along and (not isinstance(value, torch.Tensor) or tuple(value.shape) != (rows,)):
            return None
    lengths = mask.sum(dim=1)
    if rows < 2 * min_rows or bool((mask != (torch.arange(width, device=mask.device) < lengths[:, None])).any()):
        return None  # too few rows, or not right-padded (left padding, or holes in the mask)
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].tolist()
    best_k, best_tokens = 1, rows * sorted_lengths[-1]
    k = 2
    while rows // k >= min_rows:
        tokens = sum(len(part) * part[-1] for part in _parts(sorted_lengths, k))  # sorted: each part's last is its longest
        if tokens > (1 - min_saving) * best_tokens:
            break
        best_k, best_tokens, k = k, tokens, 2 * k
    while max_tokens and rows // (2 * best_k) >= min_rows and _largest(sorted_lengths, best_k) > max_tokens:
        best_k *= 2
    if best_k == 1:
        return None
    total = _targets(labels)
    if total == 0:
        return None
    out = []
    for idx, part_lengths in zip(_parts(order.tolist(), best_k), _parts(sorted_lengths, best_k)):
        index, longest = torch.tensor(idx, device=mask.device), part_lengths[-1]  # sorted: the last is the longest
        part = {key: value[index, :longest] if key in along else value[index] for key, value in inputs.items()}
        targets = _targets(part["labels"])
        if targets:  # rows with no target at all add nothing to the loss (and their own mean would be 0 / 0)
            out.append((part, targets / total))
    return out


def _targets(labels) -> int:
    """What a batch's mean loss is a mean over: its rows (one label a row), or its next-token targets (a causal LM's
    labels, shifted by one inside the model's loss, ``IGNORE_INDEX`` where nothing is predicted)."""
    if labels.dim() == 1:
        return int(labels.shape[0])
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def _per_position(key: str, value: Any, mask) -> bool:
    """Whether ``value`` holds one entry per position of the batch, cut along the sequence with the mask: the token
    inputs of the mask's shape, and hidden states ``(rows, positions, ...)`` fed in place of the tokens (the frozen-layer
    cache's, :class:`tunelab.run.cache.CachedCollator`)."""
    import torch

    if not isinstance(value, torch.Tensor):
        return False
    if key in _SEQUENCE_KEYS or key == "labels":  # a causal LM's labels are per position; a classifier's per row
        return tuple(value.shape) == tuple(mask.shape)
    return value.dim() >= 3 and tuple(value.shape[:2]) == tuple(mask.shape)


def _largest(sorted_lengths: list[int], k: int) -> int:
    """The most padded tokens among the ``k`` micro-batches of rows of these (sorted) lengths."""
    return max(len(part) * part[-1] for part in _parts(sorted_lengths, k))


def _parts(items: list, k: int) -> list[list]:
    """``items`` cut into ``k`` runs of (nearly) equal length, in order."""
    n = len(items)
    return [items[i * n // k : (i + 1) * n // k] for i in range(k)]
