"""Messages between services, versioned: MQTT payloads and Kafka records.

Every message carries ``v`` (the schema version). A change that breaks readers adds a new
version instead of changing one in place.

MQTT (QoS 1), topics under ``Settings.mqtt_topic_root`` (``MQTT_TOPICS`` lists them, for
an ACL):
  ``{gateway}/readings``          ReadingsBatch (v1) or ReadingsBatchV2   gateway -> platform,
                                  one per poll cycle
  ``{gateway}/status``            GatewayStatus (retained)   birth, and last will when it vanishes
  ``{gateway}/devices/{device}``  DeviceStatus (retained)    each meter online or offline
  ``{gateway}/commands``          RelayCommand (v1) or GatewayCommand   platform -> gateway
  ``{gateway}/acks``              CommandAck (v1) or CommandResult   gateway -> platform
  ``{gateway}/confirms``          BatchConfirmation   platform -> gateway, once its batches are
                                  committed
Kafka, topic ``readings``:
  ReadingsRecord (v2)     the readings of many accounts as columns; produced to the partition
                          the producer's default partitioner gives the ACCOUNT id (murmur2 of
                          its UTF-8 bytes modulo the partitions), so every reading of one
                          account is on one partition and one worker owns its balance
  AccountReadings (v1)    one account's readings, key = account id (still read by rating)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from meterline.units import Register, Unit, Utility

# "register" is the meters' own word for it; pydantic warns only because ABCMeta has a
# classmethod of that name, which the field shadows harmlessly on instances.
warnings.filterwarnings("ignore", 'Field name "register"', UserWarning)

MeterId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
GatewayId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,32}$")]
ProviderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
RegisterValue = Annotated[
    Decimal, Field(ge=0, allow_inf_nan=False, max_digits=20, decimal_places=9)
]


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sample(Contract):
    """One cumulative register read from one meter at one instant."""

    meter: MeterId
    register: Register
    unit: Unit
    value: RegisterValue
    ts: Timestamp


class ReadingsBatch(Contract):
    """Everything one gateway read in one poll cycle. (gateway, seq) identifies it."""

    v: Literal[1] = 1
    gateway: GatewayId
    seq: int = Field(ge=0)
    polled_at: Timestamp
    samples: list[Sample]


class ReadingFlag(StrEnum):
    """What a gateway noticed about a cumulative register's reading, for the platform's register
    policy to act on (the reading itself is always the register as the meter showed it)."""

    ROLLOVER = "rollover"  # went down by what its counter width explains: it wrapped
    RESET = "reset"  # went down otherwise: cleared, power loss of a volatile counter, garbage
    IMPLAUSIBLE_JUMP = "implausible_jump"  # grew faster than the meter can measure
    FLOAT32_RESOLUTION = "float32_resolution"  # a float32 too large to show the billing step


class SampleV2(Sample):
    """A sample with what the gateway noticed about it."""

    flags: tuple[ReadingFlag, ...] = ()


DeviceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class ClockSync(Contract):
    """Whether the gateway's clock, which stamps every reading, is synchronised (NTP)."""

    state: Literal["synced", "unsynced", "unknown"]
    max_error_ms: float | None = Field(None, ge=0, description="The kernel's bound on the error.")
    source: str = Field("", description="How it was found out, e.g. kernel (adjtimex).")


class Measurements(Contract):
    """Instantaneous values of one meter (voltage, power, temperatures...), by the register
    names of its device profile, which gives their units. Shown, never billed."""

    meter: MeterId
    ts: Timestamp
    values: dict[str, float]


class ClosingReading(Contract):
    register: Register
    unit: Unit
    value: RegisterValue
    ts: Timestamp


class MeterReplacement(Contract):
    """Another meter (a new serial) answers at the address of one the gateway knew: the old
    meter's last readings are its closing readings; the new one's come in the samples."""

    device: DeviceName
    old_meter: MeterId
    new_meter: MeterId
    profile: str
    closing: list[ClosingReading]
    detected_at: Timestamp


class ReadingsBatchV2(Contract):
    """Everything one gateway read in one poll cycle, with what it noticed. (gateway, seq)
    identifies it, as in version 1."""

    v: Literal[2] = 2
    gateway: GatewayId
    seq: int = Field(ge=0)
    polled_at: Timestamp
    clock: ClockSync
    samples: list[SampleV2]
    measurements: list[Measurements] = Field(default_factory=list)
    replacements: list[MeterReplacement] = Field(default_factory=list)


class BatchEnvelope(Contract):
    """A ReadingsBatch (v1) or ReadingsBatchV2 whose parts are not checked yet: the bridge
    checks each sample and replacement on its own, so one bad one is dead-lettered without
    losing the rest of the batch."""

    v: Literal[1, 2]
    gateway: GatewayId
    seq: int = Field(ge=0)
    polled_at: Timestamp
    samples: list[object]
    clock: object = None
    measurements: list[object] = Field(default_factory=list)
    replacements: list[object] = Field(default_factory=list)


class Reading(SampleV2):
    """A sample routed to its account: what rating prices."""

    provider: ProviderId
    utility: Utility


class AccountReadings(Contract):
    """Kafka record on the readings topic, keyed by account."""

    v: Literal[1] = 1
    account: AccountId
    gateway: GatewayId
    seq: int = Field(ge=0)
    readings: list[Reading]
    replacements: list[MeterReplacement] = Field(default_factory=list)


