"""The live-metrics feature: records to Prometheus through the bridge, Grafana dashboards and annotations."""

from __future__ import annotations

from coordinator.registry import Feature, Ref

FEATURE = Feature(
    name="live_metrics",
    extensions=(
        Ref("coordinator.bridge.grafana:attach_annotations"),  # only when a Grafana URL and token are set
        Ref("coordinator.bridge.extension:attach"),  # only when the scenario's metrics.prometheus is on
    ),
    commands={
        "bridge": Ref("coordinator.bridge.command:bridge"),
        "grafana": Ref("coordinator.bridge.grafana:grafana"),
    },
)
