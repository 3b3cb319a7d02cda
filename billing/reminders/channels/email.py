"""Notices by e-mail over SMTP. The recipient's server accepting the message is proof that it
was sent; the subscriber following the link in it is proof that it was read."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from billing.reminders.channels import Channel, ChannelFailed, Sent
from meterline.settings import Settings


async def send_email(settings: Settings, *, to: str, subject: str, text: str, ref: str) -> Sent:
    """Hand the message to the SMTP server; ``ref`` names it in its Message-ID."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = settings.mail_from.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=ref, domain=domain)
    message.set_content(text)
    try:
        _, response = await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port,
            username=settings.smtp_username, password=settings.smtp_password,
            start_tls=settings.smtp_starttls, timeout=30,
        )
    except aiosmtplib.SMTPException as exc:
        raise ChannelFailed(f"SMTP: {exc}") from exc
    return Sent(Channel.EMAIL, message["Message-ID"], response)
