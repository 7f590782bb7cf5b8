"""Chat and instruction rows: ``messages`` lists, ``prompt``/``completion`` pairs, and the two shapes most shared
datasets come in: ShareGPT's ``conversations`` (turns of ``from``/``value``) and Alpaca's ``instruction`` (with an
optional ``input``) and ``output``."""

from __future__ import annotations

import json
from typing import Any

from tunelab.data.table import Table, brief
from tunelab.errors import DataError, first_line

ROLES = ("system", "user", "assistant")
Message = dict[str, str]


#: ShareGPT's speaker names, as roles.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system"}
#: The columns that hold a conversation, whichever shape it comes in.
CHAT_COLUMNS = ("messages", "conversations", "prompt", "completion", "instruction", "output")


def is_chat(table: Table) -> bool:
    """Rows carry a ``messages`` or ``conversations`` column, both ``prompt`` and ``completion``, or both
    ``instruction`` and ``output``."""
    names = set(table.column_names)
    return ("messages" in names or "conversations" in names or {"prompt", "completion"} <= names
            or {"instruction", "output"} <= names)


def render(messages: list[Message]) -> str:
    """A plain ``role: content`` rendering, one message per line, for tokenizers without a chat template."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def words(messages: list[Message]) -> str:
    """A conversation's own words as plain text: its messages' contents, one per line, without role labels or chat
    template markup. What ``tunelab recommend`` measures the domain and the tokenizer's fragmentation on (see
    :mod:`tunelab.advice.recommend`): its reference is plain news text, and ``user:`` / ``<|im_start|>`` are the
    format's words, not the domain's."""
    return "\n".join(m["content"] for m in messages)


#: What :func:`words` reads, as a report says it.
WORDS_READ = "the conversations' message contents, without role labels or chat-template markup"


#: :func:`render`'s lines, and :func:`generation_prompt`'s ``assistant:`` after them, as a chat template: a model
#: trained on conversations through a tokenizer without one is saved with it, so that ``apply_chat_template``
#: prompts it as it was trained.
PLAIN_CHAT_TEMPLATE = ("{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
                       "{{ message['role'] + ': ' + message['content'] }}{% endfor %}"
                       "{% if add_generation_prompt %}{{ '\\nassistant:' }}{% endif %}")


def generation_prompt(tokenizer, text: str, system: str | None = None) -> str:
    """``text`` as a user's turn that asks for the assistant's reply, the way a model trained on conversations saw
    them: the tokenizer's chat template with its generation prompt, or else :func:`render`'s ``role: content`` lines
    followed by ``assistant:``; ``system``: a system turn before it (as training conversations may begin)."""
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": text}]
    if getattr(tokenizer, "chat_template", None):
        return _template(tokenizer, messages, add_generation_prompt=True)
    return render(messages) + "\nassistant:"


def conversation_text(tokenizer, messages: list[Message]) -> str:
    """A whole conversation as the model trains on it: the tokenizer's chat template, or :func:`render`."""
    if getattr(tokenizer, "chat_template", None):
        return _template(tokenizer, messages)
    return render(messages)


def _template(tokenizer, messages: list[Message], **kwargs: Any) -> str:
    """``messages`` through the tokenizer's chat template, as text. A template that refuses them (Mistral's and
    Llama 2's raise on a system turn or on roles that do not alternate; Gemma's on a system role) is a
    :class:`DataError` naming the conversation by its first user's turn, with the template's reason."""
    import jinja2

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except jinja2.TemplateError as exc:
        asked = next((m["content"] for m in messages if m["role"] == "user"), messages[0]["content"] if messages else "")
        raise DataError(
            f"the chat template of {tokenizer.name_or_path} refuses the conversation whose user says {brief(asked)}: "
            f"{first_line(exc)}; give every conversation in the turns this template takes"
        ) from None


