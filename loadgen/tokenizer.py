"""Counting tokens with the model's own tokenizer, for servers that report no usage.

Optional: needs the ``tokenizers`` package (``pip install finishline[tokenizer]``) and the
model's ``tokenizer.json``. Counts of the reply are exact for that tokenizer; prompt counts
cover the messages' text, not the chat template's extra tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadgen.errors import UserError

TokenCounter = Callable[[str], int]


def load_counter(path: Path, where: str = "target.tokenizer") -> TokenCounter:
    """A function text -> token count, from a Hugging Face ``tokenizer.json``."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UserError(f"{where}: needs the tokenizers package; pip install 'finishline[tokenizer]'") from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception for unreadable files
        raise UserError(f"{where}: {path} is not a tokenizer.json ({str(exc).splitlines()[0][:120]})") from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
