"""What a gateway remembers across restarts, besides its outbox: one SQLite file,
``<state_dir>/<gateway_id>-memory.sqlite``.

- each device's serial and the last billing readings it published (its baselines), so a
  meter swapped while the gateway was off is still reported as a replacement, with the old
  meter's closing readings, and a counter that rolled over meanwhile is still flagged;
- the poll period a command set;
- the results of the commands it executed, so a command id seen again is answered with its
  first result instead of being executed twice.

Serials and command results are written when they change; baselines at most every
``BASELINES_EVERY`` seconds (after a crash they are that much older: still the right side of
any rollover or reset).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from gateway.counters import Baseline
from meterline.units import Register

BASELINES_EVERY = 30.0  # seconds
COMMANDS_KEPT = 30 * 86_400.0  # seconds a command result is remembered
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS devices (
        name TEXT PRIMARY KEY, profile TEXT NOT NULL, serial TEXT, baselines TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS commands (
        command_id TEXT PRIMARY KEY, result TEXT NOT NULL, at REAL NOT NULL
    )""",
)


class GatewayMemoryError(RuntimeError):
    """The memory file cannot be used; the gateway stops rather than forget identities."""


@dataclass(frozen=True, slots=True)
class Remembered:
    profile: str
    serial: str | None
    baselines: dict[Register, Baseline]


class Memory:
    def __init__(self, state_dir: Path, gateway_id: str) -> None:
        self.path = Path(state_dir) / f"{gateway_id}-memory.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._db:
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise GatewayMemoryError(f"cannot use the gateway memory {self.path}: {exc}; move it "
                               "aside to start afresh (replacements while the gateway was off "
                               "then go unnoticed)") from exc
        self._saved_at = float("-inf")

    # devices --------------------------------------------------------------------------------
    def devices(self) -> dict[str, Remembered]:
        rows = self._db.execute("SELECT name, profile, serial, baselines FROM devices")
        return {name: Remembered(profile, serial, _baselines(json.loads(text)))
                for name, profile, serial, text in rows}

    def save_devices(self, devices: Iterable[tuple[str, str, str | None,
                                                   dict[Register, Baseline]]],
                     *, force: bool = False) -> bool:
        """Store (name, profile, serial, baselines) of each device, unless it was done less
        than ``BASELINES_EVERY`` seconds ago (``force``: now anyway). True if it was."""
        now = time.monotonic()
        if not force and now - self._saved_at < BASELINES_EVERY:
            return False
        rows = [(name, profile, serial, json.dumps(
                    {str(reg): [str(b.value), b.ts.isoformat()] for reg, b in baselines.items()}))
                for name, profile, serial, baselines in devices]
        with self._db:
            self._db.executemany(
                "INSERT INTO devices (name, profile, serial, baselines) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET profile = excluded.profile, "
                "serial = excluded.serial, baselines = excluded.baselines", rows)
        self._saved_at = now
        return True

    # settings -------------------------------------------------------------------------------
    def poll_period(self) -> float | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'poll_period'").fetchone()
        return None if row is None else float(row[0])

    def set_poll_period(self, seconds: float) -> None:
        with self._db:
            self._db.execute("INSERT INTO settings (key, value) VALUES ('poll_period', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (repr(seconds),))

    # commands -------------------------------------------------------------------------------
    def command_result(self, command_id: str) -> str | None:
        row = self._db.execute("SELECT result FROM commands WHERE command_id = ?",
                               (command_id,)).fetchone()
        return None if row is None else str(row[0])

    def remember_command(self, command_id: str, result: str) -> None:
        now = time.time()
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO commands (command_id, result, at) "
                             "VALUES (?, ?, ?)", (command_id, result, now))
            self._db.execute("DELETE FROM commands WHERE at < ?", (now - COMMANDS_KEPT,))

    def close(self) -> None:
        self._db.close()


def _baselines(data: dict[str, list[str]]) -> dict[Register, Baseline]:
    return {Register(reg): Baseline(Decimal(value), datetime.fromisoformat(ts))
            for reg, (value, ts) in data.items()}
