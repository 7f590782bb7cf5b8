"""A causal LM's texts packed into blocks of ``max_length`` tokens: the ids, the next-token labels, the text each token
belongs to and the position ids that restart at each text (per-text attention). Read by training (its tokenized
splits), evaluation and the forgetting measure, which reads a reference as the run reads its data."""

from __future__ import annotations

from tunelab.metrics import IGNORE_INDEX

TEXT_COLUMN = "text_index"
"""A causal LM's tokenized splits: the text each block starts in (not a model input: the collator drops it)."""

TARGET_TEXTS_COLUMN = "target_texts"
"""A causal LM's tokenized splits: the text each predicted token of a block belongs to, in order (the collator drops
it): what :meth:`tunelab.run.outputs.ExampleOutputs.attribute` sums each text's loss by."""

LM_PACKING_ROWS = 1000
"""Causal LM: texts are packed into blocks this many rows at a time (``datasets.map``'s batch). The training split
drops each batch's last partial block, unless it is the batch's only one (every step's blocks full, as usual); a
split that is scored keeps it, a last, shorter block the collator pads, so that every text of it is scored
(:data:`WHOLE_SPLITS`, ``keep_tail`` of :func:`lm_blocks`)."""

WHOLE_SPLITS = ("validation", "test")
"""The splits a run scores, packed to their last token (:func:`lm_blocks`'s ``keep_tail``): dropping each batch's
partial block left a text every :data:`LM_PACKING_ROWS` rows unscored. ``tunelab evaluate`` keeps every split's."""


