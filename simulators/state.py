"""The simulated meters' non-volatile memory: a JSON file kept across simulator restarts.

A real meter keeps its registers and its relay when the lights go out; so do these. The file
holds each meter's state (counter, relay, serial, offsets, clock) as of a simulated instant a
little AHEAD of now, the *lease*: a counter never shows more than what the file already
holds, so a simulator killed at any moment restarts from values at least as high as anything
a master has read. The file is renewed before the lease runs out, and at once after a change
that is not just time passing (a relay switched, a fault injected).

Written atomically (a temporary file, fsync, rename): a crash leaves the old file or the new.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulators.meter import MeterState

VERSION = 1


class StateError(RuntimeError):
    pass


def read_state(path: Path) -> tuple[float, dict[str, MeterState]] | None:
    """(simulated instant, meter states by key) from ``path``; None if there is no file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read the meters' state {path}: {exc}; move it aside to "
                         "start the meters afresh") from exc
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise StateError(f"{path} is not a meters' state file of version {VERSION}")
    try:
        meters = {key: MeterState(**state) for key, state in data["meters"].items()}
        return float(data["sim_time"]), meters
    except (KeyError, TypeError) as exc:
        raise StateError(f"{path} is damaged: {exc}") from exc


def write_state(path: Path, sim_time: float, meters: Mapping[str, MeterState]) -> None:
    document: dict[str, Any] = {
        "version": VERSION,
        "sim_time": sim_time,
        "meters": {key: state.as_json() for key, state in meters.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(document, out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
