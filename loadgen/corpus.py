"""Text of a requested length, cut from the corpus shipped in ``loadgen/data``.

Lengths are counted as the simulator counts tokens (a run of letters/digits, or one other
non-space character), which is also a fair approximation of real tokenizers on plain
English prose (they give ~1.2x more). The exact count a real server saw always comes from
its usage report; this count is only what the client asked for (``estimated_prompt_tokens``).
"""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).with_name("data") / "corpus.txt"
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")
_TOKEN_WITH_SPACE = re.compile(r"\s*(?:[^\W_]+|[^\w\s]|_)")


_KNOWN: dict[str, int] = {}  # texts whose count is already known (generated or counted before)
_KNOWN_MAX = 20_000


def _remember(text: str, tokens: int) -> None:
    if len(_KNOWN) >= _KNOWN_MAX:
        _KNOWN.clear()
    _KNOWN[text] = tokens


def estimate_tokens(text: str) -> int:
    """Token count by the documented rule above; generated text is counted once, when made, so
    long prompts are not scanned again for every request that carries them."""
    known = _KNOWN.get(text)
    if known is None:
        known = len(_TOKEN.findall(text))
        _remember(text, known)
    return known


class Corpus:
    """The corpus as a list of tokens, each with the whitespace before it, so any window joins
    back into natural text of exactly that many tokens."""

    def __init__(self, text: str) -> None:
        self.pieces: list[str] = _TOKEN_WITH_SPACE.findall(text)
        if not self.pieces:
            raise ValueError("corpus has no text")

    @classmethod
    @functools.lru_cache(maxsize=8)
    def load(cls, path: Path = DEFAULT_CORPUS) -> Corpus:
        return cls(path.read_text(encoding="utf-8", errors="replace"))

    def __len__(self) -> int:
        return len(self.pieces)

    def window(self, tokens: int, start: int) -> str:
        """``tokens`` tokens from position ``start``, wrapping around the end of the corpus."""
        if tokens <= 0:
            return ""
        count = tokens
        size = len(self.pieces)
        start %= size
        out: list[str] = []
        while tokens > 0:
            take = min(tokens, size - start)
            out.extend(self.pieces[start:start + take])
            tokens -= take
            start = 0
        text = "".join(out).strip()
        _remember(text, count)
        return text

    def sample(self, tokens: int, rng: random.Random) -> str:
        """A window at a random position: distinct requests share no accidental prefix."""
        return self.window(tokens, rng.randrange(len(self.pieces)))
