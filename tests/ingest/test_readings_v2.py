"""The bridge takes version 2 batches too: reading flags and meter replacements go on to the
Kafka record of the account concerned; version 1 batches are taken as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ingest.directory import KnownMeter
from ingest.readings import check_replacements, check_samples, parse_envelope, route
from meterline.contracts import (
    BatchEnvelope,
    ClockSync,
    ClosingReading,
    Measurements,
    MeterReplacement,
    ReadingFlag,
    ReadingsBatchV2,
    SampleV2,
)
from meterline.units import Register, Unit

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATEST = T + timedelta(minutes=10)
METERS = {
    "E1": KnownMeter("E1", "LS-1", "energosbyt", "electricity", "gw", {"active_import": "kWh"}),
    "G1": KnownMeter("G1", "LS-2", "gorgaz", "gas", "gw", {"volume": "m3"}),
}


def batch(**parts: object) -> bytes:
    return ReadingsBatchV2.model_validate({
        "gateway": "gw", "seq": 7, "polled_at": T,
        "clock": ClockSync(state="synced", max_error_ms=3.0, source="kernel"),
        "samples": [], **parts,
    }).model_dump_json().encode()


def envelope_of(payload: bytes) -> BatchEnvelope:
    envelope = parse_envelope(payload, "gw")
    assert isinstance(envelope, BatchEnvelope)
    return envelope


def test_flags_go_on_to_kafka_with_the_reading() -> None:
    envelope = envelope_of(batch(
        samples=[SampleV2(meter="G1", register=Register.VOLUME, unit=Unit.M3,
                          value=Decimal("0.02"), ts=T, flags=(ReadingFlag.ROLLOVER,))],
        measurements=[Measurements(meter="E1", ts=T, values={"voltage": 229.8})],
    ))
    samples, dead = check_samples(envelope, LATEST)
    assert dead == [] and samples[0].flags == (ReadingFlag.ROLLOVER,)  # type: ignore[attr-defined]
    routed = route(envelope, samples, METERS)
    (record,) = routed.records
    assert (record.account, record.readings[0].flags) == ("LS-2", (ReadingFlag.ROLLOVER,))
    assert json.loads(record.model_dump_json())["readings"][0]["flags"] == ["rollover"]


def test_a_replacement_goes_to_the_account_of_the_meter_replaced() -> None:
    replacement = MeterReplacement(
        device="tcp-1-1", old_meter="E1", new_meter="E9", profile="eastron-sdm120",
        closing=[ClosingReading(register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                                value=Decimal("1234.5"), ts=T)], detected_at=T)
    stranger = replacement.model_copy(update={"old_meter": "X0"})
    document = json.loads(batch(replacements=[replacement, stranger]))
    document["replacements"].append({"device": "?"})  # what no gateway of ours would send
    envelope = envelope_of(json.dumps(document).encode())
    replacements, bad = check_replacements(envelope)
    assert replacements == [replacement, stranger]
    assert len(bad) == 1 and "invalid meter replacement in batch gw/7" in bad[0][0]
    routed = route(envelope, [], METERS, replacements)
    (record,) = routed.records  # no readings of the account in this batch: a record anyway
    assert (record.account, record.readings, record.replacements) == ("LS-1", [], [replacement])
    assert routed.dead[0][0] == "replacement of unknown meter X0 in batch gw/7"


def test_version_1_batches_are_taken_and_their_samples_cannot_carry_flags() -> None:
    sample = {"meter": "E1", "register": "active_import", "unit": "kWh", "value": "1.5",
              "ts": T.isoformat()}
    v1 = {"v": 1, "gateway": "gw", "seq": 1, "polled_at": T.isoformat()}
    envelope = envelope_of(json.dumps({**v1, "samples": [sample]}).encode())
    samples, dead = check_samples(envelope, LATEST)
    assert len(samples) == 1 and dead == []
    assert route(envelope, samples, METERS).records[0].readings[0].flags == ()
    flagged = envelope_of(json.dumps({**v1, "samples": [{**sample, "flags": ["reset"]}]}).encode())
    samples, dead = check_samples(flagged, LATEST)
    assert samples == [] and "flags: Extra inputs are not permitted" in dead[0][0]
