"""Prometheus recording and alert rules, as data, written to ``dashboards/prometheus/``.

Recording rules give dashboards cheap, uniform series: latency percentiles (over successful
requests, like the summary), token and request rates, goodput, SLO burn, and the target's
queue/running/KV-cache under one name whatever the server (vLLM and the simulator
``vllm:*``, llama.cpp ``llamacpp:*``, TGI ``tgi_*``).

Each alert is a *signal* compared with a threshold; the signal is kept as the ``signal``
annotation so that a human (and the tests) can look at the current value when it is quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards import names as n


def _by(extra: str = "") -> str:
    return f"{n.RUN_BY}, {extra}" if extra else n.RUN_BY


def _server(exprs: list[str]) -> str:
    """The first of several servers' names that exists, as one series per (run, target)."""
    return " or ".join(f"sum by (run, target) ({e})" for e in exprs)


def _share(part: str, whole: str, window: str) -> str:
    """Rate of ``part`` over rate of ``whole``; 0 (not absent) while ``part`` has no series yet."""
    return (
        f"(sum by ({_by()}) (rate({part}[{window}])) or 0 * sum by ({_by()}) (rate({whole}[{window}])))"
        f" / sum by ({_by()}) (rate({whole}[{window}]))"
    )


def recording_rules() -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []
    for name in n.LATENCY_RULES:
        rules.append(
            {
                "record": n.bucket_rate(name),
                "expr": f"sum by ({_by('le')}) (rate({n.ok_buckets(name)}[1m]))",
            }
        )
        for label, q in n.QUANTILES:
            rules.append({"record": n.quantile(name, label), "expr": f"histogram_quantile({q}, {n.bucket_rate(name)})"})
    req, err, good = n.COUNTER["requests"], n.COUNTER["errors"], n.COUNTER["good_requests"]
    rules += [
        {"record": n.REQUESTS_RATE, "expr": f"sum by ({_by()}) (rate({req}[1m]))"},
        {
            "record": n.OUTPUT_TOKENS_RATE,
            "expr": f"sum by ({_by()}) (rate({n.COUNTER['output_tokens']}{{{n.OK}}}[1m]))",
        },
        {
            "record": n.REASONING_TOKENS_RATE,
            "expr": f"sum by ({_by()}) (rate({n.COUNTER['reasoning_tokens']}{{{n.OK}}}[1m]))",
        },
        {"record": n.ERRORS_RATE, "expr": f"sum by ({_by('outcome')}) (rate({err}[1m]))"},
        {"record": n.RETRIES_RATE, "expr": f"sum by ({_by('outcome')}) (rate({n.COUNTER['retries']}[1m]))"},
        {"record": n.GOODPUT_RATE, "expr": f"sum by ({_by()}) (rate({good}[1m]))"},
    ]
    for record, window in ((n.ERROR_RATIO_1M, "1m"), (n.ERROR_RATIO_15M, "15m")):
        rules.append({"record": record, "expr": _share(err, req, window)})
    for ratio, burn, window in ((n.GOODPUT_RATIO_5M, n.SLO_BURN_5M, "5m"), (n.GOODPUT_RATIO_1H, n.SLO_BURN_1H, "1h")):
        rules.append({"record": ratio, "expr": _share(good, req, window)})
        # burn rate: the share of bad requests over the share the objective allows
        rules.append(
            {
                "record": burn,
                "expr": f"(1 - {ratio}) / on (run, scenario, target) group_left ()"
                f" (1 - max by (run, scenario, target) ({n.GAUGE['slo_objective']}))",
            }
        )
    rules += [
        {
            "record": n.SERVER_WAITING,
            "expr": _server(list(n.SERVER_GAUGES["waiting"])),
        },
        {
            "record": n.SERVER_RUNNING,
            "expr": _server(list(n.SERVER_GAUGES["running"])),
        },
        {
            "record": n.SERVER_KV_USAGE,
            "expr": _server(list(n.SERVER_GAUGES["kv_usage"])),
        },
        {
            "record": n.SERVER_TOKENS_RATE,
            "expr": _server(
                [
                    "rate(vllm:generation_tokens_total[1m])",
                    "rate(llamacpp:tokens_predicted_total[1m])",
                    "rate(tgi_request_generated_tokens_sum[1m])",
                ]
            ),
        },
    ]
    return rules


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    signal: str  # the quantity watched (always returns data during a run)
    condition: str  # PromQL using the signal; fires when it returns series
    for_: str
    severity: str
    summary: str


