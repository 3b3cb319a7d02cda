"""Notices by phone: a list of calls for an autodialer, and the result it reports back for
each call. A call counts as delivery when it was answered and the message played to the end."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CALL_LIST_COLUMNS = ["call_id", "phone", "account", "text", "callback_url"]


@dataclass(frozen=True)
class Call:
    call_id: str  # our token: the autodialer reports the result with it
    phone: str
    account_id: str
    text: str  # read out by the autodialer's speech synthesis


def call_list(calls: Iterable[Call], callback_url: str) -> str:
    """The calls to make, as the CSV autodialers import (UTF-8, ``;``-separated)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CALL_LIST_COLUMNS)
    for c in calls:
        writer.writerow([c.call_id, c.phone, c.account_id, c.text, callback_url])
    return out.getvalue()


class CallResult(BaseModel):
    """What the autodialer reports when a call ends (POST to the callback URL, JSON)."""

    model_config = ConfigDict(extra="ignore")

    call_id: str = Field(min_length=1, max_length=200)
    status: Literal["answered", "busy", "no_answer", "failed"]
    played_to_end: bool = False
    duration: float | None = Field(None, ge=0, description="Seconds the call lasted.")
    recording_url: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status == "answered" and self.played_to_end
