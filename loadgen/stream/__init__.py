"""A run's Redis keys and every read and write of its streams, in this package.

Keys (built only by :func:`~loadgen.stream.keys.stream_keys`): ``finishline:{run_id}:records``
(stream; entry fields ``id``, the record id, and ``r``, the record's JSON), ``…:samples`` (stream;
field ``s``, a :class:`~loadgen.samples.WorkerSample`, or ``c``, a
:class:`~loadgen.samples.ContainerSample`), ``…:state`` (hash: phase, status, scenario, target),
``…:progress`` (hash: requests each worker has begun) and ``…:bridge:*`` (the bridge's own keys).

- :mod:`~loadgen.stream.keys`: key and field names, the run's hashes.
- :mod:`~loadgen.stream.records`: :class:`RecordWriter`, one pipelined round trip a batch.
- :mod:`~loadgen.stream.sink`: :class:`RecordSink`, records shipped from a greenlet inside Locust
  workers, and the :class:`BegunCounter` that counts each request before it is sent.
- :mod:`~loadgen.stream.group`: :class:`GroupReader`, records read through a consumer group (the
  collector's and the bridge's), and what it hands back.
- :mod:`~loadgen.stream.trimming`: :func:`trim` below what every group still needs.
- :mod:`~loadgen.stream.samples`: :class:`SampleWriter` and :class:`SampleReader` (no group: every
  reader sees every sample).
- :mod:`~loadgen.stream.replies`: redis-py's replies decoded. Clients are made without
  ``decode_responses`` and replies are decoded there only, so callers get ``str`` ids and
  ``bytes`` payloads.
"""
