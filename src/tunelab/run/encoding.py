"""Texts into token ids for a classifier, keeping the part of a too-long text that ``--keep`` names.

transformers' tokenizers cut a long text at its end (``truncation=True``) or, with ``truncation_side="left"``, at
its start. Long documents often say what they are about at both ends (a review's verdict is in its last lines, a
contract's parties in its first), and keeping the head and the tail together is the better cut for classification
(Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?": 128 tokens from the start and 382 from the end
of 512). :func:`encode` does all three the same way for any tokenizer: it tokenizes whole, finds the special tokens
the tokenizer put around the text (``special_tokens_mask``), and keeps them with the chosen part of what is between.

    >>> cut([1, 10, 11, 12, 13, 14, 15, 16, 2], [1, 0, 0, 0, 0, 0, 0, 0, 1], 6, "start+end")
    [1, 10, 14, 15, 16, 2]
    >>> cut([1, 10, 11, 12, 13, 14, 15, 16, 2], [1, 0, 0, 0, 0, 0, 0, 0, 1], 6, "end")
    [1, 13, 14, 15, 16, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEAD_SHARE = 0.25
"""``start+end``: the share of the kept text taken from its start (Sun et al.: 128 of 510)."""


def cut(ids: Sequence[int], special: Sequence[int], max_length: int, keep: str) -> list[int]:
    """``ids`` cut to ``max_length``: the special tokens at both ends (``special`` marks them) and the part of the
    text between that ``keep`` names (``start``, ``end`` or ``start+end``)."""
    ids = list(ids)
    if len(ids) <= max_length:
        return ids
    lead = next((i for i, s in enumerate(special) if not s), len(ids))
    trail = next((i for i, s in enumerate(reversed(special)) if not s), 0)
    text = ids[lead : len(ids) - trail]
    room = max(max_length - lead - trail, 0)
    head = room if keep == "start" else 0 if keep == "end" else int(room * HEAD_SHARE)
    tail = room - head
    return ids[:lead] + text[:head] + (text[len(text) - tail :] if tail else []) + ids[len(ids) - trail :]


def encode(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int, keep: str = "start") -> dict[str, Any]:
    """The tokenizer's encoding of ``texts`` (with ``pairs``: text pairs, cut longest first as transformers does),
    at most ``max_length`` tokens each, keeping the part ``keep`` names of single texts that are longer."""
    if pairs is not None or keep == "start":
        return dict(tokenizer(texts, pairs, truncation=True, max_length=max_length))
    enc = tokenizer(texts, truncation=False, return_special_tokens_mask=True, verbose=False)
    out: dict[str, Any] = {"input_ids": [cut(ids, special, max_length, keep)
                                         for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"], strict=True)]}
    out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
    if "token_type_ids" in enc:
        out["token_type_ids"] = [[0] * len(ids) for ids in out["input_ids"]]
    return out
