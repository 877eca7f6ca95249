"""The SLO rule, defined once (loadgen.metrics.SloRule): record by record and over columns, the same answer."""

from __future__ import annotations

import random

import numpy as np
import pytest

from coordinator.results.slo import Slo
from coordinator.results.summarize import summarize
from loadgen import metrics
from loadgen.records import RequestRecord
from tests.factories import record


def _no_token(t0: float = 100.0) -> RequestRecord:
    """A successful request that never produced a token: TTFT and TPOT undefined."""
    return record(t0=t0, tokens=0)


def test_an_undefined_tpot_meets_the_tpot_slo_and_an_undefined_ttft_misses_the_ttft_slo() -> None:
    one_token = record(tokens=1, ttft=0.05)  # TPOT undefined: one output token
    slow = record(tokens=10, ttft=0.05, itl=0.02)  # TPOT about 20 ms
    fast = record(tokens=10, ttft=0.05, itl=0.005)
    assert metrics.tpot(one_token.final) is None and metrics.ttft(_no_token().final) is None
    tpot_slo = Slo(tpot_ms=10)
    # the summary (columns) and the bridge (record by record) say the same
    assert summarize([one_token, slow, fast], slo=tpot_slo).all.goodput.requests == 2
    assert [tpot_slo.rule().good(r) for r in (one_token, slow, fast)] == [True, False, True]
    ttft_slo = Slo(ttft_ms=100)
    assert summarize([_no_token(), fast], slo=ttft_slo).all.goodput.requests == 1
    assert [ttft_slo.rule().good(r) for r in (_no_token(), fast)] == [False, True]
    # failed requests are never good, whatever the thresholds
    assert summarize([record(error="timeout")], slo=Slo(e2e_ms=1e6)).all.goodput.requests == 0
    assert summarize([record(error="timeout")]).all.goodput.requests == 0


@pytest.mark.parametrize("metric", sorted(metrics.SLO_METRICS))
def test_the_check_of_one_value_and_of_a_column_agree(metric: str) -> None:
    rule = metrics.SloRule(**{metric: 0.25})
    (limit,) = rule.limits()
    assert limit.undefined_meets is metrics.SLO_METRICS[metric]
    values = [None, float("nan"), 0.0, 0.1, np.nextafter(0.25, 0), 0.25, np.nextafter(0.25, 1), 7.0, float("inf")]
    column = np.array([np.nan if v is None else v for v in values], dtype=float)
    one_by_one = [limit.meets(v) for v in values]
    assert one_by_one == list(limit.meets_all(column))
    assert one_by_one == [limit.undefined_meets] * 2 + [True] * 4 + [False] * 3


def test_good_and_good_all_agree_over_many_records() -> None:
    rng = random.Random(3)
    records = [
        record(ttft=rng.uniform(0.01, 0.2), itl=rng.uniform(0.001, 0.03), tokens=rng.randint(1, 30)) for _ in range(300)
    ]
    records += [record(error="timeout") for _ in range(10)] + [_no_token() for _ in range(5)]
    rule = metrics.SloRule(ttft=0.1, tpot=0.015, e2e=0.5)
    values = {
        name: np.array([np.nan if (v := metrics.request_values(r)[name]) is None else v for r in records])
        for name in metrics.SLO_METRICS
    }
    ok = np.array([r.ok for r in records])
    column = rule.good_all(ok, values)
    assert list(column) == [rule.good(r) for r in records]
    assert 0 < column.sum() < len(records)


def test_the_declaration_in_ms_converts_once_to_the_rule_in_seconds() -> None:
    assert Slo(ttft_ms=300, tpot_ms=40).rule() == metrics.SloRule(ttft=0.3, tpot=0.04)
    assert Slo(e2e_ms=1500).limits_ms() == [("e2e", 1500)]
    assert metrics.SloRule.from_ms(None, 25, None) == metrics.SloRule(tpot=0.025)
    assert Slo().rule().limits() == () and metrics.SloRule().good(record())


def test_the_verdict_is_judged_at_the_declared_percentile_even_an_unusual_one() -> None:
    ttfts = [0.01 * i for i in range(1, 101)]
    records = [record(ttft=t) for t in ttfts]
    verdict = summarize(records, slo=Slo(ttft_ms=970, percentile=97)).all.slo
    assert verdict is not None
    check = verdict.checks["ttft"]
    assert check.value_ms == pytest.approx(np.percentile(np.array(ttfts) * 1000, 97))
    assert check.met is False and verdict.met is False  # 970.3 ms > 970 ms
    at_p99 = summarize(records, slo=Slo(ttft_ms=1000)).all
    assert at_p99.slo is not None and at_p99.slo.checks["ttft"].value_ms == at_p99.latency_ms.ttft.p99
    empty = summarize([record(error="timeout")], slo=Slo(ttft_ms=100)).all.slo
    assert empty is not None and empty.checks["ttft"].value_ms is None and empty.met is None
