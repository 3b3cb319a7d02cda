"""Settings of every meterline service, read from the environment and `.env`.

Every variable is prefixed with ``METERLINE_`` (``METERLINE_DATABASE_URL`` and so on).
`meterline config` prints them all with their current values and descriptions.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="METERLINE_", env_file=".env", extra="ignore", frozen=True
    )

    # --- PostgreSQL / TimescaleDB
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/meterline",
        description="PostgreSQL connection URL (TimescaleDB is used when the extension exists).",
    )

    # --- MQTT (gateways <-> platform)
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, description="MQTT broker port.")
    mqtt_username: str | None = Field(None, description="MQTT user name, if the broker wants one.")
    mqtt_password: str | None = Field(None, description="MQTT password.")
    mqtt_topic_root: str = Field("meterline/v1", description="Root of every meterline topic.")

    # --- Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_partitions: int = Field(4, ge=1, description="Partitions of topics meterline creates.")
    readings_topic: str = Field(
        "readings", description="Kafka topic of readings, keyed by account."
    )

    # --- gateway
    gateway_id: str = Field("gw-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Gateway id.")
    gateway_meters: str = Field(
        "127.0.0.1:5020/1-20",
        description="Meters the gateway polls: `host:port/units` groups separated by `;`, "
        "units as `1-20` or `1,2,5`.",
    )
    poll_interval: float = Field(1.0, gt=0, description="Seconds between poll cycles.")
    gateway_state_dir: Path = Field(
        Path("var/gateway"),
        description="Where the gateway keeps its outbox (SQLite): batches not yet acknowledged "
        "by the broker, and the batch sequence number.",
    )

    # --- simulators
    sim_host: str = Field("127.0.0.1", description="Address the meter simulator listens on.")
    sim_port: int = Field(5020, description="Modbus TCP port of the meter simulator.")
    sim_meters: int = Field(20, ge=1, le=247, description="Meters (unit ids 1..N) per simulator.")
    sim_serial_base: int = Field(
        10_000_000, ge=0, description="Serial number of unit 1; unit n has base + n - 1."
    )
    sim_speedup: float = Field(
        600.0, gt=0, description="Simulated seconds per real second (600: 10 minutes a second)."
    )
    sim_seed: int = Field(1, description="Seed of the simulated load profiles.")

    # --- rating
    rating_batch_size: int = Field(2000, ge=1, description="Kafka events priced in one batch.")
    rating_batch_window: float = Field(
        0.2, gt=0, description="Seconds to wait for a batch to fill before pricing it."
    )
    rating_group: str = Field(
        "meterline-rating", description="Faust app id: the rating workers' Kafka consumer group."
    )
    rating_data_dir: Path = Field(Path("var/rating"), description="Rating worker's local data.")
    tariff_refresh: float = Field(30.0, gt=0, description="Seconds between tariff reloads.")
    rating_web_port: int = Field(6066, description="Port of the rating worker's status page.")
    rating_session_timeout: float = Field(
        30.0, gt=0, description="Kafka consumer session timeout of the rating worker, seconds."
    )

    # --- bridge
    bridge_client_id: str = Field(
        "meterline-bridge",
        description="MQTT client id of the bridge (its persistent session keeps unacknowledged "
        "batches while it is away).",
    )
    max_clock_skew: float = Field(
        600.0, ge=0, description="Seconds a reading's time may be ahead of the bridge's clock; "
        "later readings are dead-lettered.",
    )

    # --- API
    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(8000, description="Port the API listens on.")
    max_topup: Decimal = Field(
        Decimal("1000000.00"), gt=0, description="Largest single top-up accepted, in roubles."
    )

    # --- payments, penalties, reminders (billing)
    penalty_rules_file: Path | None = Field(
        None, description="Penalty laws, tiers and moratoria (TOML); the shipped rules if unset.",
    )
    penalty_rates_file: Path | None = Field(
        None, description="Refinancing/key rate table (CSV) operators keep current; the shipped "
        "table if unset.",
    )
    penalty_rates_stale_days: int = Field(
        120, ge=0, description="A penalty calculated this many days past the rate table's last "
        "decision warns that the table may be out of date.",
    )
    penalty_count_payment_day: bool = Field(
        True, description="Whether the day of payment itself counts as a day of delay.",
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server that sends notices by e-mail.")
    smtp_port: int = Field(25, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user name, if the server wants one.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    mail_from: str = Field("billing@meterline.local", description="Sender of notices by e-mail.")
    sms_gateway_url: str = Field(
        "http://127.0.0.1:13013/cgi-bin/sendsms",
        description="The SMS gateway's send URL (Kannel's HTTP sendsms interface).",
    )
    sms_username: str = Field("meterline", description="SMS gateway user.")
    sms_password: str | None = Field(None, description="SMS gateway password.")
    sms_sender: str = Field("meterline", description="Sender name of notices by SMS.")
    notifier_host: str = Field("127.0.0.1", description="Address the notifier's callbacks "
                               "(SMS delivery reports, call results, e-mail links) listen on.")
    notifier_port: int = Field(8025, description="Port of the notifier's callbacks.")
    notifier_interval: float = Field(
        30.0, gt=0, description="Seconds between the notifier's passes (a new notice wakes it "
        "at once).",
    )
    notifier_public_url: str = Field(
        "http://127.0.0.1:8025", description="How gateways, autodialers and subscribers' mail "
        "readers reach the notifier's callbacks.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must be a postgresql:// URL")
        return value

    def as_env(self) -> dict[str, str]:
        """The environment that makes a child process read exactly these settings."""
        return {
            f"METERLINE_{name.upper()}": str(value)
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }

    def topic(self, gateway_id: str, kind: str) -> str:
        """MQTT topic of one gateway: ``{root}/{gateway}/{readings|commands|acks}``."""
        return f"{self.mqtt_topic_root}/{gateway_id}/{kind}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
