"""The ways a notice reaches a subscriber, each with its own proof of delivery."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    CABINET = "cabinet"  # the personal cabinet: delivered when opened there
    EMAIL = "email"  # accepted by the recipient's server = sent; its link followed = read
    SMS = "sms"  # the gateway's delivery report
    PHONE = "phone"  # the call answered and played to the end


class ChannelFailed(Exception):
    """The channel refused the notice at once (bad address, server said no): try the next."""


@dataclass(frozen=True)
class Sent:
    """The channel took the notice; proof of delivery, if any, comes later."""

    channel: Channel
    external_id: str  # Message-ID, the gateway's id, the call id
    detail: str = ""
