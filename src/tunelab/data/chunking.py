"""Plain text into training examples: paragraphs merged greedily into chunks of ~1-2k characters."""

from __future__ import annotations

import re

MIN_CHARS = 1_000
MAX_CHARS = 2_000

_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines, stripped, empty ones dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in _BLANK_LINE.split(text) if p.strip()]


def _split_long(piece: str, max_chars: int) -> list[str]:
    """Cut a piece longer than ``max_chars`` at line breaks, then spaces, then anywhere."""
    if len(piece) <= max_chars:
        return [piece]
    for separator in ("\n", " "):
        parts = piece.split(separator)
        if len(parts) > 1:
            out: list[str] = []
            for part in _merge(parts, separator, max_chars):
                out.extend(_split_long(part, max_chars))
            return out
    return [piece[i : i + max_chars] for i in range(0, len(piece), max_chars)]


def _merge(pieces: list[str], separator: str, max_chars: int) -> list[str]:
    """Join consecutive pieces with ``separator`` while the result stays within ``max_chars``."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if not piece.strip():
            continue
        if current and len(current) + len(separator) + len(piece) > max_chars:
            chunks.append(current)
            current = ""
        current = f"{current}{separator}{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def chunk_text(text: str, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> list[str]:
    """Split ``text`` on blank lines and merge the paragraphs greedily into chunks.

    Chunks grow up to ``max_chars``; a paragraph longer than that is cut at line breaks (then
    spaces). A last chunk shorter than ``min_chars`` joins the previous one when that stays under
    ``max_chars + min_chars``, so no tiny tail example is left over.

    >>> chunk_text("a\\n\\nb")
    ['a\\n\\nb']
    """
    pieces: list[str] = []
    for paragraph in split_paragraphs(text):
        pieces.extend(_split_long(paragraph, max_chars))
    chunks = _merge(pieces, "\n\n", max_chars)
    if (
        len(chunks) > 1
        and len(chunks[-1]) < min_chars
        and len(chunks[-2]) + len(chunks[-1]) < max_chars + min_chars
    ):
        tail = chunks.pop()
        chunks[-1] = f"{chunks[-1]}\n\n{tail}"
    return chunks
