"""Each channel against a local server speaking its real protocol: SMTP (aiosmtpd), an HTTP
SMS gateway (Kannel's interface, with delivery reports), the autodialer's call list and result;
and the notice texts per provider and channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from billing.reminders.channels import Channel, ChannelFailed
from billing.reminders.channels.email import send_email
from billing.reminders.channels.phone import Call, CallResult, call_list
from billing.reminders.channels.sms import ReportType, report, send_sms
from billing.reminders.templates import Templates, rub
from meterline.settings import Settings
from tests.billing.reminders.servers import Mailbox, SmsGateway, http_server, smtp_server

NOTICE = {
    "account_id": "LS-10000001", "holder_name": "Иван Петров", "address": "Москва, ул. Ленина, 1",
    "provider_name": "Энергосбыт", "service": "electricity", "debt": Decimal("4321.5"),
    "read_url": "http://127.0.0.1:8025/n/tok",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    return make_settings


async def test_email_is_accepted_by_the_smtp_server_with_its_subject_and_link(
    settings: Callable[..., Settings],
) -> None:
    mailbox = Mailbox(refused={"gone@example.org"})
    text = Templates().render("debt_notice", Channel.EMAIL, "sbyt", NOTICE)
    with smtp_server(mailbox) as port:
        s = settings(smtp_port=port, mail_from="billing@sbyt.example")
        sent = await send_email(s, to="ivan@example.org", subject=text.subject, text=text.text,
                                ref="notice-1.email")
        with pytest.raises(ChannelFailed, match="mailbox unavailable"):
            await send_email(s, to="gone@example.org", subject="x", text="y", ref="n2")
    (message,) = mailbox.messages
    assert message["To"] == "ivan@example.org"
    assert message["Message-ID"].strip() == sent.external_id  # folded: it is long
    assert "notice-1.email" in sent.external_id and "queued as 7F3A1" in sent.detail
    assert message["Subject"] == "Уведомление о задолженности за электроснабжение"
    body = message.get_content()
    assert "http://127.0.0.1:8025/n/tok" in body and "4 321,50 ₽" in body


async def test_sms_goes_through_the_gateway_and_its_delivery_report_comes_back(
    settings: Callable[..., Settings],
) -> None:
    gateway = SmsGateway(unreachable={"+79990000000"})
    reports: list[dict[str, str]] = []
    both = asyncio.Event()

    async def receive(request: Request) -> Response:  # the notifier's callback, as Kannel calls it
        reports.append(dict(request.query_params))
        if len(reports) == 2:
            both.set()
        return PlainTextResponse("ok")

    async with http_server([Route("/cgi-bin/sendsms", gateway.sendsms),
                            Route("/sms/report", receive)]) as url:
        s = settings(sms_gateway_url=f"{url}/cgi-bin/sendsms", sms_password="secret",
                     notifier_public_url=url)
        text = Templates().render("debt_notice", Channel.SMS, "sbyt", NOTICE).text
        async with httpx.AsyncClient() as client:
            await send_sms(s, client, to="+79161234567", text=text, token="tok-1")
            await send_sms(s, client, to="+79990000000", text=text, token="tok-2")
            with pytest.raises(ChannelFailed, match="403 Authorization failed"):
                await send_sms(settings(sms_gateway_url=f"{url}/cgi-bin/sendsms",
                                        sms_password="wrong"), client, to="+7", text="x",
                               token="tok-3")
        await asyncio.wait_for(both.wait(), 30)
    first = gateway.sent[0]
    assert first["text"] == text and first["coding"] == "2" and first["dlr-mask"] == "19"
    assert len(text) <= 210  # three UCS-2 parts at most
    by_token = {r["token"]: report(int(r["type"]), r["answer"]) for r in reports}
    assert by_token["tok-1"].delivered and "stat:DELIVRD" in by_token["tok-1"].answer
    assert by_token["tok-2"].failed and by_token["tok-2"].type is ReportType.UNDELIVERED


def test_the_call_list_and_a_call_result_prove_delivery_only_when_played_to_the_end() -> None:
    text = Templates().render("debt_notice", Channel.PHONE, "sbyt", NOTICE).text
    csv_text = call_list([Call("c-1", "+79161234567", "LS-10000001", text)],
                         "http://127.0.0.1:8025/calls/result")
    header, row = csv_text.splitlines()
    assert header == "call_id;phone;account;text;callback_url"
    assert row.startswith("c-1;+79161234567;LS-10000001;") and row.endswith("/calls/result")
    answered: dict[str, Any] = {"call_id": "c-1", "status": "answered", "played_to_end": True}
    assert CallResult.model_validate(answered).delivered
    assert not CallResult.model_validate({**answered, "played_to_end": False}).delivered
    assert not CallResult.model_validate({"call_id": "c-1", "status": "busy"}).delivered


def test_templates_per_provider_and_channel_fall_back_to_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "vodokanal").mkdir()
    (tmp_path / "vodokanal" / "debt_notice.sms.j2").write_text(
        "{% block text %}Водоканал: долг {{ debt|rub }}{% endblock %}", encoding="utf-8")
    templates = Templates(tmp_path)
    assert templates.render("debt_notice", Channel.SMS, "vodokanal", NOTICE).text == (
        "Водоканал: долг 4 321,50 ₽")
    email = templates.render("debt_notice", Channel.EMAIL, "vodokanal", NOTICE)
    assert email.subject == "Уведомление о задолженности за электроснабжение"
    assert "в течение 20 дней со дня\nполучения этого уведомления" in email.text
    restriction = templates.render("restriction_notice", Channel.CABINET, "sbyt",
                                   {**NOTICE, "restrict_on": date(2025, 4, 1)})
    assert "С 01.04.2025 предоставление услуги «электроснабжение»" in restriction.text
    assert rub(Decimal("-0.005")) == "-0,01 ₽"
