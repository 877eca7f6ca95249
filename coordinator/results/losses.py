"""What a run lost and says so: records begun and never received, and workers gone mid-run.

A worker counts each logical request in Redis before it sends it (``loadgen.stream.sink.RecordSink.begin``);
the collector counts the records that arrived. The difference, for a worker that died or could
not reach Redis, is its lost records. The run puts this together
(``coordinator.run.health.account_losses``); the summary, the report and the exit code (partial)
carry it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LostWorker(BaseModel):
    """A worker that went away mid-run, as summary.json and the report tell it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worker: str
    lost_after_s: float = Field(description="seconds after the run started")
    exit_code: int | None
    users: int | None = Field(description="users it ran when last seen")
    short_for_s: float | None = Field(description="until the other workers ran its users, or the run ended")
    records_lost: int = Field(ge=0)


class Losses(BaseModel):
    """Records lost and workers lost: counted, never hidden (summary.json ``losses``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records_lost: int = Field(ge=0, description="requests begun whose record never arrived")
    by_worker: dict[str, int] = Field(default_factory=dict, description="records lost per worker (only non-zero)")
    workers_lost: tuple[LostWorker, ...] = ()
    dropped: int = Field(default=0, ge=0, description="records a worker dropped while Redis was away (in records_lost)")

    def reasons(self) -> list[str]:
        """One line per thing that makes the run partial."""
        out = [
            f"worker {w.worker} was lost {w.lost_after_s:.1f} s into the run"
            + (f" (exit code {w.exit_code})" if w.exit_code is not None else "")
            + (
                f"; its {w.users} users ran short for {w.short_for_s:.1f} s"
                if w.users and w.short_for_s is not None
                else (f"; its {w.users} users were not replaced" if w.users else "")
            )
            for w in self.workers_lost
        ]
        if self.records_lost:
            where = ", ".join(f"{n} from {w}" for w, n in sorted(self.by_worker.items()))
            out.append(f"{self.records_lost} records lost ({where}): begun but never received")
        return out
