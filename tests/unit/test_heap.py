"""``loadgen.heap``: a worker hands the C heap's free memory back once a minute, and on this
machine's glibc that shrinks a fragmented heap that freeing alone does not."""

from __future__ import annotations

import psutil
import pytest

from loadgen.heap import HeapTrimmer


def test_it_trims_at_most_once_an_interval() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    trimmer = HeapTrimmer(every_s=60.0, trim=trim)
    assert [trimmer.maybe(t) for t in (0.0, 30.0, 59.9, 60.0, 100.0, 120.5)] == [False, False, False, True, False, True]
    assert calls == [0, 0] and trimmer.trims == 2


def test_a_fragmented_heap_is_given_back() -> None:
    trimmer = HeapTrimmer(every_s=0.0)
    if not trimmer.available:
        pytest.skip("this C library has no malloc_trim")
    process = psutil.Process()
    blocks = [bytes(2000) for _ in range(40_000)]  # ~80 MB from the C allocator (over 512 bytes each)
    kept = blocks[::64]  # one in 64 stays: the heap cannot shrink from its top
    del blocks
    before = process.memory_info().rss
    trimmer.maybe(0.0)
    assert trimmer.maybe(1.0)
    after = process.memory_info().rss
    assert before - after > 40 * 2**20, (before, after)  # most of the freed 78 MB went back
    assert len(kept) == 625
