"""Block-read planning: which read requests fetch a set of registers of one meter.

Registers of one table go into one request when the meter answers them together: inside one
of the profile's spans (or side by side without a hole, for a profile without spans), within
its request limit, and, if ``max_gap`` is set, with at most that many unwanted registers
between two wanted ones (on a slow serial line a long hole costs more than a second request).
``block=False`` gives one request per value: what a gateway without planning does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meterline.profiles.model import FUNCTION_OF_TABLE, Profile, RegisterSpec, Span, Table


@dataclass(frozen=True, slots=True)
class Read:
    """One read request and the registers its answer holds, each with its offset in it."""

    table: Table
    start: int
    count: int
    registers: tuple[tuple[RegisterSpec, int], ...]

    @property
    def function(self) -> int:
        return FUNCTION_OF_TABLE[self.table]

    def __str__(self) -> str:
        return f"{self.table} {self.start:#06x}+{self.count}"


def plan_reads(
    profile: Profile,
    registers: Iterable[RegisterSpec] | None = None,
    *,
    block: bool = True,
    max_gap: int | None = None,
) -> tuple[Read, ...]:
    """The requests that read ``registers`` (default: the profile's polled ones), fewest
    first-fit: registers in address order, each joining the current request if it can."""
    wanted = sorted(profile.polled if registers is None else registers,
                    key=lambda r: (r.table, r.address))
    reads: list[Read] = []
    group: list[RegisterSpec] = []
    span: Span | None = None

    def close() -> None:
        if group:
            start = group[0].address
            count = max(r.last for r in group) - start + 1
            reads.append(Read(group[0].table, start, count,
                              tuple((r, r.address - start) for r in group)))

    for reg in wanted:
        if group and block and _joins(profile, group, span, reg, max_gap):
            group.append(reg)
            continue
        close()
        group, span = [reg], profile.span_of(reg)
    close()
    return tuple(reads)


def _joins(profile: Profile, group: list[RegisterSpec], span: Span | None,
           reg: RegisterSpec, max_gap: int | None) -> bool:
    first, last = group[0], max(r.last for r in group)
    if reg.table != first.table or reg.last - first.address + 1 > profile.max_read_registers:
        return False
    gap = reg.address - last - 1
    if max_gap is not None and gap > max_gap:
        return False
    if profile.spans:
        return span is not None and span.holds(reg.table, first.address, reg.last)
    return gap == 0  # no spans: only registers side by side, never across a hole
