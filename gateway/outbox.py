"""The gateway's outbox: readings batches the broker has not acknowledged yet, and the batch
sequence number, in one SQLite file that survives restarts.

``(gateway, seq)`` identifies a batch downstream, so a seq is never used twice: taking the
next number and storing the batch under it is one transaction (``add``), committed to disk
(WAL, ``synchronous=FULL``) before the batch is published. A batch leaves the outbox only
when the broker acknowledged it (``remove``); until then, and across restarts, it is sent
again under the same seq (the platform drops what it already has).

The outbox is bounded (``MAX_BYTES`` of batch JSON). When a batch would take it past that,
the OLDEST batches are dropped: a meter's registers are cumulative, so the newest readings
still carry the consumption of the dropped ones; only the interval detail of the oldest
period is lost. The log says so (an error when dropping starts and every ``DROPS_REMIND``
batches, then a warning with the seqs dropped once there is room again or the gateway stops).

Schema (``PRAGMA user_version`` 1)::

    sequence(id = 1, next_seq)   the next seq to hand out; never goes down
    batches(seq PRIMARY KEY, payload BLOB)   ReadingsBatch JSON as published, UTF-8

A gateway that kept its number in ``<gateway_id>.seq`` (before the outbox) has it migrated
on open: the larger of the two numbers wins, then the old file is removed.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("meterline.gateway")

# About 2.5 days of 1-second cycles of a 20-meter gateway (some 2.4 kB a batch) waiting for
# a broker that is away; the file itself is somewhat larger (SQLite pages, the WAL). The space
# of batches sent later is reused, not given back: it stays reserved for the next outage.
MAX_BYTES = 512 * 1024 * 1024
DROPS_REMIND = 1000  # while full, an error every this many batches dropped
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sequence (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        next_seq INTEGER NOT NULL CHECK (next_seq >= 0)
    )""",
    "INSERT OR IGNORE INTO sequence (id, next_seq) VALUES (1, 0)",
    """CREATE TABLE IF NOT EXISTS batches (
        seq INTEGER PRIMARY KEY,
        payload BLOB NOT NULL
    )""",
)


class OutboxError(RuntimeError):
    """The outbox (or the old sequence file) cannot be opened as it is; the gateway stops
    rather than reuse batch numbers."""


