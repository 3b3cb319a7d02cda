"""Messages between services, versioned: MQTT payloads and Kafka records.

Every message carries ``v`` (the schema version). A change that breaks readers adds a new
version instead of changing one in place.

MQTT (QoS 1), topics under ``Settings.mqtt_topic_root``:
  ``{gateway}/readings``  ReadingsBatch   gateway -> platform, one per poll cycle
  ``{gateway}/commands``  RelayCommand    platform -> gateway
  ``{gateway}/acks``      CommandAck      gateway -> platform, after the Modbus write
Kafka:
  ``readings``            AccountReadings key = account id, so one worker owns an account
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

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


class BatchEnvelope(Contract):
    """A ReadingsBatch whose samples are not checked yet: the bridge checks each on its own,
    so one bad sample is dead-lettered without losing the rest of the batch."""

    v: Literal[1]
    gateway: GatewayId
    seq: int = Field(ge=0)
    polled_at: Timestamp
    samples: list[object]


class Reading(Sample):
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


@dataclass(frozen=True)
class MqttTopic:
    """One kind of MQTT topic per gateway, ``{root}/{gateway}/{kind}``: who publishes on it
    and what. The broker's ACL is written from this list (`meterline.mqtt_access`)."""

    kind: str
    publisher: Literal["gateway", "platform"]
    message: type[Contract]


MQTT_TOPICS: tuple[MqttTopic, ...] = (
    MqttTopic("readings", "gateway", ReadingsBatch),
    MqttTopic("commands", "platform", RelayCommand),
    MqttTopic("acks", "gateway", CommandAck),
)
