"""Signed webhooks: an HMAC-SHA256 over the time and the exact body, checked with a tolerance.

The sender puts ``t=<unix seconds>,v1=<hex hmac>`` in the signature header, the HMAC taken
with the shared secret over ``"<t>." + body``. The receiver recomputes it over the bytes it
got (never a re-serialised body), compares in constant time, and refuses a signature older or
newer than the tolerance, so a captured request cannot be replayed later; within the
tolerance, replays are stopped by the event id the receiver records.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from meterline.errors import Invalid

HEADER = "Meterline-Signature"


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The signature header value for ``body`` sent at ``at`` (default: now)."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str | None, tolerance: float,
           now: float | None = None) -> None:
    """Raise `Invalid` unless ``header`` signs ``body`` with ``secret`` within ``tolerance``
    seconds of ``now``."""
    if not header:
        raise Invalid(f"no {HEADER} header", field=["header", HEADER], code="bad-signature")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError) as exc:
        raise Invalid(f"malformed {HEADER} header", field=["header", HEADER],
                      code="bad-signature") from exc
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise Invalid("the signature does not match the body", field=["header", HEADER],
                      code="bad-signature")
    if abs((time.time() if now is None else now) - t) > tolerance:
        raise Invalid(f"the signature is more than {tolerance:g} s away from now (replayed?)",
                      field=["header", HEADER], code="stale-signature")
