"""Is this gateway's clock synchronised? It stamps every reading, so every batch says.

Linux answers through ``adjtimex`` (read-only: no privilege needed): the kernel knows whether
NTP (chrony, systemd-timesyncd, ntpd) keeps the clock in step, and its bound on the error.
Elsewhere, or if the call fails, the state is "unknown".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

from meterline.contracts import ClockSync

log = logging.getLogger("meterline.gateway")

TIME_ERROR = 5  # adjtimex's answer when the clock is not synchronised
STA_UNSYNC = 0x0040


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time", _Timeval), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


def clock_sync() -> ClockSync:
    """The kernel's view of this machine's clock, now."""
    if not sys.platform.startswith("linux"):
        return ClockSync(state="unknown", source="not Linux")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = _Timex()  # modes 0: read only
        answer = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError) as exc:
        return ClockSync(state="unknown", source=f"adjtimex unavailable: {exc}")
    if answer < 0:
        return ClockSync(state="unknown", source=f"adjtimex failed: errno {ctypes.get_errno()}")
    synced = answer != TIME_ERROR and not timex.status & STA_UNSYNC
    return ClockSync(state="synced" if synced else "unsynced",
                     max_error_ms=timex.maxerror / 1000.0, source="kernel (adjtimex)")
