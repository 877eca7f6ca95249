"""The simulator's kernel receive stamps (``targets/simulator/stamps.py``) on a loopback connection."""

from __future__ import annotations

import socket
import time

from targets.simulator.stamps import StampedSocket, adopt
from tests.fixtures.waiting import wait_for


def _stamped_probe(client: socket.socket, stamped: StampedSocket) -> bool:
    client.sendall(b".")
    assert stamped.recv(1) == b"."
    return stamped.take() is not None


def test_the_first_read_of_a_request_keeps_the_kernel_receive_time_until_taken() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    stamped = adopt(conn)
    stamped.setblocking(True)
    try:
        # Linux turns receive stamps on a moment after the first socket on the machine asks (the
        # switch is deferred work), so packets right after it may have none (the simulator then
        # keeps its handler's time). Wait until a probe byte comes stamped.
        wait_for(lambda: _stamped_probe(client, stamped), timeout=5, what="the kernel to stamp received packets")
        before = time.monotonic()
        client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        time.sleep(0.05)  # the bytes wait in the kernel: the stamp is when they came, not when read
        assert stamped.recv(8) == b"POST /v1"
        first = stamped.first_bytes
        assert first is not None and before <= first <= before + 0.02
        buffer = bytearray(64)
        n = stamped.recv_into(buffer)  # the rest of the same request: the first stamp stands
        assert buffer[:n].startswith(b"/chat") and stamped.first_bytes == first
        assert stamped.take() == first and stamped.first_bytes is None
        client.sendall(b"next")  # the next request's first bytes
        assert stamped.recv(16) == b"next"
        second = stamped.first_bytes
        assert second is not None and second > first + 0.04
    finally:
        for s in (client, stamped, listener):
            s.close()
