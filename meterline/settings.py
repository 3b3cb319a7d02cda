"""Settings of every meterline service, read from the environment and `.env`.

Every variable is prefixed with ``METERLINE_`` (``METERLINE_DATABASE_URL`` and so on).
`meterline config` prints them all with their current values and descriptions.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that work out of the box in development and are refused anywhere else.
DEVELOPMENT_JWT_SECRET = "development-only-jwt-secret-change-me"
DEVELOPMENT_ACQUIRER_KEY = "development-only-acquirer-key"
DEVELOPMENT_WEBHOOK_SECRET = "development-only-webhook-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="METERLINE_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = Field(
        "development",
        description="`development` accepts the built-in secrets and seeds demo users; "
        "`production` refuses to start with a built-in secret.",
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
    mqtt_config_dir: Path | None = Field(
        None, description="Where Mosquitto reads its password file and ACL: when set, "
        "`meterline mqtt add-client` and `remove-client` rewrite them at once."
    )
    mqtt_broker_pid_file: Path | None = Field(
        None, description="Mosquitto's pid file: when set, the broker is sent SIGHUP after "
        "the password file and ACL are rewritten, so a gateway registered works at once."
    )

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
    gateway_rate_factor: float = Field(
        1.0, gt=0, description="How much faster than real time the meters of `gateway_meters` "
        "run (simulators at `sim_speedup`: the same value); a register growing faster than its "
        "meter can measure, times this, is flagged implausible_jump. A configuration file sets "
        "its own (`[checks] rate_factor`).",
    )
    gateway_config: Path | None = Field(
        None, description="Gateway configuration file (TOML or YAML: Modbus TCP and RTU lines, "
        "meters of any profile, polling, checks); without it, the SDM120s of gateway_meters "
        "polled every poll_interval seconds.",
    )
    gateway_state_dir: Path = Field(
        Path("var/gateway"),
        description="Where the gateway keeps its outbox (SQLite): batches not yet acknowledged "
        "by the broker, and the batch sequence number.",
    )

    gateway_window: int = Field(
        256, ge=1, description="Readings batches a gateway has out and not yet confirmed, at "
        "most. Keep gateways x window below the broker's queue for the bridge "
        "(Mosquitto's max_queued_messages)."
    )
    gateway_await_confirmation: bool = Field(
        True, description="Keep each batch in the outbox until the platform confirms it has "
        "committed it (not only until the broker has it), so a backlog never outruns the "
        "broker's queue: false only for a platform that does not confirm."
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
    sim_config: Path | None = Field(
        None, description="Simulator configuration file (TOML: TCP servers, RTU lines, meters "
        "of any profile, faults); without it, sim_meters SDM120 meters on sim_host:sim_port.",
    )
    sim_state_dir: Path = Field(
        Path("var/simulators"),
        description="Where simulated meters keep their registers and relays across restarts "
        "(without a sim_config; the configuration file names its own state file).",
    )

    # --- rating
    rating_batch_size: int = Field(2000, ge=1, description="Kafka events taken in one batch.")
    rating_batch_readings: int = Field(
        20_000, ge=1, description="Readings priced in one transaction, about (a batch of "
        "records carrying more is priced in several)."
    )
    rating_batch_window: float = Field(
        0.2, gt=0, description="Seconds to wait for a batch to fill before pricing it."
    )
    rating_group: str = Field(
        "meterline-rating", description="Faust app id: the rating workers' Kafka consumer group."
    )
    rating_data_dir: Path = Field(Path("var/rating"), description="Rating worker's local data.")
    tariff_refresh: float = Field(30.0, gt=0, description="Seconds between tariff reloads.")
    rating_web_port: int = Field(
        6066, description="Port of the rating worker's /metrics and /ready."
    )
    rating_stop_grace: float = Field(
        15.0, gt=0, description="Seconds the rating worker gets to stop cleanly on SIGTERM or "
        "Ctrl-C before it exits anyway (nothing is lost: offsets follow the commits)."
    )
    rating_session_timeout: float = Field(
        30.0, gt=0, description="Kafka consumer session timeout of the rating worker, seconds."
    )

    # --- bridge
    bridge_client_id: str = Field(
        "meterline-bridge",
        description="MQTT client id of the bridge (its persistent session keeps unacknowledged "
        "batches while it is away).",
    )
    bridge_share: str = Field(
        "", pattern=r"^[A-Za-z0-9_-]{0,64}$",
        description="MQTT shared subscription group of the bridges: bridges with the same "
        "group (each its own bridge_client_id) share the gateways' messages; empty: one "
        "bridge takes them all."
    )
    bridge_record_version: int = Field(
        2, ge=1, le=2, description="Kafka readings records the bridge produces: 2 (many "
        "accounts' readings per record, columns) or 1 (one record per batch and account: "
        "the earlier design, kept as the benchmarks' baseline)."
    )
    max_clock_skew: float = Field(
        600.0, ge=0, description="Seconds a reading's time may be ahead of the bridge's clock; "
        "later readings are dead-lettered.",
    )

    # --- metrics and readiness (GET /metrics, GET /ready); the API serves both on api_port,
    # the rating worker on rating_web_port
    metrics_host: str = Field(
        "127.0.0.1", description="Address the services' /metrics and /ready listen on."
    )
    bridge_metrics_port: int = Field(9102, description="Port of the bridge's /metrics, /ready.")
    gateway_metrics_port: int = Field(
        9103, description="Port of the gateway's /metrics and /ready."
    )
    sim_metrics_port: int = Field(9104, description="Port of the simulators' /metrics, /ready.")
    loadgen_metrics_port: int = Field(
        9105, description="Port of the load generator's /metrics and /ready."
    )

    # --- API
    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(8000, description="Port the API listens on.")
    max_topup: Decimal = Field(
        Decimal("1000000.00"), gt=0, description="Largest single top-up accepted, in roubles."
    )

    # --- bill runs and the scheduler (billing)
    billrun_chunk_accounts: int = Field(
        20_000, ge=1, description="Accounts a bill run bills in one transaction (whole houses)."
    )
    billrun_workers: int = Field(
        2, ge=1, le=16, description="Connections a bill run bills chunks on at once."
    )
    schedules: dict[str, str] = Field(
        {"billrun": "0 3 1 * *", "standing-charges": "30 0 * * *", "benefits": "0 2 1 * *",
         "penalties": "0 1 * * *", "reminders": "0 10 * * *"},
        description="The scheduler's jobs and when they run: JSON of job name -> cron "
        "expression in scheduler_time_zone. Jobs: billrun (bills the month before, then books "
        "its benefits), standing-charges (books the day before's), benefits (books the month "
        "before's), penalties (accrues them to the day before), reminders (one reminder run).",
    )
    scheduler_time_zone: str = Field("Europe/Moscow", description="Time zone of schedules.")
    scheduler_catch_up: float = Field(
        86_400.0, ge=0, description="Seconds a slot missed while no scheduler ran is still "
        "run when one starts.",
    )
    scheduler_poll: float = Field(
        30.0, gt=0, description="Most seconds the scheduler waits before looking for work.",
    )
    scheduler_metrics_port: int = Field(
        9106, description="Port of the scheduler's /metrics and /ready."
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
    agent_time_zone: str = Field(
        "Europe/Moscow", description="Time zone of the collecting agent's books: a settlement "
        "period ends at midnight there.",
    )
    agent_name: str = Field("", description="The collecting agent (payer of the transfers to "
                            "providers in the settlement file).")
    agent_inn: str = Field("", description="The agent's INN.")
    agent_kpp: str = Field("", description="The agent's KPP.")
    agent_account: str = Field("", description="The agent's settlement account (20 digits).")
    agent_bank_name: str = Field("", description="The agent's bank.")
    agent_bic: str = Field("", description="The agent's bank BIC.")
    agent_corr_account: str = Field("", description="The agent's bank correspondent account.")
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

    # --- authentication (api/auth)
    jwt_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_JWT_SECRET),
        description="HMAC key signing access tokens (HS256); at least 32 characters. The "
        "built-in value is refused outside development.",
    )
    access_token_ttl: int = Field(
        900, ge=30, le=3600, description="Seconds an access token (JWT) is valid."
    )
    refresh_token_ttl: int = Field(
        30 * 24 * 3600, ge=300, description="Seconds a refresh token is valid (each use "
        "rotates it)."
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins of one user name within login_lockout seconds "
        "that lock it."
    )
    login_lockout: int = Field(
        900, ge=1, description="Seconds a user name (or a client address) stays locked after "
        "too many failed logins."
    )
    login_max_failures_per_address: int = Field(
        100, ge=1, description="Failed logins from one client address, whatever the names, "
        "within login_lockout seconds that lock the address (high: many people may share one "
        "address behind a carrier's or an office's NAT)."
    )

    # --- online top-ups through the acquirer (the payment provider; api/online_payments)
    public_url: str | None = Field(
        None, description="Where the API is reached from outside: the acquirer sends its "
        "webhooks there and returns the payer there. Default: http://api_host:api_port."
    )
    acquirer_url: str | None = Field(
        None, description="The acquirer's API. Default: the local test acquirer "
        "(`meterline acquirer`) on http://127.0.0.1:acquirer_port."
    )
    acquirer_port: int = Field(8090, description="Port of the local test acquirer.")
    acquirer_shop_id: str = Field("meterline-dev", description="Our shop id at the acquirer.")
    acquirer_api_key: SecretStr = Field(
        SecretStr(DEVELOPMENT_ACQUIRER_KEY), description="Our API key at the acquirer; the "
        "built-in value is refused outside development."
    )
    acquirer_webhook_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_WEBHOOK_SECRET), description="HMAC key the acquirer signs its "
        "webhooks with; the built-in value is refused outside development."
    )
    webhook_tolerance: float = Field(
        300.0, gt=0, description="Seconds a webhook's signature time may be off from now."
    )

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules_as_json(cls, value: object) -> object:
        """The schedules as the environment gives them (JSON text) or as a mapping."""
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must be a postgresql:// URL")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("jwt_secret must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _no_default_secrets_outside_development(self) -> Settings:
        if self.environment != "development":
            defaults = [
                f"METERLINE_{name.upper()}"
                for name, default in DEVELOPMENT_SECRETS.items()
                if getattr(self, name).get_secret_value() == default
            ]
            if defaults:
                raise ValueError(
                    f"environment is {self.environment}: set {', '.join(defaults)} "
                    "(the built-in development secrets are refused)"
                )
        return self

    def as_env(self) -> dict[str, str]:
        """The environment that makes a child process read exactly these settings."""
        return {
            f"METERLINE_{name.upper()}": (
                value.get_secret_value() if isinstance(value, SecretStr)
                else json.dumps(value) if isinstance(value, dict) else str(value)
            )
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }

    @property
    def api_base_url(self) -> str:
        """The API's public base URL, without a trailing slash."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def acquirer_base_url(self) -> str:
        return (self.acquirer_url or f"http://127.0.0.1:{self.acquirer_port}").rstrip("/")

    def topic(self, gateway_id: str, kind: str) -> str:
        """MQTT topic of one gateway: ``{root}/{gateway}/{readings|commands|acks}``."""
        return f"{self.mqtt_topic_root}/{gateway_id}/{kind}"


# setting name -> its built-in development value
DEVELOPMENT_SECRETS: dict[str, str] = {
    "jwt_secret": DEVELOPMENT_JWT_SECRET,
    "acquirer_api_key": DEVELOPMENT_ACQUIRER_KEY,
    "acquirer_webhook_secret": DEVELOPMENT_WEBHOOK_SECRET,
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
