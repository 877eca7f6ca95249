"""The samples stream: worker and container samples written, and read without a group."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from loadgen.samples import ContainerSample, WorkerSample
from loadgen.stream.keys import CONTAINER_SAMPLE, SAMPLES_MAXLEN, WORKER_SAMPLE
from loadgen.stream.replies import stream_entries, text


class SampleWriter:
    """``XADD`` of one worker or container sample to the samples stream, capped at ``maxlen``."""

    def __init__(self, client: redis.Redis, key: str, maxlen: int = SAMPLES_MAXLEN) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    def write(self, sample: WorkerSample | ContainerSample) -> None:
        name = CONTAINER_SAMPLE if isinstance(sample, ContainerSample) else WORKER_SAMPLE
        self.client.xadd(self.key, {name: sample.to_json()}, maxlen=self.maxlen, approximate=True)


@dataclass(slots=True)
class Samples:
    workers: list[WorkerSample] = field(default_factory=list)
    containers: list[ContainerSample] = field(default_factory=list)


class SampleReader:
    """Reads the samples stream after the last id seen (``XREAD``, no group).

    A sample that cannot be read (another version's, a broken write) is skipped and counted
    in :attr:`skipped`: samples inform, they are not the measurement.
    """

    def __init__(self, client: redis.Redis, key: str, after: str = "0-0") -> None:
        self.client = client
        self.key = key
        self.last = after
        self.skipped = 0

    @classmethod
    def from_now(cls, client: redis.Redis, key: str, lookback_s: float) -> SampleReader:
        """A reader of samples written from ``lookback_s`` ago (Redis's clock) on."""
        server_ms = int(client.time()[0]) * 1000
        return cls(client, key, f"{max(0, server_ms - int(lookback_s * 1000))}-0")

    def read(self, count: int = 1000) -> Samples:
        out = Samples()
        for entry_id, fields in stream_entries(self.client.xread({self.key: self.last}, count=count)):
            self.last = text(entry_id)
            try:
                if (raw := fields.get(WORKER_SAMPLE)) is not None:
                    out.workers.append(WorkerSample.from_json(raw))
                elif (raw := fields.get(CONTAINER_SAMPLE)) is not None:
                    out.containers.append(ContainerSample.from_json(raw))
                else:
                    self.skipped += 1
            except (ValueError, TypeError):
                self.skipped += 1
        return out
