"""How an account hears from its providers, and the notices it got.

- ``GET`` / ``PUT /accounts/{id}/notice-preferences``: addresses, the channels in order of
  preference (a channel left out has no consent) and other channels per kind of notice; the
  answer's ``ETag`` sent back as ``If-Match`` makes a change against an old version a 412.
- ``GET /accounts/{id}/notices``: the notices shown in the personal cabinet, newest first.
- ``POST /accounts/{id}/notices/{notice_id}/opened``: the subscriber opened one in the app:
  proof of delivery (DOMAIN.md §7), recorded only for the account's own subscriber.

The rules are the kernel's (`meterline.notices`); the notifier reads the same preferences.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth.access import ReadableAccount, account_with
from api.auth.callers import AnyCaller
from api.auth.tokens import Caller
from api.problems import ProblemError, problem_responses
from api.state import Pool
from meterline.contracts import Timestamp
from meterline.notices import (
    CabinetNotice,
    NoticeChannel,
    NoticeKind,
    Preferences,
    StalePreferences,
    cabinet_notices,
    opened_in_cabinet,
    preferences,
    set_preferences,
)
from meterline.users import Scope

router = APIRouter(tags=["notices"])

PreferencesAccount = Annotated[str, Depends(account_with(Scope.PREFERENCES))]

Channels = Annotated[list[NoticeChannel], Field(
    min_length=1, max_length=len(NoticeChannel), json_schema_extra={"uniqueItems": True},
    description="In order of preference; a channel left out has no consent. The cabinet "
    "needs no address: the cabinet alone means no messages.",
    examples=[["sms", "email", "cabinet"]])]


class NoticePreferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$",
                              examples=["ivan@example.org"])
    phone: str | None = Field(None, pattern=r"^\+[0-9]{7,15}$", examples=["+79161234567"],
                              description="For SMS and calls, in international format.")
    channels: Channels
    by_kind: dict[NoticeKind, Channels] = Field(
        default_factory=dict, description="Other channels for some kinds of notice.",
        examples=[{"low_balance": ["sms", "cabinet"]}])

    def wanted(self) -> Preferences:
        return Preferences(self.email, self.phone, tuple(self.channels),
                           {k: tuple(v) for k, v in self.by_kind.items()})

    @classmethod
    def of(cls, stored: Preferences) -> NoticePreferences:
        return cls(email=stored.email, phone=stored.phone, channels=list(stored.channels),
                   by_kind={k: list(v) for k, v in stored.by_kind.items()})


def _etag(stored: Preferences) -> str:
    return f'"{stored.version}"'


@router.get("/accounts/{account_id}/notice-preferences", response_model=NoticePreferences,
            summary="How the account hears from its providers",
            responses=problem_responses(401, 403, 404, 422))
async def get_preferences(account_id: ReadableAccount, pool: Pool,
                          response: Response) -> NoticePreferences:
    """Without preferences of its own an account hears in its personal cabinet only. The
    `ETag` header is this version: send it as `If-Match` with a change."""
    async with pool.connection() as conn:
        stored = await preferences(conn, account_id)
    response.headers["ETag"] = _etag(stored)
    return NoticePreferences.of(stored)


@router.put("/accounts/{account_id}/notice-preferences", response_model=NoticePreferences,
            summary="Choose how the account hears from its providers",
            responses=problem_responses(401, 403, 404, 412, 422))
async def put_preferences(
    account_id: PreferencesAccount, body: NoticePreferences, caller: AnyCaller, pool: Pool,
    response: Response,
    if_match: Annotated[str | None, Header(
        max_length=100, description="The `ETag` of the preferences read: 412 when they "
        "changed since.")] = None,
) -> NoticePreferences:
    """Replaces the preferences; every change is kept with who made it and when (consents).
    Needs the scope `preferences:write`.

    - **412**: `If-Match` names an older version.
    - **422**: e-mail chosen without an address, SMS or calls without a phone number.
    """
    version = if_match.strip().removeprefix("W/").strip('"') if if_match else None
    try:
        async with pool.connection() as conn, conn.transaction():
            stored = await set_preferences(conn, account_id, body.wanted(),
                                           user_id=caller.user_id, username=caller.username,
                                           if_version=version)
    except StalePreferences as exc:
        raise ProblemError(412, exc.detail, slug=exc.code,
                           title="Precondition failed") from exc
    response.headers["ETag"] = _etag(stored)
    return NoticePreferences.of(stored)


class Notice(BaseModel):
    id: UUID
    kind: str = Field(examples=["debt_notice"])
    provider_id: str
    service: str | None
    subject: str
    text: str
    created_at: Timestamp
    opened_at: Timestamp | None = Field(description="When the subscriber opened it in the "
                                        "cabinet or the app; null until then.")


def _notice(n: CabinetNotice) -> Notice:
    return Notice(id=n.id, kind=n.kind, provider_id=n.provider_id, service=n.service,
                  subject=n.subject, text=n.text, created_at=n.created_at,
                  opened_at=n.opened_at)


@router.get("/accounts/{account_id}/notices", response_model=list[Notice],
            summary="Notices in the personal cabinet",
            responses=problem_responses(401, 403, 404, 422))
async def list_notices(account_id: ReadableAccount, pool: Pool) -> list[Notice]:
    async with pool.connection() as conn:
        return [_notice(n) for n in await cabinet_notices(conn, account_id)]


class Opened(BaseModel):
    notice_id: UUID
    delivered_now: bool = Field(description="This opening delivered the notice (the first "
                                "proof of delivery it had).")


def opens_for_the_subscriber(caller: Caller) -> bool:
    """Only the account's own subscriber, logged in, proves that a notice reached them: an
    operator's look, or a machine's key, proves nothing."""
    return caller.via == "token" and not caller.sees_every_account


@router.post("/accounts/{account_id}/notices/{notice_id}/opened", response_model=Opened,
             summary="The subscriber opened a notice", responses=problem_responses(
                 401, 403, 404, 422))
async def post_opened(account_id: ReadableAccount, notice_id: UUID, caller: AnyCaller,
                      pool: Pool) -> Opened:
    """Called by the app when the subscriber opens a notice: proof that it reached them
    (the statutory periods of a debt notice run from its delivery). 403 for an operator or
    an API key."""
    if not opens_for_the_subscriber(caller):
        raise ProblemError(403, "Only the account's subscriber can open its notices.",
                           slug="forbidden", title="Forbidden")
    async with pool.connection() as conn, conn.transaction():
        done = await opened_in_cabinet(conn, account_id, notice_id, datetime.now(UTC))
    return Opened(notice_id=done.notice_id, delivered_now=done.delivered_now)
