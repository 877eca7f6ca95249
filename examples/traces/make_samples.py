"""Writes the sample traces next to this file (run once; the files are committed).

Small traces in the published formats, made up for finishline (no row comes from a real
trace), shaped like their sources: Mooncake's chat sessions whose turns grow a shared history
(and share a system prompt) block by block, Azure's steady stream of independent requests,
BurstGPT's two models and two log types. ``python examples/traces/make_samples.py``.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
BLOCK = 512


def mooncake(rng: random.Random) -> list[dict[str, object]]:
    """Eight sessions over ~12 s: each turn repeats the last turn's full blocks and adds some; the
    last block of a turn is partial, so its id is that turn's own. Sessions 0-3 share a system
    prompt (ids 0 and 1). Turns of a session are at least 1.5 s apart, so the last one's prefill
    is done (and cached) when the next arrives."""
    next_id = 2
    rows = []
    for session in range(8):
        t = rng.uniform(0.0, 3.0)
        history: list[int] = [0, 1] if session < 4 else []
        for _turn in range(rng.randint(3, 6)):
            new = list(range(next_id, next_id + rng.randint(1, 2)))
            next_id += len(new)
            partial = next_id
            next_id += 1
            ids = [*history, *new, partial]
            rows.append(
                {
                    "timestamp": round(t * 1000),
                    "input_length": (len(ids) - 1) * BLOCK + rng.randint(20, 400),
                    "output_length": rng.randint(8, 48),
                    "hash_ids": ids,
                }
            )
            history = [*history, *new]
            t += rng.uniform(1.5, 3.0)
    rows.sort(key=lambda r: r["timestamp"])
    times = [r["timestamp"] for r in rows]
    assert len(set(times)) == len(times), "unique times: rows are matched to records by them"
    return rows


def azure(rng: random.Random) -> list[tuple[str, int, int]]:
    """60 requests over ~40 s, Poisson-like, with 7 fractional digits as the 2023 trace writes them."""
    t = datetime(2023, 11, 16, 18, 15, 46, tzinfo=UTC)
    rows = []
    for _ in range(60):
        t += timedelta(seconds=rng.expovariate(1.5))
        micros = t.strftime("%Y-%m-%d %H:%M:%S.%f") + str(rng.randint(0, 9))
        rows.append((micros, rng.randint(100, 2000), rng.randint(8, 120)))
    return rows


def burstgpt(rng: random.Random) -> list[tuple[int, str, int, int, int, str]]:
    """80 requests over ~60 s in whole seconds (as BurstGPT), two models and two log types, one
    failed API request (0 response tokens)."""
    seconds = sorted(rng.sample(range(1000, 1060), 60) + rng.sample(range(1000, 1060), 20))
    rows = []
    for i, s in enumerate(seconds):
        model = "ChatGPT" if rng.random() < 0.7 else "GPT-4"
        log = "Conversation log" if rng.random() < 0.6 else "API log"
        request, response = rng.randint(20, 1500), rng.randint(5, 150)
        if i == 7:
            model, log, response = "ChatGPT", "API log", 0
        rows.append((s, model, request, response, request + response, log))
    return rows


def main() -> None:
    rng = random.Random(12)
    with (HERE / "mooncake-sample.jsonl").open("w") as fh:
        for row in mooncake(rng):
            fh.write(json.dumps(row) + "\n")
    with (HERE / "azure-sample.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        writer.writerows(azure(rng))
    with (HERE / "burstgpt-sample.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"])
        writer.writerows(burstgpt(rng))


if __name__ == "__main__":
    main()
