"""The bridge takes version 2 batches too: reading flags and meter replacements go on to the
Kafka record of the account concerned (v2 records: ``flagged``, ``replacements``); version 1
batches are taken as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from ingest.directory import KnownMeter
from ingest.readings import (
    Replacement,
    Routed,
    Samples,
    check_replacements,
    check_samples,
    parse_envelope,
    records,
    route,
    route_replacements,
    successors,
)
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
from meterline.instants import micros
from meterline.kafka import AccountPartitions
from meterline.units import Register, Unit

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATEST = micros(T + timedelta(minutes=10))
PARTITIONS = AccountPartitions(4)
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
    assert dead == [] and samples.flags == [(ReadingFlag.ROLLOVER,)]
    ((_, record),) = records(samples, route(samples, METERS), [("gw", 7)], PARTITIONS.of)
    assert (record.account, record.flagged) == (["LS-2"], [(0, (ReadingFlag.ROLLOVER,))])
    assert json.loads(record.model_dump_json())["flagged"] == [[0, ["rollover"]]]


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
    found, dead = route_replacements([Replacement("gw", "gw/7", r) for r in replacements],
                                     METERS)
    assert dead[0][0] == "replacement of unknown meter X0 in batch gw/7"
    routed = Routed(keep=np.empty(0, dtype=np.int64), account=[], provider=[], utility=[],
                    dead=[], replacements=found)
    ((partition, record),) = records(Samples(), routed, [("gw", 7)], PARTITIONS.of)
    # no readings of the account in this batch: a record anyway, on the account's partition
    assert (record.meter, record.replacements) == ([], [("LS-1", replacement)])
    assert partition == PARTITIONS.of("LS-1")


def test_the_new_meter_of_a_replacement_goes_on_to_the_old_meters_account() -> None:
    replacement = MeterReplacement(
        device="tcp-1-1", old_meter="E1", new_meter="E9", profile="eastron-sdm120",
        closing=[ClosingReading(register=Register.ACTIVE_IMPORT, unit=Unit.KWH,
                                value=Decimal("1234.5"), ts=T)], detected_at=T)
    envelope = envelope_of(batch(replacements=[replacement], samples=[
        SampleV2(meter=m, register=Register.ACTIVE_IMPORT, unit=Unit.KWH, value=Decimal("0.5"),
                 ts=T) for m in ("E9", "E7")]))
    samples, _ = check_samples(envelope, LATEST)
    found, dead = route_replacements([Replacement("gw", "gw/7", replacement)], METERS)
    assert dead == []
    new = successors(found, METERS)
    assert new == {"E9": KnownMeter("E9", "LS-1", "energosbyt", "electricity", "gw",
                                    {"active_import": "kWh"})}
    routed = route(samples, {**METERS, **new})
    routed.replacements = found
    # E9 is taken for LS-1; E7, which no replacement names, is still unknown
    assert routed.account == ["LS-1"]
    assert [reason for reason, _ in routed.dead] == ["unknown meter E7 in batch gw/7"]
    ((_, record),) = records(samples, routed, [("gw", 7)], PARTITIONS.of)
    assert (record.meter, record.replacements) == (["E9"], [("LS-1", replacement)])
    assert successors(found, {**METERS, **new}) == {}  # known now: nothing more to learn


def test_version_1_batches_are_taken_and_their_samples_cannot_carry_flags() -> None:
    sample = {"meter": "E1", "register": "active_import", "unit": "kWh", "value": "1.5",
              "ts": T.isoformat()}
    v1 = {"v": 1, "gateway": "gw", "seq": 1, "polled_at": T.isoformat()}
    envelope = envelope_of(json.dumps({**v1, "samples": [sample]}).encode())
    samples, dead = check_samples(envelope, LATEST)
    assert len(samples) == 1 and dead == []
    ((_, record),) = records(samples, route(samples, METERS), [("gw", 1)], PARTITIONS.of)
    assert record.meter == ["E1"] and record.flagged == []
    flagged = envelope_of(json.dumps({**v1, "samples": [{**sample, "flags": ["reset"]}]}).encode())
    samples, dead = check_samples(flagged, LATEST)
    assert len(samples) == 0 and "flags: Extra inputs are not permitted" in dead[0][0]
