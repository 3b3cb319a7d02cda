"""Path parameters, checked against the same patterns as the message contracts (a bad id is a
422, an unknown well-formed id a 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from meterline.contracts import AccountId, MeterId

# free text that reaches the database: no control characters (PostgreSQL refuses NUL)
PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"

AccountPath = Annotated[AccountId, Path(description="Personal account id.", examples=["A-1001"])]
MeterPath = Annotated[MeterId, Path(description="Meter serial number.", examples=["10000001"])]
