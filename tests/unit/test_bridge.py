"""The bridge without Redis: what a record adds to the live counts, goodput as the summary
counts it, the command's options, and the container gauges' rules."""

from __future__ import annotations

import random

import pytest

from coordinator.bridge.aggregate import US, record_increments, split_labels
from coordinator.bridge.containers import ContainerGauges
from coordinator.results.slo import Slo
from coordinator.results.summarize import summarize_group
from loadgen import metrics
from tests.factories import container_sample, random_record


def test_increments_follow_loadgen_metrics() -> None:
    rng = random.Random(1)
    records = [random_record(rng) for _ in range(300)]
    inc: dict[str, float] = {}
    for r in records:
        record_increments(r, "scn", metrics.SloRule(), inc)

    def by(kind: str, name: str) -> dict[str, float]:
        return {k: v for k, v in inc.items() if k.startswith(f"{kind}{US}{name}{US}")}

    assert sum(by("c", "requests").values()) == len(records)
    assert sum(by("c", "attempts").values()) == sum(len(r.attempts) for r in records)
    assert sum(by("c", "retries").values()) == sum(r.retries for r in records) > 0
    assert sum(by("c", "errors").values()) == sum(1 for r in records if not r.ok) > 0
    assert sum(by("c", "output_tokens").values()) == sum(metrics.output_tokens(r) for r in records)
    ttfts = [metrics.ttft(r.final) for r in records if metrics.ttft(r.final) is not None]
    assert sum(by("b", "ttft").values()) == len(ttfts)
    assert sum(by("s", "ttft").values()) == pytest.approx(sum(ttfts))
    itls = [g for r in records for g in metrics.itl(r.final)]
    assert sum(by("b", "itl").values()) == len(itls)
    assert sum(by("s", "itl").values()) == pytest.approx(sum(itls))
    # every ITL lands in the bucket Prometheus would use (le is inclusive)
    buckets = metrics.PROM_HISTOGRAMS["itl"][1]
    expected = [0] * (len(buckets) + 1)
    for g in itls:
        expected[next((i for i, le in enumerate(buckets) if g <= le), len(buckets))] += 1
    got = [0] * (len(buckets) + 1)
    for k, v in by("b", "itl").items():
        got[int(k.rsplit(US, 1)[1])] += int(v)
    assert got == expected
    labels = {tuple(split_labels(k.split(US)[2])) for k in by("c", "requests")}
    assert all(len(lab) == 5 and lab[0] == "scn" for lab in labels)


def test_goodput_matches_the_summary() -> None:
    rng = random.Random(2)
    records = [random_record(rng) for _ in range(400)]
    slo = Slo(ttft_ms=100.0, tpot_ms=25.0, e2e_ms=600.0)
    inc: dict[str, float] = {}
    for r in records:
        record_increments(r, "", slo.rule(), inc)
    good = sum(v for k, v in inc.items() if k.startswith(f"c{US}good_requests{US}"))
    assert 0 < good < len(records)
    assert any(r.ok and metrics.tpot(r.final) is None for r in records)  # one-token answers are among them
    assert good == summarize_group(records, 10.0, slo).goodput.requests


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--host", "0.0.0.0"], "--host"),
        (["--slo-objective", "1.5"], "slo_objective"),
        ([], "--redis-url: cannot connect"),
    ],
)
def test_bad_bridge_options_give_one_line_and_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from coordinator.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bridge", "--run-id", "bridge-test", "--redis-url", "redis://127.0.0.1:1/0", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_container_gauges_are_fresh_stats_only_and_counters_never_go_down() -> None:
    g = ContainerGauges(fresh_s=5.0)
    assert not g.seen
    g.add(container_sample(oom=1, restarts=2), now=100.0)
    gauges, counters = g.values(now=101.0)
    assert gauges == {"cpu_percent": 37.5, "memory_bytes": 123_456_789.0, "memory_limit": float(1 << 30)}
    assert counters == {"oom_kills": 1.0, "restarts": 2.0}
    g.add(container_sample(oom=0, restarts=0, cpu=None), now=102.0)  # a late, lower total: ignored
    assert g.values(now=103.0) == (gauges, counters)  # no new stats: the last ones, while fresh
    assert g.values(now=106.0)[0] == {}  # stale
    g.add(container_sample(oom=1, running=False, cpu=None), now=106.5)
    assert g.values(now=106.6) == ({}, counters)  # stopped: no gauges, counters stay
