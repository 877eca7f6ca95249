"""Text of a requested length, cut from the corpus shipped in ``loadgen/data``.

Lengths are counted as the simulator counts tokens (a run of letters/digits, or one other
non-space character), which is also a fair approximation of real tokenizers on plain
English prose (they give ~1.2x more). The exact count a real server saw always comes from
its usage report; this count is only what the client asked for (``estimated_prompt_tokens``).

The corpus is tokenised once per process (at worker start); a window is then one string
slice between two precomputed character offsets, and its count is known without scanning
it, so a 16k-token long-context prompt costs microseconds in the worker's event loop
instead of the tens of milliseconds a regex scan (or a join of 16k pieces) would block it.
"""

from __future__ import annotations

import functools
import random
import re
from array import array
from collections import OrderedDict
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).with_name("data") / "corpus.txt"
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")


class _KnownCounts:
    """Token counts of texts already counted (made from pieces of known counts, or scanned once),
    least recently used first out, bounded by the texts' total size.

    Every synthetic prompt is a new string, and remembering it keeps it alive after its request
    ended: without a tight bound each worker of a long run grows by every prompt it sent. Counts are
    looked up when a request is sent, right after its prompt was made, and shared texts (system
    prefixes, a dataset's prompts) are looked up again each time they are sent, so a few megabytes
    hold what is still in use. A text that fell out is scanned again: it costs time, never a wrong
    count."""

    def __init__(self, max_chars: int = 4_000_000) -> None:
        self.max_chars = max_chars
        self.counts: OrderedDict[str, int] = OrderedDict()
        self.chars = 0

    def get(self, text: str) -> int | None:
        tokens = self.counts.get(text)
        if tokens is not None:
            self.counts.move_to_end(text)
        return tokens

    def remember(self, text: str, tokens: int) -> None:
        if text in self.counts:
            self.counts.move_to_end(text)
            return
        if len(text) > self.max_chars:  # it would push out everything else
            return
        self.counts[text] = tokens
        self.chars += len(text)
        while self.chars > self.max_chars:
            oldest, _ = self.counts.popitem(last=False)
            self.chars -= len(oldest)


_KNOWN = _KnownCounts()


def count_tokens(text: str) -> int:
    """Token count by the documented rule, always scanning (what ``estimate_tokens`` caches)."""
    return len(_TOKEN.findall(text))


def remember_count(text: str, tokens: int) -> str:
    """Record the count of a text built from pieces of known counts; returns the text."""
    _KNOWN.remember(text, tokens)
    return text


def estimate_tokens(text: str) -> int:
    """Token count by the documented rule above; generated text is counted once, when made, so
    long prompts are not scanned again for every request that carries them."""
    known = _KNOWN.get(text)
    if known is None:
        known = count_tokens(text)
        _KNOWN.remember(text, known)
    return known


class Corpus:
    """The corpus text with the character offsets where each token starts and ends, so any
    window of tokens is one slice of natural text of exactly that many tokens."""

    def __init__(self, text: str) -> None:
        starts, ends = array("q"), array("q")
        for match in _TOKEN.finditer(text):
            starts.append(match.start())
            ends.append(match.end())
        if not starts:
            raise ValueError("corpus has no text")
        self.text = text
        self._starts = starts
        self._ends = ends

    @classmethod
    @functools.lru_cache(maxsize=8)
    def load(cls, path: Path = DEFAULT_CORPUS) -> Corpus:
        return cls(path.read_text(encoding="utf-8", errors="replace"))

    def __len__(self) -> int:
        return len(self._starts)

    def _slice(self, start: int, tokens: int) -> str:
        """Tokens ``start`` .. ``start + tokens - 1`` (all inside the corpus), as written."""
        return self.text[self._starts[start] : self._ends[start + tokens - 1]]

    def window(self, tokens: int, start: int) -> str:
        """``tokens`` tokens from position ``start``, wrapping around the end of the corpus
        (joined by a space, so no two tokens fuse across the seam)."""
        if tokens <= 0:
            return ""
        size = len(self)
        start %= size
        parts: list[str] = []
        left = tokens
        while left > 0:
            take = min(left, size - start)
            parts.append(self._slice(start, take))
            left -= take
            start = 0
        return remember_count(parts[0] if len(parts) == 1 else " ".join(parts), tokens)

    def sample(self, tokens: int, rng: random.Random) -> str:
        """A window at a random position: distinct requests share no accidental prefix."""
        return self.window(tokens, rng.randrange(len(self)))
