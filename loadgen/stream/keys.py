"""A run's Redis key names (built here only, see docs/architecture.md), the streams' entry fields,
and the run's hashes read and written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import redis
from redis.typing import EncodableT, FieldT

from loadgen.stream.replies import text

KEY_PREFIX = "finishline"
RECORD_ID = b"id"  # records stream: the record's id
RECORD = b"r"  # records stream: the record's JSON
WORKER_SAMPLE = b"s"  # samples stream: a worker sample
CONTAINER_SAMPLE = b"c"  # samples stream: a container sample
SAMPLES_MAXLEN = 100_000  # approximate cap on the samples stream (a day of 1 Hz samples from a worker)


class StreamKeys(NamedTuple):
    records: str
    samples: str
    state: str
    bridge: str  # prefix of the bridge's keys: {bridge}:state:{consumer}, {bridge}:seen:{window}, ...
    progress: str  # hash: worker -> logical requests it has begun (RecordSink.begin)


def stream_keys(run_id: str) -> StreamKeys:
    """The only place Redis key names of a run are built (see docs/architecture.md)."""
    base = f"{KEY_PREFIX}:{run_id}"
    return StreamKeys(f"{base}:records", f"{base}:samples", f"{base}:state", f"{base}:bridge", f"{base}:progress")


def read_hash(client: redis.Redis, key: str) -> dict[str, str]:
    """A hash, decoded (the run's state, a bridge's aggregate)."""
    return {text(k): text(v) for k, v in client.hgetall(key).items()}


def write_hash(client: redis.Redis, key: str, fields: Mapping[str, str]) -> None:
    mapping: dict[FieldT, EncodableT] = {k: v for k, v in fields.items()}  # noqa: C416 - widens the type
    client.hset(key, mapping=mapping)