def reply_spans(tokenizer, messages: list[Message]) -> tuple[str, list[tuple[int, int]]]:
    """:func:`conversation_text` and the character spans of the assistant's turns in it: what a model learns to
    answer (TRL's ``assistant_only_loss`` / ``completion_only_loss``). Through a chat template a turn's span runs
    from the end of the conversation so far with the generation prompt (``apply_chat_template(messages[:k],
    add_generation_prompt=True)``) to the end of it with the reply, so the template's end-of-turn marker is learnt
    too; that needs no ``{% generation %}`` markers in the template. A template that does not render a
    conversation as an extension of its beginning (some drop earlier turns' reasoning) has each reply found by its
    content instead, in order, with what the template puts after a reply (:func:`_turn_ends`) where it follows.
    Without a template, or with :data:`PLAIN_CHAT_TEMPLATE` (the same lines), a turn's span is its reply."""
    text = conversation_text(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    if getattr(tokenizer, "chat_template", None) in (None, "", PLAIN_CHAT_TEMPLATE):  # the plain lines: as trained
        start = 0
        for message in messages:
            line = f"{message['role']}: "
            if message["role"] == "assistant":
                spans.append((start + len(line), start + len(line) + len(message["content"])))
            start += len(line) + len(message["content"]) + 1  # the newline between messages
        return text, spans
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        asked = _template(tokenizer, messages[:k], add_generation_prompt=True) if k else ""
        answered = _template(tokenizer, messages[: k + 1])
        if not (answered.startswith(asked) and text.startswith(answered)):
            return text, _spans_by_content(text, messages, _turn_ends(tokenizer))
        spans.append((len(asked), len(answered)))
    return text, spans


def _spans_by_content(text: str, messages: list[Message], ends: list[str]) -> list[tuple[int, int]]:
    """Each assistant reply's content, found in ``text`` after the previous message's, and the first of ``ends``
    (longest first) that follows it: the reply's end-of-turn marker, learnt with it."""
    spans, at = [], 0
    for message in messages:
        found = text.find(message["content"], at) if message["content"] else -1
        if found < 0:
            continue
        at = found + len(message["content"])
        if message["role"] == "assistant":
            at += len(next((end for end in ends if text.startswith(end, at)), ""))
            spans.append((found, at))
    return spans


#: A probe conversation's turns, found again in its rendering (:func:`_turn_ends`).
_PROBE_QUESTION, _PROBE_REPLY = "tunelabprobequestion", "tunelabprobereply"


def _turn_ends(tokenizer) -> list[str]:
    """What the chat template puts after an assistant's reply (e.g. ``<|im_end|>\\n``), read from its rendering of
    a probe conversation, and each shorter beginning of it that ends between two of its tokens, longest first. A
    reply followed by another turn may be ended by only the beginning of what ends the last one (a template that
    closes the conversation with an EOS after the last turn's marker); a beginning that ends inside a token (``<|``
    of ``<|end|>``) would mark the next turn's first token. Nothing where the probe does not render."""
    probe = [{"role": "user", "content": _PROBE_QUESTION}, {"role": "assistant", "content": _PROBE_REPLY}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that refuses the probe (it needs a system turn): nothing is added
        return []
    found = rendered.rfind(_PROBE_REPLY)
    end = rendered[found + len(_PROBE_REPLY):] if found >= 0 else ""
    if not end:
        return []
    cuts = {len(end)}
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(end, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        cuts |= {e for _, e in offsets if 0 < e < len(end)}
    return [end[:cut] for cut in sorted(cuts, reverse=True)]


def chat_messages(table: Table) -> list[list[Message]]:
    """One validated conversation per row."""
    if "messages" in table.columns:
        return [_messages(table, i, value) for i, value in enumerate(table.columns["messages"])]
    if "conversations" in table.columns:
        return [_messages(table, i, _sharegpt(table, i, value), "conversations")
                for i, value in enumerate(table.columns["conversations"])]
    if "prompt" in table.columns and "completion" in table.columns:
        prompts, completions = table.columns["prompt"], table.columns["completion"]
        return [_pair(table, i, p, c) for i, (p, c) in enumerate(zip(prompts, completions))]
    inputs = table.columns.get("input") or [None] * len(table.columns["instruction"])
    return [_pair(table, i, _alpaca_prompt(instruction, extra), output, ("instruction", "output"))
            for i, (instruction, extra, output) in enumerate(zip(table.columns["instruction"], inputs,
                                                                 table.columns["output"]))]


def _alpaca_prompt(instruction: Any, extra: Any) -> Any:
    """Alpaca's instruction, and its input (the text to work on) after a blank line when there is one."""
    if isinstance(instruction, str) and isinstance(extra, str) and extra.strip():
        return f"{instruction}\n\n{extra}"
    return instruction


def _sharegpt(table: Table, i: int, value: Any) -> Any:
    """ShareGPT's turns (``{"from": "human", "value": ...}``) as messages (``role``/``content``); turns that are
    already messages pass as they are, and what is neither is left for :func:`_messages` to refuse."""
    value = _parsed(value)
    if not isinstance(value, list | tuple):
        return value
    turns = []
    for n, turn in enumerate(value, start=1):
        if isinstance(turn, dict) and "from" in turn and "role" not in turn:
            speaker = str(turn["from"]).strip().lower()
            if speaker not in SHAREGPT_ROLES:
                raise DataError(f"{table.origin}: {table.where([i])}, column 'conversations': turn {n} is from "
                                f"{brief(turn['from'])}; use one of {', '.join(sorted(SHAREGPT_ROLES))}")
            turn = {"role": SHAREGPT_ROLES[speaker], "content": turn.get("value")}
        turns.append(turn)
    return turns


def _parsed(value: Any) -> Any:
    """A conversation given as JSON text (a CSV cell), parsed; anything else, as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _pair(table: Table, i: int, prompt: Any, completion: Any,
          names: tuple[str, str] = ("prompt", "completion")) -> list[Message]:
    if isinstance(_parsed(prompt), list | tuple) or isinstance(_parsed(completion), list | tuple):
        # TRL's conversational prompt-completion: the prompt's messages, then the completion's (the answer)
        return _messages(table, i, [*_turns(_parsed(prompt)), *_turns(_parsed(completion))], f"{names[0]}+{names[1]}")
    for name, value in zip(names, (prompt, completion)):
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{table.origin}: {table.where([i])}, column '{name}' is empty or not a string; "
                f"give every row a non-empty {names[0]} and {names[1]}"
            )
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def _turns(value: Any) -> list:
    """A side of a conversational prompt-completion pair as a list of messages (a string: one turn of text)."""
    if isinstance(value, list | tuple):
        return list(value)
    return [value]  # refused by _messages with the message it names


def _messages(table: Table, i: int, value: Any, column: str = "messages") -> list[Message]:
    where = f"{table.origin}: {table.where([i])}, column '{column}'"
    example = 'e.g. [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]'
    value = _parsed(value)
    if isinstance(value, str):
        raise DataError(f"{where} is text but not a JSON list of messages; {example}")
    if not isinstance(value, list | tuple) or not value:
        raise DataError(f"{where} must be a non-empty list of messages; {example}")
    messages = [_message(where, n, m, example) for n, m in enumerate(value, start=1)]
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise DataError(
            f"{where} has no non-empty assistant message; each conversation needs an answer to learn from"
        )
    return messages


def _message(where: str, n: int, message: Any, example: str) -> Message:
    if not isinstance(message, dict):
        raise DataError(f"{where}: message {n} is not an object with 'role' and 'content'; {example}")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise DataError(f"{where}: message {n} has role {brief(role)}; use one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise DataError(f"{where}: message {n} has no 'content' string; {example}")
    return {"role": role, "content": content}
