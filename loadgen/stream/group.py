"""The records stream read through a consumer group (the collector's and the bridge's)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from loadgen.records import RequestRecord
from loadgen.stream.keys import RECORD
from loadgen.stream.replies import as_bytes, stream_entries, text


@dataclass(slots=True)
class Unreadable:
    """A stream entry that holds no readable record, and why."""

    id: str
    fields: dict[str, str]  # as it came, decoded (undecodable bytes replaced)
    reason: str


@dataclass(slots=True)
class Batch:
    """What one :meth:`GroupReader.read` returned.

    ``ids`` are every entry read — readable or not, and entries trimmed before they were read —
    and all of them are to be acknowledged together: through :meth:`GroupReader.ack`, or by the
    consumer itself (the bridge acks in the script that applies the batch).
    """

    ids: list[str] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # records[i]'s JSON as it came
    claimed: int = 0  # entries taken over from other consumers


class GroupReader:
    """One consumer of a consumer group on the records stream.

    The group is created at the stream's start (id 0), so entries written before any reader
    came are read too. Each :meth:`read` takes, in this order: this consumer's own pending
    entries (left by an earlier life of the same consumer name, or by a batch that failed
    before it was acknowledged; see :meth:`reset`) until none are left; then, when a claim
    pass is due, entries of other consumers idle for ``claim_idle_s`` (``XAUTOCLAIM``: dead
    consumers' entries, which would otherwise never be acknowledged); then new entries,
    waiting up to ``block_ms`` for them. A claim pass runs first at the first read, then every
    ``claim_every_s`` after a full pass (never again when ``None``).

    An entry that holds no readable record (no field ``r``, not JSON, not a record of this
    schema) never stops reading: it is handed to ``on_unreadable`` with the reason when read
    and acknowledged with its batch. An entry trimmed before it was read is acknowledged
    without a word: there is nothing left of it to set aside.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        consumer: str,
        *,
        on_unreadable: Callable[[Unreadable], None],
        count: int = 1000,
        claim_idle_s: float = 0.0,
        claim_every_s: float | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.on_unreadable = on_unreadable
        self.count = count
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.claim_every_s = claim_every_s
        self.next_claim = 0.0  # monotonic time of the next claim pass
        self._own_pending = True
        self._cursor = "0-0"
        self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def reset(self) -> None:
        """Read this consumer's pending entries again first (call after an error between read and ack)."""
        self._own_pending = True

    def read(self, block_ms: int | None = None) -> Batch:
        try:
            return self._read(block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis came back without the stream (it restarted empty): what the workers send again
            # is read from the start of the new stream
            self._ensure_group()
            self._own_pending, self._cursor = True, "0-0"
            return Batch()

    def _read(self, block_ms: int | None) -> Batch:
        batch = Batch()
        if self._own_pending:
            entries = stream_entries(
                self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.count)
            )
            if entries:
                self._parse(entries, batch)
                return batch
            self._own_pending = False
        now = time.monotonic()
        if now >= self.next_claim:
            self._claim(now, batch)
            if batch.ids:
                return batch
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count, block=block_ms)
        self._parse(stream_entries(reply), batch)
        return batch

    def _claim(self, now: float, batch: Batch) -> None:
        reply = self.client.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=self._cursor, count=self.count
        )
        self._cursor = text(reply[0])
        if self._cursor == "0-0":  # a full pass over the group's pending entries
            self.next_claim = math.inf if self.claim_every_s is None else now + self.claim_every_s
        self._parse(reply[1], batch)
        batch.claimed = len(batch.ids)
        if len(reply) > 2:  # trimmed before anyone acked them: only the acknowledgement is left to do
            batch.ids.extend(text(eid) for eid in reply[2])

    def _parse(self, entries: Iterable[Any], batch: Batch) -> None:
        for entry_id, fields in entries:
            if entry_id is None:
                continue
            eid = text(entry_id)
            batch.ids.append(eid)
            if not fields:  # trimmed before it was read
                continue
            raw = fields.get(RECORD)
            if raw is None:
                self._unreadable(eid, fields, "no field r (record JSON)")
                continue
            raw = as_bytes(raw)
            try:
                record = RequestRecord.from_json(raw)
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                self._unreadable(eid, fields, f"{type(exc).__name__}: {exc}")
                continue
            batch.records.append(record)
            batch.raw.append(raw)

    def _unreadable(self, eid: str, fields: Mapping[Any, Any], reason: str) -> None:
        decoded = {text(k): as_bytes(v).decode("utf-8", "replace") for k, v in fields.items()}
        self.on_unreadable(Unreadable(eid, decoded, reason))

    def ack(self, batch: Batch) -> None:
        if batch.ids:
            self.client.xack(self.stream, self.group, *batch.ids)

    def backlog(self) -> int:
        return backlog(self.client, self.stream, self.group)


def backlog(client: redis.Redis, stream: str, group: str) -> int:
    """Entries ``group`` has not acknowledged yet: pending plus never delivered (0 without the stream)."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0  # no stream yet
    for info in groups:
        if text(info["name"]) == group:
            return int(info["pending"]) + int(info.get("lag") or 0)
    return 0
