"""What a gateway says about itself and its meters, retained on the broker so whoever looks
later sees the current state:

- ``{root}/{gateway}/status``: "online" when it connects (its birth message, after every
  connection), "offline" as its last will (the broker publishes it when the gateway's
  connection dies without a goodbye) or when it stops;
- ``{root}/{gateway}/devices/{device}``: each meter online or offline and what is wrong with
  it, published when that changes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from gateway.devices import Device
from meterline.contracts import DeviceStatus, GatewayStatus
from meterline.mqtt import MqttLink
from meterline.settings import Settings

log = logging.getLogger("meterline.gateway")


class StatusReporter:
    def __init__(self, settings: Settings, devices: int) -> None:
        self.settings = settings
        self.gateway_id = settings.gateway_id
        self.topic = settings.topic(self.gateway_id, "status")
        self.devices = devices
        self.mqtt: MqttLink | None = None

    def device_topic(self, device: Device) -> str:
        return self.settings.topic(self.gateway_id, f"devices/{device.name}")

    def will(self) -> tuple[str, str]:
        """The last will: what the broker says for a gateway that vanished."""
        return self.topic, self._status("offline", "connection lost").model_dump_json()

    def _status(self, state: Literal["online", "offline"], reason: str) -> GatewayStatus:
        return GatewayStatus(gateway=self.gateway_id, state=state, at=datetime.now(UTC),
                             reason=reason, devices=self.devices)

    def _publish(self, topic: str, payload: str) -> None:
        if self.mqtt is None or not self.mqtt.publish_nowait(topic, payload, retain=True):
            log.error("MQTT queue full: status on %s dropped", topic)

    def birth(self) -> None:
        """Called after every connection to the broker."""
        self._publish(self.topic, self._status("online", "connected").model_dump_json())

    def stopped(self) -> None:
        self._publish(self.topic, self._status("offline", "stopped").model_dump_json())

    def device(self, device: Device, state: Literal["online", "offline"], problem: str = "",
               clock_offset_s: float | None = None) -> None:
        """Publish ``device``'s status if its state or problem changed."""
        if device.reported == (state, problem):
            return
        device.reported = (state, problem)
        status = DeviceStatus(
            gateway=self.gateway_id, device=device.name, meter=device.serial,
            profile=device.profile.id, state=state, problem=problem,
            clock_offset_s=clock_offset_s, at=datetime.now(UTC))
        self._publish(self.device_topic(device), status.model_dump_json())
