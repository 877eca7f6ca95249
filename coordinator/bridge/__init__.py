"""The live bridge: a run's Redis Stream of records -> Prometheus ``/metrics``.

Counts are kept exactly once: each bridge's aggregate lives in Redis and is updated in the
same atomic step that acknowledges the stream entries (see :mod:`coordinator.bridge.store`),
so a bridge killed at any instant restarts where it stopped.
"""
