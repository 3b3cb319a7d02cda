"""The gateway's batch sequence number, kept on disk so it survives restarts.

``(gateway, seq)`` identifies a batch downstream, so a seq must never be used twice: the next
number is written (atomically: temp file, fsync, rename) *before* a batch is published with
the current one. A crash in between leaves a gap, never a reuse.
"""

from __future__ import annotations

import os
from pathlib import Path


class SequenceFileError(RuntimeError):
    pass


class SequenceStore:
    """``<state_dir>/<gateway_id>.seq`` holds the next seq to publish, as decimal text."""

    def __init__(self, state_dir: Path, gateway_id: str) -> None:
        self.path = Path(state_dir) / f"{gateway_id}.seq"
        self._next: int | None = None

    def load(self) -> int:
        """The next seq: 0 for a gateway that never published, else what the file says."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            self._next = 0
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise SequenceFileError(f"cannot read {self.path}: {exc}") from exc
        if not text.isdigit():
            raise SequenceFileError(
                f"{self.path} should hold the next batch number, found {text[:40]!r}; "
                "fix or remove it (removing restarts numbering at 0, which the platform "
                "would take for batches it already has)"
            )
        self._next = int(text)
        return self._next

    def take(self) -> int:
        """The seq for the batch about to be published; the one after it is on disk before
        this returns. OSError if it cannot be written (the seq is then not used)."""
        seq = self.load() if self._next is None else self._next
        self._write(seq + 1)
        self._next = seq + 1
        return seq

    def _write(self, value: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="ascii") as f:
                f.write(f"{value}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
