"""Notification preferences and consents (meterline.notices): what may be chosen, the record
of every change, and what the notifier is told for each kind of notice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from meterline.errors import Invalid
from meterline.notices import (
    NoticeChannel,
    NoticeKind,
    Preferences,
    StalePreferences,
    preferences,
    reach,
    set_preferences,
)
from tests.factories import customer, notice_preferences, person

EMAIL, SMS, PHONE, CABINET = (NoticeChannel.EMAIL, NoticeChannel.SMS, NoticeChannel.PHONE,
                              NoticeChannel.CABINET)
TEMPLATES = Path(__file__).parents[2] / "billing" / "reminders" / "templates" / "default"


def test_every_kind_the_notifier_sends_can_be_chosen() -> None:
    sent = {p.name.removesuffix(".j2") for p in TEMPLATES.glob("*.j2")}
    assert sent == {k.value for k in NoticeKind}


async def test_an_account_that_chose_nothing_hears_in_its_cabinet(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn)
    assert await preferences(conn, c.account_id) == Preferences(None, None, (CABINET,), {})
    got = await reach(conn, [(c.account_id, "debt_notice")])
    assert got[c.account_id, "debt_notice"].channels == (CABINET,)


async def test_channels_per_kind_override_the_accounts_and_every_change_is_kept(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn)
    who = await person(conn, accounts=[c.account_id])
    first = Preferences("a@example.org", "+79160000001", (SMS, EMAIL), {})
    async with conn.transaction():
        stored = await set_preferences(conn, c.account_id, first, user_id=who.id,
                                       username=who.username)
    assert stored == first
    second = Preferences("a@example.org", "+79160000001", (EMAIL, CABINET),
                         {NoticeKind.LOW_BALANCE: (SMS, CABINET)})
    async with conn.transaction():
        await set_preferences(conn, c.account_id, second, user_id=who.id,
                              username=who.username, if_version=stored.version)
    got = await reach(conn, [(c.account_id, "low_balance"), (c.account_id, "debt_notice")])
    assert got[c.account_id, "low_balance"].channels == (SMS, CABINET)
    assert got[c.account_id, "debt_notice"].channels == (EMAIL, CABINET)
    assert got[c.account_id, "debt_notice"].phone == "+79160000001"

    cur = await conn.execute(
        "SELECT username, before->'channels', after->'channels', after->'by_kind' "
        "FROM notice_consents WHERE account_id = %s ORDER BY id", (c.account_id,))
    assert await cur.fetchall() == [
        (who.username, ["cabinet"], ["sms", "email"], {}),
        (who.username, ["sms", "email"], ["email", "cabinet"],
         {"low_balance": ["sms", "cabinet"]}),
    ]
    with pytest.raises(psycopg.errors.RaiseException):
        async with conn.transaction():
            await conn.execute("DELETE FROM notice_consents WHERE account_id = %s",
                               (c.account_id,))


async def test_a_change_made_against_an_old_version_is_refused(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    c = await customer(conn)
    seen = await preferences(conn, c.account_id)
    await notice_preferences(conn, c.account_id, channels=["cabinet", "email"],
                             email="other@example.org")  # someone else changed them since
    with pytest.raises(StalePreferences):
        async with conn.transaction():
            await set_preferences(conn, c.account_id, Preferences(None, None, (CABINET,), {}),
                                  user_id=None, username="t", if_version=seen.version)
    assert (await preferences(conn, c.account_id)).email == "other@example.org"


@pytest.mark.parametrize(("wanted", "code"), [
    (Preferences(None, "+79160000002", (EMAIL,), {}), "address-missing"),
    (Preferences("b@example.org", None, (CABINET,), {NoticeKind.DEBT_NOTICE: (SMS,)}),
     "address-missing"),
    (Preferences("b@example.org", None, (), {}), "channel-required"),
    (Preferences(None, None, (CABINET,), {NoticeKind.TAMPER: ()}), "channel-required"),
    (Preferences(None, None, (CABINET, CABINET), {}), "validation-error"),
])
async def test_choices_that_cannot_be_kept_are_refused_and_nothing_changes(
    conn: psycopg.AsyncConnection[Any], wanted: Preferences, code: str,
) -> None:
    c = await customer(conn)
    await notice_preferences(conn, c.account_id, channels=["email"], email="keep@example.org")
    before = await preferences(conn, c.account_id)
    with pytest.raises(Invalid) as refused:
        async with conn.transaction():
            await set_preferences(conn, c.account_id, wanted, user_id=None, username="t")
    assert refused.value.code == code
    assert await preferences(conn, c.account_id) == before
