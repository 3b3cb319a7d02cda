"""Notices by SMS through an HTTP SMS gateway speaking Kannel's interface: ``sendsms`` to
send, and a delivery report (DLR) the gateway requests from ``dlr-url`` when the operator
reports on the message. Only the handset's report (type 1) proves delivery."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import httpx

from billing.reminders.channels import Channel, ChannelFailed, Sent
from meterline.settings import Settings


class ReportType(IntEnum):
    """Kannel's delivery report types (``%d`` in the dlr-url)."""

    DELIVERED = 1  # delivered to the phone
    UNDELIVERED = 2  # the phone did not get it
    BUFFERED = 4  # queued on the operator's side
    SUBMITTED = 8  # accepted by the operator (SMSC)
    REJECTED = 16  # refused by the operator (SMSC)


# what we ask to hear about: delivered, undelivered, rejected by the operator
DLR_MASK = ReportType.DELIVERED | ReportType.UNDELIVERED | ReportType.REJECTED


@dataclass(frozen=True)
class DeliveryReport:
    type: ReportType
    answer: str  # the operator's own words (Kannel's %A)

    @property
    def delivered(self) -> bool:
        return self.type is ReportType.DELIVERED

    @property
    def failed(self) -> bool:
        return self.type in (ReportType.UNDELIVERED, ReportType.REJECTED)


def report(type_: int, answer: str = "") -> DeliveryReport:
    try:
        return DeliveryReport(ReportType(type_), answer)
    except ValueError as exc:
        raise ValueError(f"unknown delivery report type {type_}") from exc


def report_url(settings: Settings, token: str) -> str:
    """Where the gateway reports on this message; Kannel fills in %d (type) and %A (answer)."""
    return f"{settings.notifier_public_url}/sms/report?token={token}&type=%d&answer=%A"


async def send_sms(
    settings: Settings, client: httpx.AsyncClient, *, to: str, text: str, token: str
) -> Sent:
    params = {
        "username": settings.sms_username,
        "password": settings.sms_password or "",
        "from": settings.sms_sender,
        "to": to,
        "text": text,
        "charset": "UTF-8",
        "coding": "2",  # UCS-2: Cyrillic
        "dlr-mask": str(int(DLR_MASK)),
        "dlr-url": report_url(settings, token),
    }
    try:
        answer = await client.get(settings.sms_gateway_url, params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise ChannelFailed(f"SMS gateway unreachable: {exc}") from exc
    body = answer.text.strip()
    # "0: Accepted for delivery" or "3: Queued for later delivery"; anything else is a refusal
    if answer.status_code not in (200, 202) or not body.startswith(("0:", "3:")):
        raise ChannelFailed(f"SMS gateway: {answer.status_code} {body}")
    return Sent(Channel.SMS, token, body)