class ReadingsRecord(Contract):
    """Kafka record on the readings topic, version 2: readings of many accounts, as columns
    (element i of every column is reading i), so that a record carries thousands of readings
    and its consumer pays per record, not per reading. Every account in it hashes to the
    record's partition (see the module docstring).

    ``ts`` is UTC microseconds since the Unix epoch, ``value`` the cumulative register in
    micro-units (1e-6 kWh, m3, Gcal), both exact integers. ``batches`` names the gateway
    batches, (gateway, seq), the readings came from. ``flagged`` holds what gateways noticed,
    for the readings that have flags only: (index of the reading, its flags). ``replacements``
    are the meter replacements of the record's accounts, with the account of the meter
    replaced."""

    v: Literal[2] = 2
    batches: list[tuple[GatewayId, int]]
    account: list[str]
    meter: list[str]
    register: list[str]
    unit: list[str]
    provider: list[str]
    utility: list[str]
    ts: list[int]
    value: list[int]
    flagged: list[tuple[int, tuple[ReadingFlag, ...]]] = Field(default_factory=list)
    replacements: list[tuple[AccountId, MeterReplacement]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _columns_of_one_length(self) -> ReadingsRecord:
        n = len(self.meter)
        if any(len(column) != n for column in (self.account, self.register, self.unit,
                                               self.provider, self.utility, self.ts,
                                               self.value)):
            raise ValueError("columns of different lengths")
        if any(not 0 <= i < n for i, _ in self.flagged):
            raise ValueError("a flagged reading that is not in the record")
        return self

    def __len__(self) -> int:
        return len(self.meter)


class BatchConfirmation(Contract):
    """The platform has committed these batches of the gateway (stored, forwarded to Kafka,
    recorded: or had them already): the gateway may drop them from its outbox. Until then it
    keeps them, so a backlog never runs further ahead than the platform takes it."""

    v: Literal[1] = 1
    gateway: GatewayId
    seqs: list[int]


RelayAction = Literal["connect", "disconnect"]


class RelayCommand(Contract):
    v: Literal[1] = 1
    command_id: UUID
    meter: MeterId
    action: RelayAction
    reason: str = ""
    issued_at: Timestamp


class CommandAck(Contract):
    v: Literal[1] = 1
    command_id: UUID
    meter: MeterId
    action: RelayAction
    ok: bool
    detail: str = ""
    at: Timestamp


# --- gateway status and commands, version 2 --------------------------------------------------
class GatewayStatus(Contract):
    """Retained on ``{gateway}/status``: "online" when the gateway connects (its birth), and
    "offline" as its last will (the broker publishes it when the gateway vanishes) or when it
    stops."""

    v: Literal[1] = 1
    gateway: GatewayId
    state: Literal["online", "offline"]
    at: Timestamp
    reason: str = ""
    devices: int | None = Field(None, ge=0, description="Meters it polls.")


class DeviceStatus(Contract):
    """Retained on ``{gateway}/devices/{device}``, published when a meter's state or problem
    changes."""

    v: Literal[1] = 1
    gateway: GatewayId
    device: DeviceName
    meter: MeterId | None = Field(description="Its serial, once read.")
    profile: str
    state: Literal["online", "offline"]
    problem: str = Field("", description="What is wrong, in words; empty when nothing is.")
    clock_offset_s: float | None = Field(
        None, description="The meter's own clock minus the gateway's, if the meter has one.")
    at: Timestamp


CommandAction = Literal["connect", "disconnect", "read_now", "set_poll_period"]


class GatewayCommand(Contract):
    """A command to a gateway. Idempotent by ``command_id``: the same id again is answered
    with the first result and not executed again."""

    v: Literal[2] = 2
    command_id: UUID
    action: CommandAction
    meter: MeterId | None = Field(None, description="connect, disconnect; read_now: one meter "
                                                    "(none: all)")
    poll_period_s: float | None = Field(None, gt=0, le=86_400, description="set_poll_period")
    reason: str = ""
    issued_at: Timestamp

    @model_validator(mode="after")
    def _arguments(self) -> Self:
        if self.action in ("connect", "disconnect") and self.meter is None:
            raise ValueError(f"{self.action} needs a meter")
        if self.action == "set_poll_period" and self.poll_period_s is None:
            raise ValueError("set_poll_period needs poll_period_s")
        if self.action != "set_poll_period" and self.poll_period_s is not None:
            raise ValueError(f"poll_period_s is for set_poll_period, not {self.action}")
        return self


class CommandResult(Contract):
    """A gateway's answer to a GatewayCommand: ok, or failed with the reason (``detail``)."""

    v: Literal[2] = 2
    command_id: UUID
    action: CommandAction
    meter: MeterId | None = None
    ok: bool
    detail: str = ""
    relay: Literal["connected", "disconnected"] | None = Field(
        None, description="The relay as read back after a connect or disconnect.")
    batch_seq: int | None = Field(None, ge=0, description="read_now: the batch with the readings.")
    duplicate: bool = Field(False, description="The command id was seen before: not executed "
                                               "again, this is the first result.")
    at: Timestamp


# --- topics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MqttTopic:
    """One kind of MQTT topic per gateway, ``{root}/{gateway}/{kind}``: who publishes on it
    and what. The broker's ACL is written from this list (`meterline.mqtt_access`)."""

    kind: str  # "+" stands for one level (a device name)
    publisher: Literal["gateway", "platform"]
    message: type[Contract]  # the newest version
    older: tuple[type[Contract], ...] = ()  # versions still sent and taken
    retained: bool = False


MQTT_TOPICS: tuple[MqttTopic, ...] = (
    MqttTopic("readings", "gateway", ReadingsBatchV2, older=(ReadingsBatch,)),
    MqttTopic("status", "gateway", GatewayStatus, retained=True),
    MqttTopic("devices/+", "gateway", DeviceStatus, retained=True),
    MqttTopic("commands", "platform", GatewayCommand, older=(RelayCommand,)),
    MqttTopic("acks", "gateway", CommandResult, older=(CommandAck,)),
    MqttTopic("confirms", "platform", BatchConfirmation),
)
