"""Per-request values of one step, in finishline's definitions: what comparisons bootstrap over.

For a finishline run they come from its records file (:func:`from_columns`, a phase and a
workload); for another tool's file that has per-request data they are computed by its importer
and kept in the baseline as ``requests.npz`` (:func:`save_npz`, :func:`load_npz`), one set of
arrays per step under the step's ``samples_key``.

Latencies are milliseconds over *successful* requests only (NaN where a request's value is
undefined, as a one-token reply's TPOT); ITL is one value per token; ``ok`` and the output
tokens cover every request, so error rates and throughput resample with the latencies.
Where the source has request times, ``end_s`` says when each request ended (seconds from the
step's first request's schedule) and ``span_s`` how long it took from its schedule: comparisons
resample throughput with them (``coordinator.compare.intervals``). ``good`` marks the requests
that met the run's SLOs, as its goodput counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coordinator.results.columns import Mask, RecordColumns

Floats = npt.NDArray[np.float64]

LATENCIES: tuple[str, ...] = ("ttft", "tpot", "e2e")  # one value per request; ITL apart (one per token)


@dataclass(frozen=True, slots=True, eq=False)
class StepSamples:
    """One step's requests: every request in ``ok``/``output_tokens``, latencies of the successful ones."""

    ttft: Floats  # ms, successful requests (NaN where undefined)
    tpot: Floats
    e2e: Floats
    itl: Floats  # ms, one per token of the successful requests
    ok: npt.NDArray[np.bool_]  # every request
    output_tokens: Floats  # every request (0 for a failed one)
    duration_s: float | None  # what rates divide by
    end_s: Floats | None = None  # every request: when it ended, s from the step's first schedule (None: not known)
    good: npt.NDArray[np.bool_] | None = None  # every request: succeeded and met every SLO (None: not known)
    span_s: Floats | None = None  # every request: from its schedule to its end, s (None: not known)
    ttfot: Floats | None = None  # ms, successful requests that answered (NaN where undefined; None: not known)

    @property
    def requests(self) -> int:
        return int(self.ok.size)

    def latency(self, metric: str) -> Floats | None:
        """The metric's per-request values; None for one these samples do not hold (a point comparison)."""
        values: Floats | None = getattr(self, metric, None)
        return values


def from_columns(columns: RecordColumns, rows: Mask, duration_s: float | None, good: Mask | None = None) -> StepSamples:
    """A finishline step's samples, from the run's columns (``rows``: the step's records; ``good``:
    which of every row met the run's SLOs, as the summary's goodput counts them)."""
    ok = columns.ok[rows]
    succeeded = rows & columns.ok

    def ms(metric: str) -> Floats:
        return np.asarray(columns.values[metric][succeeded], dtype=np.float64) * 1000.0

    return StepSamples(
        ttft=ms("ttft"),
        tpot=ms("tpot"),
        e2e=ms("e2e"),
        itl=columns.itl(succeeded) * 1000.0,
        ok=ok,
        output_tokens=np.where(ok, columns.output_tokens[rows], 0).astype(np.float64),
        duration_s=duration_s,
        end_s=_since_first(columns.end[rows], columns.scheduled[rows]),
        good=None if good is None else good[rows],
        span_s=columns.end[rows] - columns.scheduled[rows],
        ttfot=ms("ttfot") if "ttfot" in columns.values else None,
    )


def _since_first(end: Floats, scheduled: Floats) -> Floats:
    return end - float(scheduled.min()) if scheduled.size else np.asarray(end, dtype=np.float64)


_FIELDS = ("ttft", "tpot", "e2e", "itl", "ok", "output_tokens")


def save_npz(path: Path, steps: dict[str, StepSamples]) -> Path:
    """Every step's arrays in one compressed file (``{key}/{field}``, durations in ``{key}/duration_s``)."""
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for key, samples in steps.items():
        for name in _FIELDS:
            arrays[f"{key}/{name}"] = getattr(samples, name)
        arrays[f"{key}/duration_s"] = np.array([np.nan if samples.duration_s is None else samples.duration_s])
        if samples.end_s is not None:
            arrays[f"{key}/end_s"] = samples.end_s
        if samples.good is not None:
            arrays[f"{key}/good"] = samples.good
        if samples.span_s is not None:
            arrays[f"{key}/span_s"] = samples.span_s
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    return path


def load_npz(path: Path) -> dict[str, StepSamples]:
    out: dict[str, StepSamples] = {}
    with np.load(path) as data:
        keys = {name.rsplit("/", 1)[0] for name in data.files}
        for key in sorted(keys):
            duration = float(data[f"{key}/duration_s"][0])
            out[key] = StepSamples(
                ttft=data[f"{key}/ttft"].astype(np.float64),
                tpot=data[f"{key}/tpot"].astype(np.float64),
                e2e=data[f"{key}/e2e"].astype(np.float64),
                itl=data[f"{key}/itl"].astype(np.float64),
                ok=data[f"{key}/ok"].astype(bool),
                output_tokens=data[f"{key}/output_tokens"].astype(np.float64),
                duration_s=None if np.isnan(duration) else duration,
                end_s=data[f"{key}/end_s"].astype(np.float64) if f"{key}/end_s" in data.files else None,
                good=data[f"{key}/good"].astype(bool) if f"{key}/good" in data.files else None,
                span_s=data[f"{key}/span_s"].astype(np.float64) if f"{key}/span_s" in data.files else None,
            )
    return out