def alerts() -> list[Alert]:
    dispatch_p99 = n.quantile("dispatch_delay", "p99")
    # each source tagged so that `or` keeps all three, then the worst of them
    saturation = (
        f"max by ({_by()}) ("
        f'label_replace({n.GAUGE["cpu_percent"]} / 100, "signal", "cpu", "", "")'
        f' or label_replace({n.GAUGE["loop_lag"]} * 10, "signal", "loop_lag", "", "")'
        f' or label_replace({dispatch_p99} * 20, "signal", "dispatch_delay", "", ""))'
    )
    return [
        Alert(
            "FinishlineSloBurnFast",
            signal=n.SLO_BURN_5M,
            condition=f"{n.SLO_BURN_5M} > 14.4 and {n.SLO_BURN_1H} > 14.4",
            for_="1m",
            severity="page",
            summary="Requests miss the SLO 14.4x faster than the objective allows (5m and 1h windows).",
        ),
        Alert(
            "FinishlineErrorRateSpike",
            signal=n.ERROR_RATIO_1M,
            condition=f"{n.ERROR_RATIO_1M} > 0.05 and {n.ERROR_RATIO_1M} > 2 * {n.ERROR_RATIO_15M}",
            for_="1m",
            severity="warning",
            summary="More than 5% of requests fail, at least twice the 15-minute error ratio.",
        ),
        Alert(
            # 1.0 means: a worker at 100% CPU, or 100 ms loop lag, or 50 ms p99 dispatch delay
            "FinishlineClientSaturated",
            signal=saturation,
            condition=f"{saturation} >= 0.9",
            for_="30s",
            severity="warning",
            summary="The load generator itself is saturated: latencies measure the client, not the server.",
        ),
        *container_alerts(),
    ]


def container_alerts() -> list[Alert]:
    """A Docker target's container: OOM kills, and memory about to hit its limit (series only in Docker runs)."""
    oom = f"max by (run, target) ({n.CONTAINER_COUNTER['oom_kills']})"
    memory = (
        f"max by (run, target) ({n.CONTAINER_GAUGE['memory_bytes']})"
        f" / max by (run, target) ({n.CONTAINER_GAUGE['memory_limit']})"
    )
    return [
        Alert(
            "FinishlineContainerOomKilled",
            signal=oom,
            condition=f"max by (run, target) (increase({n.CONTAINER_COUNTER['oom_kills']}[5m])) > 0",
            for_="0s",
            severity="page",
            summary="The target's container was killed by the OOM killer: raise target.memory (the run's results say which start).",
        ),
        Alert(
            "FinishlineContainerMemoryNearLimit",
            signal=memory,
            condition=f"{memory} > 0.9",
            for_="30s",
            severity="warning",
            summary="The target's container uses more than 90% of its memory limit: an OOM kill is near.",
        ),
    ]


def rule_files() -> dict[str, dict[str, Any]]:
    """File name -> content of the rule files under ``dashboards/prometheus/``."""
    alert_rules = [
        {
            "alert": a.name,
            "expr": a.condition,
            "for": a.for_,
            "labels": {"severity": a.severity},
            "annotations": {"summary": a.summary, "signal": a.signal},
        }
        for a in alerts()
    ]
    return {
        "recording_rules.yml": {"groups": [{"name": "finishline-recording", "rules": recording_rules()}]},
        "alert_rules.yml": {"groups": [{"name": "finishline-alerts", "rules": alert_rules}]},
    }
