"""A deterministic, documented tokenizer, so clients can predict the server's token counts.

A token is a maximal run of letters and digits (any script, underscore excluded) or one
other non-space character. Whitespace is never a token. ``"Hello, world 42!"`` is 5 tokens:
``Hello`` ``,`` ``world`` ``42`` ``!``.

Chat: each message costs its content's tokens plus ``chat_message_overhead_tokens``
(default 4, like a chat template's role and separator tokens), and the prompt costs
``chat_reply_overhead_tokens`` more once (default 3, the assistant turn's header).

Generated text is drawn from ``VOCAB``: each word is one space plus letters, i.e. exactly
one token, so re-tokenizing the output gives the ``completion_tokens`` the server reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")

VOCAB: tuple[str, ...] = tuple(
    " " + w
    for w in [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "they",
        "you",
        "were",
        "her",
        "she",
        "there",
        "been",
        "one",
        "all",
        "we",
        "their",
        "has",
        "would",
        "when",
        "if",
        "so",
        "no",
        "will",
        "more",
        "can",
        "out",
        "up",
        "into",
        "do",
        "about",
        "than",
        "them",
        "some",
        "could",
        "time",
        "these",
        "two",
        "may",
        "first",
        "then",
        "only",
        "its",
        "new",
        "like",
        "other",
        "after",
        "over",
        "such",
        "also",
        "made",
        "many",
        "most",
        "people",
    ]
)
VOCAB_BYTES: tuple[bytes, ...] = tuple(w.encode() for w in VOCAB)


def tokens(text: str) -> list[str]:
    """The token strings of ``text``."""
    return _TOKEN.findall(text)


def count(text: str) -> int:
    return len(_TOKEN.findall(text))


def chat_tokens(messages: Iterable[tuple[str, str]], per_message: int, reply: int) -> list[str]:
    """Token strings of a chat prompt, overhead included (``(role, content)`` pairs).

    The overhead tokens carry the role, so the same text under another role is another
    prefix for the prefix cache.
    """
    out: list[str] = []
    for role, content in messages:
        out.extend([f"<|{role}|>"] * per_message)
        out.extend(_TOKEN.findall(content))
    out.extend(["<|reply|>"] * reply)
    return out
