"""The kernel's receive time of a socket's bytes (Linux ``SO_TIMESTAMPNS``), on the monotonic clock.

A busy event loop reads bytes late; the kernel stamped them when they arrived. The client asks
for stamps on each connection (:func:`kernel_stamps`), reads with ``recvmsg`` and ``ANCILLARY``
room for the stamp, and turns it into monotonic time (:func:`arrival_time`).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; the socket module does not name it): the kernel
# stamps each received packet, recvmsg hands the stamp of the last one read (CLOCK_REALTIME).
SO_TIMESTAMPNS = 35
ANCILLARY = socket.CMSG_SPACE(16)
TIMESPEC = struct.Struct("qq")


def arrival_time(ancillary: list[Any] | None) -> float | None:
    """The monotonic time of a recvmsg's kernel stamp (CLOCK_REALTIME), None without one."""
    if not ancillary:
        return None
    sec, nsec = TIMESPEC.unpack(ancillary[0][2][:16])
    return float(sec + nsec * 1e-9 - (time.time() - time.monotonic()))


def kernel_stamps(sock: Any) -> bool:
    """Ask the kernel to stamp what this socket receives; False where it cannot."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except (OSError, AttributeError):
        return False
    return hasattr(sock, "recvmsg")
