"""geventhttpclient's connection pool, made not to yield before a request is sent: a liveness
check that is one syscall, and the target's addresses looked up once."""

from __future__ import annotations

from typing import Any

import gevent.lock
import gevent.monkey
from geventhttpclient.connectionpool import ConnectionPool

_original_poll = gevent.monkey.get_original("select", "poll")
_POLLIN = 1  # select.POLLIN


class _NoYieldLiveness(ConnectionPool):
    """geventhttpclient checks a pooled connection with gevent's ``select(..., 0)``, which yields
    to the hub: under load the request then leaves seconds-of-ms after its ``sent`` stamp. The
    same check with the unpatched ``poll`` costs one syscall and never switches greenlets."""

    _addresses: Any = None  # the target's addresses, resolved once
    _resolving: Any = None  # held while they are looked up

    def _resolve(self) -> Any:
        """The target's addresses, looked up for the first connection only: each new connection
        would otherwise ask gevent's resolver again, which runs ``getaddrinfo`` in a thread and
        hands the answer back through the hub, milliseconds under load, all before ``sent``.
        One lookup at a time: a thousand users opening their first connections together wait for
        one answer rather than queueing a thousand lookups on the resolver's few threads."""
        if self._addresses is None:
            if self._resolving is None:
                self._resolving = gevent.lock.Semaphore()
            with self._resolving:
                if self._addresses is None:
                    self._addresses = super()._resolve()
        return self._addresses

    def _is_socket_alive(self, sock: Any) -> bool:
        if sock is None:
            return False
        try:
            if sock.fileno() < 0:
                return False
            # poll, not select: select() cannot watch a descriptor numbered 1024 or more, and with
            # a thousand connections open every check failed, so every request reconnected
            poller = _original_poll()
            poller.register(sock.fileno(), _POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False


def without_yielding_check(pool: ConnectionPool) -> ConnectionPool:
    """Give ``pool`` the liveness check (and the resolver cache) of :class:`_NoYieldLiveness`."""
    base = type(pool)
    pool.__class__ = type(f"NoYield{base.__name__}", (_NoYieldLiveness, base), {})
    return pool
