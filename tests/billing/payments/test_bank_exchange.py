"""The settlement's transfers as a 1CClientBankExchange file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.payments.bank_exchange import Party, Transfer, client_bank_exchange, read_documents
from meterline.errors import Invalid

AGENT = Party('ООО "Расчётный центр"', "7701000001", "40702810000000000001", "ПАО СБЕРБАНК",
              "044525225", "30101810400000000225", kpp="770101001", bank_city="г. Москва")
SBYT = Party('АО "Энергосбыт"', "7701234567", "40702810900000000002", "БАНК ВТБ (ПАО)",
             "044525187", "30101810700000000187", kpp="770102002")


def transfer(amount: str = "1492.50", number: int = 1) -> Transfer:
    return Transfer(number, date(2024, 12, 2), Decimal(amount), AGENT, SBYT,
                    "Платежи населения за 11.2024 по агентскому договору № 7, "
                    "за вычетом вознаграждения 7,50 руб. НДС не облагается")


def test_a_file_of_payment_orders_in_windows_1251() -> None:
    data = client_bank_exchange(
        [transfer(), transfer("10.00", 2)], created=datetime(2024, 12, 2, 10, 15, 32, tzinfo=UTC),
        first_day=date(2024, 11, 1), last_day=date(2024, 11, 30))
    text = data.decode("cp1251")
    assert text.startswith("1CClientBankExchange\r\nВерсияФормата=1.03\r\nКодировка=Windows\r\n")
    assert "ДатаНачала=01.11.2024\r\nДатаКонца=30.11.2024\r\nРасчСчет=40702810000000000001" in text
    assert text.endswith("КонецДокумента\r\nКонецФайла\r\n")
    first, second = read_documents(data)
    assert first["СекцияДокумент"] == "Платежное поручение"
    assert (first["Номер"], first["Дата"], first["Сумма"]) == ("1", "02.12.2024", "1492.50")
    assert first["ПолучательИНН"] == "7701234567" and first["ПолучательБИК"] == "044525187"
    assert first["Получатель"] == 'ИНН 7701234567 АО "Энергосбыт"'
    assert first["ПлательщикРасчСчет"] == "40702810000000000001"
    assert first["НазначениеПлатежа"].startswith("Платежи населения за 11.2024")
    assert second["Сумма"] == "10.00"


def test_bad_orders_are_refused() -> None:
    def export(transfers: list[Transfer]) -> bytes:
        return client_bank_exchange(transfers, created=datetime(2024, 12, 2, tzinfo=UTC),
                                    first_day=date(2024, 11, 1), last_day=date(2024, 11, 30))

    with pytest.raises(Invalid, match="whole kopecks"):
        export([transfer("1.005")])
    with pytest.raises(Invalid, match="BIC '04452518' is not valid"):
        bad = Transfer(1, date(2024, 12, 2), Decimal(1), AGENT,
                       Party("X", "7701234567", "4" * 20, "B", "04452518", "3" * 20), "p")
        export([bad])
    with pytest.raises(Invalid, match="no transfer"):
        export([])
