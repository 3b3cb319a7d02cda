"""What the disconnection policy tells a household at zero reaches it as notices: the
low-balance warning and the notice with the day of the restriction (20 days on)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from billing.penalties.rules import load_rules
from billing.reminders.debtors import DebtorRule
from billing.reminders.run import run_reminders
from meterline.relay import decide_relays
from tests.billing.reminders.conftest import Rig
from tests.conftest import unique
from tests.factories import customer, notice_preferences, set_balance


async def test_a_household_at_zero_hears_of_it_and_of_the_day_of_restriction(
    rig: Rig, conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn, "150", contract_type="household")
    mail = f"{unique('home')}@example.org"
    await notice_preferences(conn, c.account_id, channels=["email"], email=mail)
    await set_balance(conn, c.account_id, c.provider_id, "0")
    tuesday = datetime(2026, 11, 24, 11, tzinfo=ZoneInfo("Europe/Moscow"))
    async with conn.transaction():
        assert await decide_relays(conn, [c.account_id], now=tuesday) == []

    day = datetime(2026, 11, 24, 10, tzinfo=UTC)  # 13:00 in Moscow: not quiet hours
    done = await run_reminders(conn, day, load_rules(), DebtorRule(provider=unique("nobody")))
    assert done.events >= 2
    cur = await conn.execute("SELECT kind FROM notices WHERE account_id = %s ORDER BY kind",
                             (c.account_id,))
    assert [k for (k,) in await cur.fetchall()] == ["disconnection_ahead", "low_balance"]
    await rig.notifier.deliver(conn, day)
    texts = [m.get_body().get_content() for m in rig.mailbox.messages  # type: ignore[union-attr]
             if m["To"] == mail]
    assert any("14.12.2026" in text for text in texts), texts
