"""The records stream written: ``XADD`` of serialised records, one pipelined round trip a batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from loadgen.records import RequestRecord
from loadgen.stream.keys import RECORD, RECORD_ID


class RecordWriter:
    """``XADD`` of serialised records (fields ``id`` and ``r``), one pipelined round trip a batch."""

    def __init__(self, client: redis.Redis, key: str, maxlen: int | None = None) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    def write(self, batch: Sequence[tuple[str, bytes]], progress: tuple[str, str, int] | None = None) -> None:
        """Send ``(record id, record JSON)`` pairs; raises ``redis.RedisError`` with nothing known written.

        ``progress`` ``(hash key, worker, begun)``: written in the same transaction as the records,
        so what a worker said it had begun and the records it had sent by then arrive together.
        """
        pipe = self.client.pipeline(transaction=progress is not None)
        if progress is not None:
            progress_key, worker, begun = progress
            pipe.hset(progress_key, worker, begun)
        key = self.key
        if self.maxlen is None:
            for rid, raw in batch:
                pipe.xadd(key, {RECORD_ID: rid, RECORD: raw})
        else:
            for rid, raw in batch:
                pipe.xadd(key, {RECORD_ID: rid, RECORD: raw}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def write_records(self, records: Iterable[RequestRecord]) -> int:
        batch = [(rec.id, rec.to_json()) for rec in records]
        if batch:
            self.write(batch)
        return len(batch)
