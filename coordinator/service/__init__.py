"""``finishline serve``: finishline as a long-lived HTTP service that people, CI and (later) a
scheduler submit runs to.

The API process only validates, queues and watches: each run is a ``finishline run``
subprocess in its own session, started by the queue (:mod:`coordinator.service.queue`) when
its target is free. Run state lives in Redis (:mod:`coordinator.service.store`), so a restarted
service lists every run and takes up watching the ones still going (docs/service.md).
"""
