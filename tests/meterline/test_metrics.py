"""The metrics kernel: /metrics and /ready served over HTTP, parsed back as Prometheus does,
dead-letter reasons labelled by kind, and the demo's summary computed from two scrapes."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from meterline.demo import summary
from meterline.metrics import parse, reason_kind, scrape, serving


async def test_a_service_serves_its_metrics_and_says_when_it_is_ready() -> None:
    registry = CollectorRegistry()
    readings = Counter("meterline_test_readings", "Readings.", ["source"], registry=registry)
    readings.labels("gateway").inc(3)
    ready = False
    async with serving(registry, "127.0.0.1", 0, lambda: ready) as port, \
            aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}"
        assert (await http.get(f"{url}/ready")).status == 503
        ready = True
        assert (await http.get(f"{url}/ready")).status == 200
        values = await scrape(http, url)
    assert values['meterline_test_readings_total{source="gateway"}'] == 3


def test_dead_letter_reasons_are_labelled_by_kind() -> None:
    examples = {
        "malformed readings batch: samples: Field required": "malformed batch",
        "batch names gateway 'a' but came on 'b''s topic": "wrong gateway",
        "invalid sample in batch gw/3: value: Input should be greater": "invalid sample",
        "sample in batch gw/3 is from the future: 2030-01-01T00:00:00": "from the future",
        "unknown meter 42 in batch gw/3": "unknown meter",
        "meter 42 is not registered": "unknown meter",
        "meter 42 has no register active_export in batch gw/3": "unknown register",
        "meter 42 register active_import is in kWh, sample says m3 in batch gw/3": "wrong unit",
        "meter 42 belongs to account A-1 (provider p), not to A-2 (p)": "wrong account",
        "malformed command ack: invalid": "malformed ack",
        "invalid readings record: 1 validation error": "invalid record",
        "no electricity tariff of provider p in kWh at 2026-01-01": "no tariff",
        "register went backwards: 1 kWh < 2 kWh accepted before": "register went backwards",
        "something nobody foresaw": "other",
    }
    assert {reason: reason_kind(reason) for reason in examples} == examples


def test_the_demo_summary_reads_rates_from_two_scrapes() -> None:
    before = {"bridge": parse("meterline_bridge_readings_in_total 100\n"),
              "rating": parse("meterline_rating_readings_total 90\n")}
    after = {
        "bridge": parse('meterline_bridge_readings_in_total 140\n'
                        'meterline_dead_letters_total{source="mqtt",reason="x"} 2\n'),
        "rating": parse('meterline_rating_readings_total 130\n'
                        'meterline_rating_consumer_lag{partition="0"} 3\n'
                        'meterline_rating_consumer_lag{partition="1"} 4\n'),
        "gateway": {},  # a service that did not answer
    }
    line = summary(before, after, 2.0, (20, Decimal("1234.5"), Decimal("-1.5"), 3, 1, 5))
    assert line.startswith("readings/s in    20.0, priced    20.0 | lag 7 | outbox 0 |")
    assert ("balances 1,234.50 RUB (lowest -1.50) | disconnected meters 3 (cuts waiting 1) "
            "| dead letters 2") in line
    assert line.endswith("| notices 5")


def test_the_demo_summary_counts_a_restarted_service_from_zero() -> None:
    before = {"rating": parse("meterline_rating_readings_total 5000\n")}
    after = {"rating": parse("meterline_rating_readings_total 60\n")}  # started again
    line = summary(before, after, 2.0, (20, Decimal("0"), Decimal("0"), 0, 0, 0))
    assert "priced    30.0 |" in line
