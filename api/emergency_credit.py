"""POST /accounts/{account_id}/emergency-credit: a prepaid subscriber whose balance has run
out takes the emergency credit of their contract, once while it is owed.

HTTP only: the request is the transaction; the business action is
``meterline.emergency_credit.take_emergency_credit`` (the journal entry and the relay
decisions, rolled back together on any error), whose refusals the problem handlers answer
(404, 409 ``emergency-credit-taken``, 422 ``emergency-credit-refused``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.amounts import Exact, Kopecks
from api.auth.access import account_with
from api.problems import problem_responses
from api.state import Pool
from meterline.contracts import ProviderId
from meterline.emergency_credit import take_emergency_credit
from meterline.users import Scope

router = APIRouter(prefix="/accounts", tags=["top-ups"])

# the subscriber's own account (or one an admin sees); another's answers 404
CreditedAccount = Annotated[str, Depends(account_with(Scope.PAYMENTS))]


class EmergencyCreditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderId | None = Field(
        None, description="Whose balance; may be left out when the account has one provider.")


class EmergencyCredit(BaseModel):
    account_id: str
    provider_id: str
    amount: Kopecks = Field(description="The credit given (the contract's amount).")
    balance: Exact = Field(description="Balance with the provider after the credit.")
    owed: Kopecks = Field(description="Owed in emergency credit, repaid from later top-ups.")
    reconnected: list[str] = Field(description="Meters a connect command was written for.")


@router.post(
    "/{account_id}/emergency-credit",
    status_code=201,
    response_model=EmergencyCredit,
    summary="Take emergency credit (once while it is owed)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_emergency_credit(
    account_id: CreditedAccount,
    pool: Pool,
    body: Annotated[EmergencyCreditRequest | None, Body()] = None,
) -> EmergencyCredit:
    """Credit the emergency amount of the account's contract to its balance with a provider,
    when that balance has run out (zero or less). Needs the scope `payments:create`
    (subscribers, on their own accounts).

    - **201**: credited; meters cut at the negative limit are reconnected if the balance is
      above it now (a `connect` command in the same transaction). A share of each later
      top-up (the contract's) repays the credit.
    - **409** `emergency-credit-taken`: taken before and not repaid yet.
    - **422** `emergency-credit-refused`: the balance has not run out, the account is
      postpaid, or its contract gives no emergency credit; or a `provider_id` is missing or
      unknown.
    - **404**: no such account (or not the caller's).
    """
    provider = body.provider_id if body is not None else None
    async with pool.connection() as conn, conn.transaction():
        done = await take_emergency_credit(conn, account_id, provider)
    return EmergencyCredit(
        account_id=done.account_id, provider_id=done.provider_id, amount=done.amount,
        balance=done.balance, owed=done.owed,
        reconnected=[meter for meter, action in done.relay_commands if action == "connect"])
