"""When each request's first bytes reached the machine: the kernel's receive time, as the client
stamps its own reads.

A burst of clients sending in the same millisecond queues in the server's event loop and HTTP
parser before any handler runs; a handler's clock misses that wait (up to 15 ms at 64 streams on
two cores), and the client cannot see it either. So the simulator accepts connections itself and
hands asyncio a :class:`StampedSocket`: every read is a ``recvmsg`` with ``SO_TIMESTAMPNS``, and
the first read of each request keeps the kernel's stamp of the packet (``CLOCK_REALTIME``,
converted to ``time.monotonic()`` like every time in the trace). The handler takes it once it has
read the whole request body (:meth:`Stamps.take`), so the next request on the connection starts
afresh. Where the kernel gives no stamp, there is none and the handler's own time stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import weakref
from collections.abc import Callable
from typing import Any

# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; the socket module does not name it).
_SO_TIMESTAMPNS = 35
_ANCILLARY = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("qq")


def _monotonic_of(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack(data[: _TIMESPEC.size])
            stamp: float = sec + nsec * 1e-9 - (time.time() - time.monotonic())
            return stamp
    return None


class StampedSocket(socket.socket):
    """An accepted connection whose reads keep the kernel's receive time of the first one since
    the last :meth:`take`. asyncio's transport reads through :meth:`recv` / :meth:`recv_into`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_bytes: float | None = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY, flags)
        if data and self.first_bytes is None:
            self.first_bytes = _monotonic_of(ancillary)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer)
        if nbytes:
            view = view[:nbytes]
        n, ancillary, _, _ = self.recvmsg_into([view], _ANCILLARY, flags)
        if n and self.first_bytes is None:
            self.first_bytes = _monotonic_of(ancillary)
        return n

    def take(self) -> float | None:
        """The stamp of this request's first bytes; the next read starts the next request's."""
        stamp, self.first_bytes = self.first_bytes, None
        return stamp


def adopt(conn: socket.socket) -> StampedSocket:
    """``conn`` (just accepted) as a :class:`StampedSocket` asking the kernel for receive stamps."""
    stamped = StampedSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
    stamped.setblocking(False)
    with contextlib.suppress(OSError):  # no stamps: the handler's time stands
        stamped.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    with contextlib.suppress(OSError):
        stamped.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return stamped


class Stamps:
    """The stamped socket of each connection, found from a request's transport."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakKeyDictionary[asyncio.BaseTransport, StampedSocket] = weakref.WeakKeyDictionary()

    def take(self, transport: asyncio.BaseTransport | None) -> float | None:
        """The kernel's receive time of the request just read on ``transport`` (None: not known)."""
        stamped = self._sockets.get(transport) if transport is not None else None
        return stamped.take() if stamped is not None else None

    async def serve(self, listener: socket.socket, protocol: Callable[[], asyncio.Protocol]) -> None:
        """Accept on ``listener`` until cancelled, each connection served by ``protocol()``."""
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        while True:
            conn, _ = await loop.sock_accept(listener)
            stamped = adopt(conn)
            try:
                transport, _ = await loop.connect_accepted_socket(protocol, sock=stamped)
            except OSError:
                stamped.close()
                continue
            self._sockets[transport] = stamped