class Outbox:
    """``<state_dir>/<gateway_id>.sqlite``. One gateway process uses it, from one thread."""

    def __init__(self, state_dir: Path, gateway_id: str, *, max_bytes: int = MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(state_dir) / f"{gateway_id}.sqlite"
        self.legacy_path = Path(state_dir) / f"{gateway_id}.seq"
        self.max_bytes = max_bytes
        self._drops: _Drops | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"cannot make the state directory {self.path.parent}: {exc}") from exc
        legacy_next = self._read_legacy()
        try:
            # autocommit: transactions are the explicit BEGIN IMMEDIATE ... COMMIT of _write
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
        try:
            self._setup(legacy_next)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(
                f"cannot use the outbox {self.path}: {exc}; move it aside to start afresh "
                "(its batches are then lost, and numbering must be set past the last one "
                "the platform has)"
            ) from exc
        if legacy_next is not None:
            log.info("batch number %d taken over from %s into %s",
                     legacy_next, self.legacy_path, self.path)
            try:  # committed: a file left behind is taken over again, harmlessly
                self.legacy_path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", self.legacy_path, exc)
        self._bytes, self._count = self._db.execute(
            "SELECT coalesce(sum(length(payload)), 0), count(*) FROM batches"
        ).fetchone()

    def _read_legacy(self) -> int | None:
        """The next seq the old ``.seq`` file holds, if there is one."""
        try:
            text = self.legacy_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise OutboxError(f"cannot read {self.legacy_path}: {exc}") from exc
        if not text.isdigit():
            raise OutboxError(
                f"{self.legacy_path} should hold the next batch number, found {text[:40]!r}; "
                "fix or remove it (removing it restarts numbering where the outbox says, or "
                "at 0, which the platform would take for batches it already has)"
            )
        return int(text)

    def _setup(self, legacy_next: int | None) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version}, this gateway knows {SCHEMA_VERSION} at most"
            )
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.DatabaseError(f"journal mode {mode!r} instead of WAL")
        db.execute("PRAGMA synchronous = FULL")  # a committed seq survives a power cut
        with self._write():
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if legacy_next is not None:
                db.execute("UPDATE sequence SET next_seq = max(next_seq, ?) WHERE id = 1",
                           (legacy_next,))

    def _write(self) -> _Transaction:
        return _Transaction(self._db)

    # reading -------------------------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """The seq the next ``add`` uses."""
        row = self._db.execute("SELECT next_seq FROM sequence WHERE id = 1").fetchone()
        return int(row[0])

    def __len__(self) -> int:
        """How many batches wait for the broker's acknowledgement."""
        return int(self._count)

    @property
    def size(self) -> int:
        """The size of the batches waiting, in bytes of JSON."""
        return int(self._bytes)

    def after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` batches numbered above ``seq``, oldest first, as (seq, payload)."""
        rows = self._db.execute(
            "SELECT seq, payload FROM batches WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def seqs(self) -> list[int]:
        """The numbers of every batch waiting, oldest first."""
        return [int(s) for (s,) in self._db.execute("SELECT seq FROM batches ORDER BY seq")]

    # writing -------------------------------------------------------------------------------
    def add(self, payload_for: Callable[[int], str | bytes]) -> int:
        """Take the next seq, store ``payload_for(seq)`` under it, and return the seq: one
        transaction, on disk when this returns. If anything fails (``sqlite3.Error``, or
        ``payload_for`` raises), nothing is stored and the seq stays unused. A full outbox
        drops its oldest batches first (logged as an error)."""
        db = self._db
        with self._write():
            seq = int(db.execute("SELECT next_seq FROM sequence WHERE id = 1").fetchone()[0])
            payload = payload_for(seq)
            data = payload.encode() if isinstance(payload, str) else payload
            db.execute("INSERT INTO batches (seq, payload) VALUES (?, ?)", (seq, data))
            db.execute("UPDATE sequence SET next_seq = ? WHERE id = 1", (seq + 1,))
            count, freed, first, last = self._make_room(len(data), seq)
        self._bytes += len(data) - freed
        self._count += 1 - count
        if count:
            self._note_dropped(count, first, last)
        return seq

    def _make_room(self, incoming: int, newest: int) -> tuple[int, int, int, int]:
        """Within ``add``'s transaction: drop the oldest batches (never ``newest``) until the
        outbox holds at most ``max_bytes``: how many, their bytes, the first and last seq."""
        count = freed = 0
        first = last = -1
        excess = self._bytes + incoming - self.max_bytes
        if excess <= 0:
            return count, freed, first, last
        oldest = self._db.execute(
            "SELECT seq, length(payload) FROM batches WHERE seq < ? ORDER BY seq", (newest,)
        )
        try:
            for seq, size in oldest:
                if freed >= excess:
                    break
                first = seq if count == 0 else first
                last = seq
                count += 1
                freed += int(size)
        finally:
            oldest.close()
        if count:
            self._db.execute("DELETE FROM batches WHERE seq <= ?", (last,))
        return count, freed, first, last

    def _note_dropped(self, count: int, first: int, last: int) -> None:
        """Log a full outbox: when it starts dropping, every ``DROPS_REMIND`` batches, and
        (``_end_drops``) when it has room again or closes."""
        if self._drops is None:
            self._drops = _Drops(first=first, last=last, count=count)
            log.error(
                "outbox %s full (%s of batches): dropping the oldest to keep the newest, from "
                "seq %d on; the newest readings still carry the meters' cumulative registers",
                self.path, _size(self.max_bytes), first,
            )
            return
        drops = self._drops
        before, drops.count, drops.last = drops.count, drops.count + count, last
        if drops.count // DROPS_REMIND > before // DROPS_REMIND:
            log.error("outbox %s still full: %d batch(es) dropped so far, seq %d to %d",
                      self.path, drops.count, drops.first, drops.last)

    def _end_drops(self, why: str) -> None:
        if self._drops is not None:
            drops, self._drops = self._drops, None
            log.warning("outbox %s %s: %d batch(es) dropped while it was full, seq %d to %d",
                        self.path, why, drops.count, drops.first, drops.last)

    def remove(self, seqs: Iterable[int]) -> int:
        """Forget the batches ``seqs`` (acknowledged by the broker) in one transaction; how
        many were there (one dropped as the oldest meanwhile is not)."""
        numbers = sorted(set(seqs))
        if not numbers:
            return 0
        count = freed = 0
        with self._write():
            for start in range(0, len(numbers), 500):
                chunk = numbers[start:start + 500]
                marks = ",".join("?" * len(chunk))
                sizes = self._db.execute(
                    f"DELETE FROM batches WHERE seq IN ({marks}) RETURNING length(payload)",
                    chunk,
                ).fetchall()
                count += len(sizes)
                freed += sum(int(size) for (size,) in sizes)
        self._count -= count
        self._bytes -= freed
        if count:
            self._end_drops("has room again")
        return count

    def close(self) -> None:
        self._end_drops("closed while full")
        self._db.close()


@dataclass
class _Drops:
    """Batches dropped since the outbox became full."""

    first: int
    last: int
    count: int


def _size(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n % mib == 0 else f"{n:,} bytes"


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raised."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # keep the error that got us here
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
