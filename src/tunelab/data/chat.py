"""Chat and instruction rows: ``messages`` lists or ``prompt``/``completion`` pairs."""

from __future__ import annotations

import json
from typing import Any

from tunelab.data.table import Table, brief
from tunelab.errors import DataError

ROLES = ("system", "user", "assistant")
Message = dict[str, str]


def is_chat(table: Table) -> bool:
    """Rows carry a ``messages`` column, or both ``prompt`` and ``completion``."""
    names = set(table.column_names)
    return "messages" in names or {"prompt", "completion"} <= names


def render(messages: list[Message]) -> str:
    """A plain ``role: content`` rendering, one message per line, for tokenizers without a chat template."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def generation_prompt(tokenizer, text: str) -> str:
    """``text`` as a user's turn that asks for the assistant's reply, the way a model trained on conversations saw
    them: the tokenizer's chat template with its generation prompt, or else :func:`render`'s ``role: content`` lines
    followed by ``assistant:``."""
    messages = [{"role": "user", "content": text}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return render(messages) + "\nassistant:"


def chat_messages(table: Table) -> list[list[Message]]:
    """One validated conversation per row."""
    if "messages" in table.columns:
        return [_messages(table, i, value) for i, value in enumerate(table.columns["messages"])]
    prompts, completions = table.columns["prompt"], table.columns["completion"]
    return [_pair(table, i, p, c) for i, (p, c) in enumerate(zip(prompts, completions))]


def _pair(table: Table, i: int, prompt: Any, completion: Any) -> list[Message]:
    for name, value in (("prompt", prompt), ("completion", completion)):
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{table.origin}: {table.where([i])}, column '{name}' is empty or not a string; "
                "give every row a non-empty prompt and completion"
            )
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def _messages(table: Table, i: int, value: Any) -> list[Message]:
    where = f"{table.origin}: {table.where([i])}, column 'messages'"
    example = 'e.g. [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as err:
            raise DataError(f"{where} is text but not a JSON list of messages; {example}") from err
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
