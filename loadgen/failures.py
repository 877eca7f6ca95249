"""What went wrong with an attempt, as an error class: its status code or what the socket or the
parser raised; and how long the server asked to wait (``Retry-After``)."""

from __future__ import annotations

import email.utils
import errno
import socket
import time

import gevent
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from loadgen.records import ErrorClass

CONNECT_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def parse_retry_after(value: str | list[str] | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent or unreadable.

    A header sent more than once comes as a list: its first value counts."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(status: int) -> ErrorClass | None:
    if status == 429:
        return ErrorClass.HTTP_429
    if 400 <= status < 500:
        return ErrorClass.HTTP_4XX
    if status >= 500:
        return ErrorClass.HTTP_5XX
    if status < 200 or status >= 300:  # a redirect or interim status: the base URL is likely wrong
        return ErrorClass.HTTP_4XX
    return None


def exception_error(exc: BaseException, got_response: bool) -> ErrorClass:
    """Map what the socket or parser raised onto an error class."""
    if isinstance(exc, (TimeoutError, socket.timeout, gevent.Timeout)):
        return ErrorClass.TIMEOUT
    if isinstance(exc, HTTPConnectionClosed):
        return ErrorClass.RESET
    if isinstance(exc, HTTPParseError):
        return ErrorClass.RESET if got_response else ErrorClass.MALFORMED
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return ErrorClass.CONNECT
    if isinstance(exc, OSError) and exc.errno in CONNECT_ERRNOS and not got_response:
        return ErrorClass.CONNECT
    return ErrorClass.RESET
