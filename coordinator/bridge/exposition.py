"""``/metrics`` with prometheus-client: families built at scrape time from the bridge's aggregate.

The aggregate is restored from Redis at start, so a custom collector (rather than
prometheus-client's own Counter/Histogram objects, which cannot be preset) exposes it.
Bucket counts are stored per bucket and made cumulative here, as the exposition format wants.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.bridge.aggregate import LABEL_NAMES, US, split_labels
from loadgen import metrics

GAUGE_LABELS: tuple[str, ...] = ("run", "scenario", "phase", "target")


@dataclass(slots=True)
class Snapshot:
    """What one scrape shows: the aggregate and, if this bridge holds the lease, the gauges."""

    aggregate: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, dict[str, float]] | None = None
    slo_objective: float | None = None
    containers: tuple[dict[str, float], dict[str, float]] | None = None  # (gauges, counters) of a Docker target


class BridgeCollector(Collector):
    """Turns the flat aggregate into Prometheus families, labelled with the run."""

    def __init__(self, run_id: str, scenario: str, target: str) -> None:
        self.run_id = run_id
        self.scenario = scenario
        self.target = target
        self._lock = threading.Lock()
        self._snapshot = Snapshot()

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = self._snapshot
        labels = ["run", *LABEL_NAMES]
        counters = {
            name: CounterMetricFamily(family, f"finishline {name} (loadgen.metrics)", labels=labels)
            for name, family in metrics.PROM_COUNTERS.items()
        }
        buckets: dict[tuple[str, str], dict[int, float]] = {}
        sums: dict[tuple[str, str], float] = {}
        for key, value in snap.aggregate.items():
            kind, name, rest = key.split(US, 2)
            if kind == "c":
                family = counters.get(name)
                if family is not None:
                    family.add_metric([self.run_id, *split_labels(rest)], value)
            elif kind == "b":
                lk, idx = rest.rsplit(US, 1)
                buckets.setdefault((name, lk), {})[int(idx)] = value
            elif kind == "s":
                sums[(name, rest)] = value
        yield from counters.values()
        yield from self._histograms(buckets, sums, labels)
        yield from self._gauges(snap)
        yield from self._containers(snap)

    def _histograms(
        self,
        buckets: dict[tuple[str, str], dict[int, float]],
        sums: dict[tuple[str, str], float],
        labels: list[str],
    ) -> Iterator[Metric]:
        families = {
            name: HistogramMetricFamily(family, f"finishline {name} in seconds (loadgen.metrics)", labels=labels)
            for name, (family, _) in metrics.PROM_HISTOGRAMS.items()
        }
        for (name, lk), counts in sorted(buckets.items()):
            bounds = metrics.PROM_HISTOGRAMS[name][1]
            cumulative = 0.0
            out: list[tuple[str, float]] = []
            for i, le in enumerate((*bounds, float("inf"))):
                cumulative += counts.get(i, 0.0)
                out.append(("+Inf" if le == float("inf") else repr(le), cumulative))
            families[name].add_metric([self.run_id, *split_labels(lk)], out, sums.get((name, lk), 0.0))
        yield from families.values()

    def _gauges(self, snap: Snapshot) -> Iterator[Metric]:
        if snap.gauges is None:
            return
        families = {
            name: GaugeMetricFamily(family, f"finishline {name} from worker samples", labels=list(GAUGE_LABELS))
            for name, family in metrics.PROM_GAUGES.items()
            if name != "slo_objective"
        }
        for phase, values in sorted(snap.gauges.items()):
            for name, value in values.items():
                families[name].add_metric([self.run_id, self.scenario, phase, self.target], value)
        yield from families.values()
        if snap.slo_objective is not None:
            slo = GaugeMetricFamily(
                metrics.PROM_GAUGES["slo_objective"],
                "share of requests that should meet every SLO",
                labels=["run", "scenario", "target"],
            )
            slo.add_metric([self.run_id, self.scenario, self.target], snap.slo_objective)
            yield slo

    def _containers(self, snap: Snapshot) -> Iterator[Metric]:
        """A Docker target's container resources (labels run, target); see ``coordinator.bridge.containers``."""
        if snap.containers is None:
            return
        gauges, counters = snap.containers
        labels = list(metrics.PROM_CONTAINER_LABELS)
        values = [self.run_id, self.target]
        for name, family in metrics.PROM_CONTAINER_GAUGES.items():
            if name in gauges:
                gauge = GaugeMetricFamily(
                    family, f"container {name} of the target (latest stats sample)", labels=labels
                )
                gauge.add_metric(values, gauges[name])
                yield gauge
        for name, family in metrics.PROM_CONTAINER_COUNTERS.items():
            counter = CounterMetricFamily(family, f"container {name} over the run's containers", labels=labels)
            counter.add_metric(values, counters.get(name, 0.0))
            yield counter
