"""POST /accounts/{account_id}/topups: credit an account's balance with a provider, exactly
once per Idempotency-Key.

HTTP only: the body is parsed exactly (never through float) and the request is the
transaction; the business action is ``meterline.topups.top_up`` (the journal entry, the
top-up record and the relay decisions, rolled back together on any error), whose domain
errors the problem handlers answer (404, 409 ``idempotency-key-reused``, 422).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, NoReturn, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from api.amounts import Exact, Kopecks
from api.auth.access import TopupAccount
from api.problems import problem_responses
from api.state import AppSettings, Pool
from meterline.contracts import ProviderId, Timestamp
from meterline.money import has_at_most_kopecks
from meterline.topups import Topup as TopupResult
from meterline.topups import top_up

router = APIRouter(prefix="/accounts", tags=["top-ups"])

T = TypeVar("T", bound=BaseModel)


class TopupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(
        gt=0,
        allow_inf_nan=False,
        description="Roubles: a decimal string (preferred) or a JSON number, greater than 0, "
        "whole kopecks (at most 2 decimal places), at most the configured maximum top-up.",
        examples=["100.50"],
    )
    provider_id: ProviderId | None = Field(
        None,
        description="Provider whose balance to credit; may be left out when the account "
        "buys from one provider only.",
    )

    @field_validator("amount")
    @classmethod
    def _whole_kopecks_within_limit(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if not has_at_most_kopecks(value):
            raise PydanticCustomError(
                "decimal_max_places", "amount must have at most 2 decimal places (kopecks)"
            )
        limit = (info.context or {}).get("max_topup")
        if limit is not None and value > limit:
            raise PydanticCustomError(
                "less_than_equal", "amount must be at most {limit}", {"limit": str(limit)}
            )
        return value


class Topup(BaseModel):
    id: UUID
    account_id: str
    provider_id: str
    amount: Kopecks
    idempotency_key: str
    received_at: Timestamp
    balance: Exact = Field(
        description="Balance with the provider after this request (for a replay: now)."
    )
    balance_kopecks: Kopecks


def amount_schema(max_topup: Decimal) -> dict[str, Any]:
    """The JSON schema of a top-up amount, stating every limit the API enforces: greater than
    0, whole kopecks, at most ``max_topup``. A decimal string is held to fewer integer digits
    than the maximum has, so every string the schema admits is accepted."""
    digits = len(str(int(max_topup)))
    return {
        "anyOf": [
            {"type": "string",
             "pattern": rf"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{{0,{digits - 2}}}"
                        r"(\.[0-9]{1,2})?)$",
             "examples": ["100.50"]},
            {"type": "number", "exclusiveMinimum": 0, "maximum": float(max_topup),
             "multipleOf": 0.01},
        ],
        "title": "Amount",
        "description": f"Roubles: a decimal string (preferred) or a JSON number, greater than 0, "
        f"whole kopecks (at most 2 decimal places), at most {max_topup}.",
    }


def state_limits(openapi: dict[str, Any], max_topup: Decimal) -> dict[str, Any]:
    """Put this app's top-up limit into its OpenAPI document."""
    for path in ("/accounts/{account_id}/topups", "/accounts/{account_id}/online-payments"):
        operation = openapi["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        body["properties"]["amount"] = amount_schema(max_topup)
    return openapi


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def exact_body(model: type[T]) -> Callable[..., Awaitable[T]]:
    """A dependency parsing the JSON body into ``model`` with JSON numbers as exact decimals
    (never through float), so ``100.005`` is refused for its third decimal instead of being
    rounded silently; the settings' maximum top-up reaches the validators as context."""

    async def parse(request: Request, settings: AppSettings) -> T:
        raw = await request.body()
        try:
            data = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
        except ValueError as exc:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {exc}"}]
            ) from exc
        try:
            return model.model_validate(data, context={"max_topup": settings.max_topup})
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc

    return parse


def _response(done: TopupResult) -> Topup:
    return Topup(id=done.id, account_id=done.account_id, provider_id=done.provider_id,
                 amount=done.amount, idempotency_key=done.idempotency_key,
                 received_at=done.received_at, balance=done.balance,
                 balance_kopecks=done.balance)


@router.post(
    "/{account_id}/topups",
    status_code=201,
    response_model=Topup,
    summary="Top up an account (idempotent)",
    responses={
        200: {
            "model": Topup,
            "description": "Replay: this key was already used for the "
            "same top-up; nothing was credited again.",
        },
        **problem_responses(401, 403, 404, 409, 422),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TopupRequest.model_json_schema()}},
        }
    },
)
async def create_topup(
    account_id: TopupAccount,
    idempotency_key: Annotated[
        str,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Client-chosen key, unique per top-up on this account.",
        ),
    ],
    body: Annotated[TopupRequest, Depends(exact_body(TopupRequest))],
    pool: Pool,
    response: Response,
) -> Topup:
    """Record money a payment agent received for the account: credit `amount` roubles to its
    balance with a provider. Needs the scope `topups:write` (payment agents' API keys and
    admins); subscribers top up through the payment provider instead.

    - **201**: credited; the top-up and the balance after it.
    - **200** (with `Idempotent-Replayed: true`): the same Idempotency-Key was already used on
      this account with the same amount and provider; the original top-up is returned and
      nothing is credited again. Keys are scoped to the account.
    - **409**: the key was already used with another amount or provider.
    - **401** / **403**: not authenticated / without the scope `topups:write`.
    - **404**: no such account (or not one the caller sees).
    - **422**: missing or bad Idempotency-Key; amount not a decimal, not > 0, with fractions
      of a kopeck, or above the maximum top-up; `provider_id` left out while the account buys
      from several providers; or a `provider_id` the account has no balance with (a 422, not
      a 404: the account exists, the request names something it cannot use).

    A prepaid meter whose balance with its provider becomes positive is reconnected: a
    `connect` relay command is written in the same transaction.
    """
    async with pool.connection() as conn, conn.transaction():
        done = await top_up(conn, account_id, idempotency_key, body.amount, body.provider_id)
    if done.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _response(done)
