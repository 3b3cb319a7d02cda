"""The back office over HTTP: bill runs asked for and watched by operators, payment
documents downloaded by the account's subscriber and by operators."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import psycopg

from billing.accounts.groups import save_group
from billing.billrun.run import bill
from meterline.bill_runs import Selection
from meterline.documents.qr import parse
from meterline.units import Service
from meterline.users import Role
from tests.api.conftest import Bearer
from tests.billing.test_documents import decoded_qr, pdf_text
from tests.factories import housing, person


async def test_an_operator_asks_for_a_bill_run_and_watches_it(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    operator = await person(conn, Role.OPERATOR)
    asked = await client.post("/billruns", json={"period": "2026-02", "region": house.region},
                              headers=bearer(operator))
    assert asked.status_code == 202, asked.text
    run = asked.json()
    assert (run["status"], run["period"], run["selection"], run["started_by"]) == (
        "queued", "2026-02", {"region": house.region}, f"api:{operator.username}")

    # what the scheduler does with a queued run
    await bill(conn, date(2026, 2, 1), Selection(region=house.region), "scheduler",
               queued=run["id"])
    watched = (await client.get(f"/billruns/{run['id']}", headers=bearer(operator))).json()
    assert (watched["status"], watched["accounts"], watched["billed"], watched["progress"]) == (
        "done", 1, 1, 1.0)
    listed = (await client.get("/billruns", params={"period": "2026-02"})).json()
    assert run["id"] in [r["id"] for r in listed]


async def test_a_bill_run_of_a_saved_group_and_of_an_unknown_one(
    client: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE,), metered=())
    operator = await person(conn, Role.OPERATOR)
    name = f"g-{house.region}"
    await save_group(conn, name, house.accounts, "test")
    asked = await client.post("/billruns", json={"period": "2026-02", "group": name},
                              headers=bearer(operator))
    assert asked.status_code == 202, asked.text
    assert asked.json()["selection"] == {"group": name}
    unknown = await client.post("/billruns", json={"period": "2026-02", "group": "nope"},
                                headers=bearer(operator))
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no saved group 'nope'"


async def test_bill_runs_are_for_operators(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
) -> None:
    subscriber = await person(conn, Role.SUBSCRIBER)
    body = {"period": "2026-02"}
    assert (await anonymous.post("/billruns", json=body)).status_code == 401
    refused = await anonymous.post("/billruns", json=body, headers=bearer(subscriber))
    assert refused.status_code == 403
    assert (await anonymous.post("/billruns", json={"period": "2026-13"},
                                 headers=bearer(await person(conn, Role.OPERATOR)))
            ).status_code == 422


async def test_the_subscriber_and_operators_download_the_document_others_do_not(
    anonymous: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any], bearer: Bearer,
    tmp_path: Any,
) -> None:
    house = await housing(conn, [("50", 2)], services=(Service.MAINTENANCE, Service.WASTE),
                          metered=())
    (flat,) = house.accounts
    await bill(conn, date(2026, 1, 1), Selection(region=house.region), "test")
    own = await person(conn, Role.SUBSCRIBER, accounts=[flat])
    url = f"/accounts/{flat}/documents/2026-01"

    answer = await anonymous.get(url, headers=bearer(own))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="{flat}-2026-01.pdf"')
    assert "ЕДИНЫЙ ПЛАТЁЖНЫЙ ДОКУМЕНТ" in pdf_text(answer.content)
    fields = parse(decoded_qr(answer.content, tmp_path))
    assert fields["PersAcc"] == flat and fields["Sum"] == "204080"  # 1710.00 + 330.80

    operator = await person(conn, Role.OPERATOR)
    assert (await anonymous.get(url, headers=bearer(operator))).status_code == 200
    stranger = await person(conn, Role.SUBSCRIBER)
    assert (await anonymous.get(url, headers=bearer(stranger))).status_code == 404
    not_billed = await anonymous.get(f"/accounts/{flat}/documents/2026-05",
                                     headers=bearer(own))
    assert not_billed.status_code == 404
    assert not_billed.json()["detail"] == f"account {flat} has no bill for 2026-05"
    assert (await anonymous.get(f"/accounts/{flat}/documents/2026-5",
                                headers=bearer(own))).status_code == 422