def lm_blocks(batch: dict[str, list], tokenizer, max_length: int, loss_on: str = "all",
               first: int = 0, keep_tail: bool = False) -> tuple[list[list[int]], list[list[int]], list[int], list[list[int]]]:
    """A batch of rows (columns of ``datasets.map``) as causal-LM blocks and their next-token labels: the texts
    joined, each followed by the separator (EOS, the model config's where the tokenizer names none:
    :func:`~tunelab.models.load_tokenizer`; a tokenizer without one, as GPT-2 models trained with a BERT tokenizer,
    its SEP token), cut into blocks of ``max_length`` tokens. ``loss_on="assistant"``:
    a conversation's tokens outside the assistant's turns are context, not targets (label ``IGNORE_INDEX``;
    :func:`tunelab.data.chat.reply_spans`), and a block with nothing left to predict is dropped. Third: the text
    each token of a block belongs to, as an index into the split (``first``: the batch's first row's; the separator
    after a text is that text's, which predicts it), for the intervals, which resample texts, not blocks of one text
    (:meth:`tunelab.run.outputs.ExampleOutputs.by_text`). Fourth: each block's position ids, restarting at each
    text's start (:func:`text_positions`). ``keep_tail``: the last, shorter block is kept (a split that is scored:
    :data:`WHOLE_SPLITS`), else dropped unless it is the only one (training's full blocks)."""
    separator = [t for t in (tokenizer.eos_token_id, tokenizer.sep_token_id) if t is not None][:1]
    keys = list(batch.keys())
    rows = [dict(zip(keys, values)) for values in zip(*batch.values())]
    # every text learnt whole is tokenized in one batched call (a fast tokenizer's own parallel path)
    whole = [i for i, row in enumerate(rows) if not (loss_on == "assistant" and row.get("messages"))]
    encoded = dict(zip(whole, tokenizer([_row_text(rows[i], tokenizer) for i in whole],
                                        add_special_tokens=False)["input_ids"])) if whole else {}
    flat: list[int] = []
    learnt: list[bool] = []
    owner: list[int] = []
    segment: list[int] = []  # which text each token is read with (per-text attention): the separator added after a
    # text opens the next one, as an end-of-text token opens a document in pre-training's packed windows
    for i, row in enumerate(rows):
        ids, targets = (encoded[i], [True] * len(encoded[i])) if i in encoded else _reply_targets(row, tokenizer)
        end = [] if _ends_with(ids, separator, tokenizer) else separator
        flat += ids + end
        learnt += targets + [targets[-1] if targets else True] * len(end)  # the end is learnt with the last turn
        owner += [first + i] * (len(ids) + len(end))
        segment += [i] * len(ids) + [i + 1] * len(end)
    usable = len(flat) if keep_tail else (len(flat) // max_length) * max_length
    starts = list(range(0, usable, max_length))
    if not starts and flat:  # keep a short tail rather than dropping a small split
        starts = [0]
    blocks, labels, texts, positions = [], [], [], []
    for i in starts:
        ids, mask = flat[i : i + max_length], learnt[i : i + max_length]
        if any(mask[1:]):  # the first position is never predicted (labels shift by one inside the model)
            blocks.append(ids)
            labels.append([t if m else IGNORE_INDEX for t, m in zip(ids, mask)])
            texts.append(owner[i : i + max_length])
            positions.append(text_positions(segment[i : i + max_length]))
    return blocks, labels, texts, positions


def crossing_share(rows, tokenizer, max_length: int) -> float:
    """The share of ``rows`` (a split's, in its order, as ``datasets`` gives a slice: columns of lists) that cross a
    block boundary when packed as training packs them (:func:`lm_blocks`, :data:`LM_PACKING_ROWS` rows at a time):
    a text whose tokens, the separator after it included (:func:`lm_blocks`), lie in more than one block: the part
    after the boundary is read without the text's start."""
    keys = list(rows)
    count = len(rows[keys[0]]) if keys else 0
    crossing = 0
    for start in range(0, count, LM_PACKING_ROWS):
        batch = {k: v[start : start + LM_PACKING_ROWS] for k, v in rows.items()}
        _, _, owners, _ = lm_blocks(batch, tokenizer, max_length, first=start, keep_tail=True)
        blocks_of: dict[int, int] = {}
        for block in owners:
            for text in set(block):
                blocks_of[text] = blocks_of.get(text, 0) + 1
        crossing += sum(n > 1 for n in blocks_of.values())
    return crossing / count if count else 0.0


def target_texts(labels: list[list[int]], owners: list[list[int]]) -> list[list[int]]:
    """Per block, the text of each predicted token (a label past the first position, not ``IGNORE_INDEX``), in order."""
    return [[text for label, text in zip(row[1:], texts[1:]) if label != IGNORE_INDEX] for row, texts in zip(labels, owners)]


def text_positions(owners: list[int]) -> list[int]:
    """A block's position ids: 0 where a text starts, counting up inside it (the collator's per-text attention,
    :func:`tunelab.run.padding.task_collator`). A text starts at the separator before it (:func:`lm_blocks`), so
    each text is read as ``<EOS> text``, as a document follows an end-of-text token in pre-training's windows: the
    EOS still ends the text before it as its target (predicted from that text), and reads as the next one's start.
    Read as ``text`` alone, with a content token at position 0, smollm2 as loaded scored 315 perplexity on
    rotten-tomatoes' validation snippets, against 182 with the EOS first (114 with no per-text attention; 12,700
    tokens, ``benchmarks/README.md``, "document_mask.py"). The part of a text that a block starts with counts from 0 as well:
    nothing before it is in the block to attend to, so its first token is the first of what the model reads, as in
    pre-training, where a position is the number of tokens before it in the window; its position in the whole text
    could also pass the model's position table (GPT-2's learned positions stop at 1,024)."""
    out: list[int] = []
    for k, text in enumerate(owners):
        out.append(out[-1] + 1 if k and owners[k - 1] == text else 0)
    return out


def _ends_with(ids: list[int], separator: list[int], tokenizer) -> bool:
    """Whether ``ids`` already end with ``separator``, but for whitespace after it: a chat template that closes every
    turn with the EOS (ChatML's ``<|im_end|>\\n``) ends a conversation with it, and a second one would be learnt."""
    if not separator or separator[0] not in ids[-8:]:
        return False
    last = len(ids) - 1 - ids[::-1].index(separator[0])
    return not tokenizer.decode(ids[last + 1 :]).strip()


def _row_text(row: dict, tokenizer) -> str:
    """A row as the causal LM reads it: a conversation through the chat template (:func:`conversation_text`), else
    its text."""
    from tunelab.data.chat import conversation_text

    return conversation_text(tokenizer, row["messages"]) if row.get("messages") else row["text"]


def _reply_targets(row: dict, tokenizer) -> tuple[list[int], list[bool]]:
    """A conversation's token ids, and whether each is a target: inside an assistant's turn."""
    from tunelab.data.chat import reply_spans

    text, spans = reply_spans(tokenizer, row["messages"])
    if getattr(tokenizer, "is_fast", False):  # the whole text's tokens, each marked by where it lies
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [any(s < end and e > start for start, end in spans) and e > s
                                  for s, e in enc["offset_mapping"]]
    ids, targets, at = [], [], 0  # a slow tokenizer has no offsets: its pieces tokenized one after another
    for start, end in spans + [(len(text), len(text))]:
        for piece, target in ((text[at:start], False), (text[start:end], True)):
            if piece:
                piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids += piece_ids
                targets += [target] * len(piece_ids)
        at = end
    return ids, targets
