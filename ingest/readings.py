"""Checking a gateway's batch and routing its samples to accounts.

Pure: given the raw MQTT payload and the known meters, it returns what to store, what to
forward to Kafka (one record per account) and what to dead-letter with which reason.
A bad sample is dead-lettered on its own; the rest of the batch goes on.

Both batch versions are taken: a version 2 batch's reading flags and meter replacements go
on to Kafka with the readings of the account concerned (the platform's register policy
acts on them); its measurements and clock state are not stored here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from ingest.directory import KnownMeter
from meterline.contracts import (
    AccountReadings,
    BatchEnvelope,
    MeterReplacement,
    Reading,
    Sample,
    SampleV2,
)
from meterline.units import Utility


@dataclass
class Routed:
    envelope: BatchEnvelope
    samples: list[Sample] = field(default_factory=list)
    records: list[AccountReadings] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)  # (reason, payload)


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
    )


def parse_envelope(payload: bytes, topic_gateway: str) -> BatchEnvelope | str:
    """The batch envelope, or the reason it is refused."""
    try:
        envelope = BatchEnvelope.model_validate_json(payload)
    except ValidationError as exc:
        return f"malformed readings batch: {_errors(exc)}"
    if envelope.gateway != topic_gateway:
        return f"batch names gateway {envelope.gateway!r} but came on {topic_gateway!r}'s topic"
    return envelope


def check_samples(
    envelope: BatchEnvelope, latest_allowed: datetime
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """The samples that are well formed and not from the future (a gateway whose clock runs
    ahead would otherwise stamp readings no later reading could follow)."""
    samples: list[Sample] = []
    dead: list[tuple[str, str]] = []
    shape = SampleV2 if envelope.v == 2 else Sample
    for raw in envelope.samples:
        try:
            sample = shape.model_validate(raw)
        except ValidationError as exc:
            dead.append((f"invalid sample in batch {envelope.gateway}/{envelope.seq}: "
                         f"{_errors(exc)}", json.dumps(raw, default=str)))
            continue
        if sample.ts > latest_allowed:
            dead.append((f"sample in batch {envelope.gateway}/{envelope.seq} is from the future: "
                         f"{sample.ts.isoformat()} is after {latest_allowed.isoformat()}",
                         sample.model_dump_json()))
            continue
        samples.append(sample)
    return samples, dead


def not_behind(meter: KnownMeter, gateway: str) -> str | None:
    """Why ``gateway`` may not report ``meter``, or None when the meter is registered behind
    it. A gateway reports only its own meters: a misconfigured or compromised one must not
    charge someone else's account."""
    if meter.gateway == gateway:
        return None
    if meter.gateway is None:
        return f"meter {meter.id} is read by people, not through gateway {gateway}"
    return f"meter {meter.id} is registered behind gateway {meter.gateway}, not {gateway}"


def check_replacements(
    envelope: BatchEnvelope,
) -> tuple[list[MeterReplacement], list[tuple[str, str]]]:
    """The well-formed meter replacements of a batch; the others with the reason."""
    replacements: list[MeterReplacement] = []
    dead: list[tuple[str, str]] = []
    for raw in envelope.replacements:
        try:
            replacements.append(MeterReplacement.model_validate(raw))
        except ValidationError as exc:
            dead.append((f"invalid meter replacement in batch {envelope.gateway}/{envelope.seq}: "
                         f"{_errors(exc)}", json.dumps(raw, default=str)))
    return replacements, dead


def route(
    envelope: BatchEnvelope, samples: list[Sample], meters: Mapping[str, KnownMeter],
    replacements: list[MeterReplacement] | None = None,
) -> Routed:
    """Readings (and meter replacements, with the account of the meter replaced) by account."""
    routed = Routed(envelope)
    by_account: dict[str, list[Reading]] = {}
    replaced: dict[str, list[MeterReplacement]] = {}
    for replacement in replacements or []:
        meter = meters.get(replacement.old_meter)
        where = f"in batch {envelope.gateway}/{envelope.seq}"
        if meter is None:
            routed.dead.append((f"replacement of unknown meter {replacement.old_meter} {where}",
                                replacement.model_dump_json()))
            continue
        if refused := not_behind(meter, envelope.gateway):
            routed.dead.append((f"replacement refused: {refused} {where}",
                                replacement.model_dump_json()))
            continue
        replaced.setdefault(meter.account, []).append(replacement)
    for sample in samples:
        where = f"in batch {envelope.gateway}/{envelope.seq}"
        meter = meters.get(sample.meter)
        if meter is None:
            routed.dead.append((f"unknown meter {sample.meter} {where}",
                                sample.model_dump_json()))
            continue
        if refused := not_behind(meter, envelope.gateway):
            routed.dead.append((f"{refused} {where}", sample.model_dump_json()))
            continue
        unit = meter.registers.get(sample.register.value)
        if unit is None:
            routed.dead.append((f"meter {sample.meter} has no register {sample.register} {where}",
                                sample.model_dump_json()))
            continue
        if unit != sample.unit.value:
            routed.dead.append((
                f"meter {sample.meter} register {sample.register} is in {unit}, "
                f"sample says {sample.unit} {where}", sample.model_dump_json()))
            continue
        routed.samples.append(sample)
        by_account.setdefault(meter.account, []).append(Reading(
            **sample.model_dump(), provider=meter.provider, utility=Utility(meter.utility)
        ))
    routed.records = [
        AccountReadings(account=account, gateway=envelope.gateway, seq=envelope.seq,
                        readings=by_account.get(account, []),
                        replacements=replaced.get(account, []))
        for account in dict.fromkeys([*by_account, *replaced])
    ]
    return routed
