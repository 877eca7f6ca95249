"""Writes the two ``vllm bench serve`` files beside it (``python tests/data/peer-results/make_vllm_files.py``).

No real vLLM result is among the peer files: ``vllm bench serve`` needs an install of vLLM
(and torch) that this project's machines cannot run. So these files are laid out key for key as
``vllm/benchmarks/serve.py`` (vLLM's main branch, late 2026) writes them with ``--save-result``, its figures computed
with its own formulas (``calculate_metrics``: numpy mean, median, std and linear percentiles of
seconds, times 1000), from per-request timings that are real: the first requests of the AIPerf
run beside them (``aiperf-concurrency16-gpu8b.records.jsonl``, the same simulator and load), one
of them turned into a failed request to show what vLLM writes for one.

- ``vllm-concurrency16-detailed.json``: ``--max-concurrency 16 --save-result --save-detailed
  --metric-percentiles 50,90,99`` (one object, per-request arrays).
- ``vllm-append.jsonl``: two runs with ``--append-result`` and no ``--save-detailed``: concurrency
  16 with the default percentiles (p99 of ttft, tpot, itl), then ``--request-rate 8
  --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99.9``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
FAILED_ERROR = (
    "Traceback (most recent call last):\n  ...\naiohttp.client_exceptions.ClientResponseError: "
    "500, message='Internal Server Error'\n"
)


def requests(first: int, count: int, fail: int | None) -> list[dict[str, Any]]:
    lines = (HERE / "aiperf-concurrency16-gpu8b.records.jsonl").read_text().splitlines()[first : first + count]
    out = []
    base = None
    for i, line in enumerate(lines):
        r = json.loads(line)
        m, meta = r["metrics"], r["metadata"]
        base = meta["request_start_ns"] if base is None else min(base, meta["request_start_ns"])
        out.append(
            {
                "success": i != fail,
                "prompt_len": m["input_sequence_length"]["value"],
                "output_tokens": m["output_sequence_length"]["value"],
                "ttft": m["time_to_first_token"]["value"] / 1000.0,
                "itl": [x / 1000.0 for x in m["inter_chunk_latency"]["value"]],
                "latency": m["request_latency"]["value"] / 1000.0,
                "start_ns": meta["request_start_ns"],
                "queue": (meta["request_start_ns"] - meta["credit_issued_ns"]) / 1e9,
                "text": "the of and to in" * 25,
            }
        )
    for o in out:
        o["start_time"] = 81234.5 + (o["start_ns"] - base) / 1e9  # perf_counter() seconds
        if not o["success"]:  # as vLLM's request function leaves a failed output
            o.update(ttft=0.0, itl=[], latency=0.0, output_tokens=0, text="", error=FAILED_ERROR)
        else:
            o["error"] = ""
    return out


def peaks(ok: list[dict[str, Any]]) -> tuple[float, int]:
    """vLLM's max_output_tokens_per_s and max_concurrent_requests."""
    t0 = min(o["start_time"] for o in ok)
    t1 = max(o["start_time"] + o["latency"] for o in ok)
    buckets = np.zeros(int(np.ceil(t1 - t0)) + 1)
    for o in ok:
        t = o["start_time"] + o["ttft"]
        times = [t]
        for gap in o["itl"]:
            t += gap
            times.append(t)
        for x in times:
            b = int(x - t0)
            if 0 <= b < buckets.size:
                buckets[b] += 1
    events = sorted([(o["start_time"], 1) for o in ok] + [(o["start_time"] + o["latency"], -1) for o in ok])
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return float(buckets.max()), peak


def result(
    outs: list[dict[str, Any]],
    *,
    rate: float | str,
    concurrency: int | None,
    percentiles: list[float],
    metrics: list[str],
    detailed: bool,
) -> dict[str, Any]:
    ok = [o for o in outs if o["success"]]
    dur = max(o["start_time"] + o["latency"] for o in ok) - min(o["start_time"] for o in outs) + 0.0021
    lens = [o["output_tokens"] if o["success"] else 0 for o in outs]
    total_in = sum(o["prompt_len"] for o in ok)
    ttfts = [o["ttft"] for o in ok]
    tpots = [(o["latency"] - o["ttft"]) / (o["output_tokens"] - 1) for o in ok if o["output_tokens"] > 1]
    itls = [x for o in ok for x in o["itl"]]
    e2els = [o["latency"] for o in ok]
    peak_tokens, peak_requests = peaks(ok)
    out: dict[str, Any] = {
        "date": "20261201-073002",
        "endpoint_type": "openai-chat",
        "backend": "openai-chat",
        "label": None,
        "model_id": "finishline-sim",
        "tokenizer_id": "/tmp/peer-bench-tokenizer-v1",
        "num_prompts": len(outs),
        "request_rate": rate,
        "burstiness": 1.0,
        "max_concurrency": concurrency,
        "duration": dur,
        "completed": len(ok),
        "failed": len(outs) - len(ok),
        "total_input_tokens": total_in,
        "total_output_tokens": sum(lens),
        "request_throughput": len(ok) / dur,
        "request_goodput": None,
        "output_throughput": sum(lens) / dur,
        "total_token_throughput": (total_in + sum(lens)) / dur,
        "input_lens": [o["prompt_len"] for o in outs],
        "output_lens": lens,
        "ttfts": [o["ttft"] for o in outs],
        "itls": [o["itl"] for o in outs],
        "latencies": [o["latency"] for o in outs],
        "start_times": [o["start_time"] for o in outs],
        "queue_times": [o["queue"] for o in outs],
        "generated_texts": [o["text"] for o in outs],
        "errors": [o["error"] for o in outs],
        "max_output_tokens_per_s": peak_tokens,
        "max_concurrent_requests": peak_requests,
        "rtfx": 0.0,
    }
    for name, values in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        if name not in metrics:
            continue
        out[f"mean_{name}_ms"] = float(np.mean(values)) * 1000
        out[f"median_{name}_ms"] = float(np.median(values)) * 1000
        out[f"std_{name}_ms"] = float(np.std(values)) * 1000
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            out[f"p{word}_{name}_ms"] = float(np.percentile(values, p)) * 1000
    if not detailed:
        for key in ("input_lens", "output_lens", "start_times", "ttfts", "itls", "generated_texts", "errors"):
            del out[key]
    return out


def main() -> None:
    detailed = result(
        requests(0, 32, fail=5),
        rate="inf",
        concurrency=16,
        percentiles=[50.0, 90.0, 99.0],
        metrics=["ttft", "tpot", "itl"],
        detailed=True,
    )
    (HERE / "vllm-concurrency16-detailed.json").write_text(json.dumps(detailed))
    first = result(
        requests(32, 32, fail=None),
        rate="inf",
        concurrency=16,
        percentiles=[99.0],
        metrics=["ttft", "tpot", "itl"],
        detailed=False,
    )
    second = result(
        requests(64, 32, fail=None),
        rate=8.0,
        concurrency=None,
        percentiles=[50.0, 99.9],
        metrics=["ttft", "tpot", "itl", "e2el"],
        detailed=False,
    )
    (HERE / "vllm-append.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second))


if __name__ == "__main__":
    main()
