"""A line's worker: one job at a time, commands ahead of polling; its read answers decoded."""

from __future__ import annotations

import asyncio
import struct
from functools import partial

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from gateway.config import TcpLine
from gateway.lines import COMMAND, POLL, HoldingRegisters, InputRegisters, Line


async def test_commands_go_ahead_of_the_polls_waiting_and_jobs_never_overlap() -> None:
    line = Line(TcpLine(name="t", host="127.0.0.1", port=1))
    line.start()
    order: list[str] = []
    running = 0
    first_started, release = asyncio.Event(), asyncio.Event()

    async def job(name: str) -> str:
        nonlocal running
        running += 1
        assert running == 1  # never two at once on a line
        order.append(name)
        if name == "poll-0":
            first_started.set()
            await release.wait()
        await asyncio.sleep(0)
        running -= 1
        return name

    try:
        polls = [asyncio.create_task(line.run(partial(job, f"poll-{n}"), POLL))
                 for n in range(4)]
        await first_started.wait()  # poll-0 is on the line; the other polls wait
        command = asyncio.create_task(line.run(partial(job, "command"), COMMAND))
        await asyncio.sleep(0)  # lets the task queue it: behind poll-0, ahead of the rest
        release.set()
        assert await command == "command"
        assert [await p for p in polls] == ["poll-0", "poll-1", "poll-2", "poll-3"]
        assert order == ["poll-0", "command", "poll-1", "poll-2", "poll-3"]
    finally:
        await line.close()


async def test_a_failing_job_fails_its_caller_only() -> None:
    line = Line(TcpLine(name="t", host="127.0.0.1", port=1))
    line.start()

    async def broken() -> None:
        raise ValueError("meter on fire")

    async def fine() -> int:
        return 7

    try:
        failed = asyncio.create_task(line.run(broken))
        ok = asyncio.create_task(line.run(fine))
        assert await ok == 7
        with pytest.raises(ValueError, match="meter on fire"):
            await failed
    finally:
        await line.close()


def test_register_words_decode_as_pymodbus_decodes_them_in_one_unpack() -> None:
    words = [0, 1, 0x7FFF, 0x8000, 0xFFFF, *range(1000, 1069)]
    frame = bytes([len(words) * 2]) + struct.pack(f">{len(words)}H", *words)
    for ours, theirs in ((InputRegisters(), ReadInputRegistersResponse()),
                         (HoldingRegisters(), ReadHoldingRegistersResponse())):
        ours.decode(frame)
        theirs.decode(frame)
        assert list(ours.registers) == list(theirs.registers) == words
    with pytest.raises(ModbusIOException, match="byte_count 148 > length of packet 3"):
        InputRegisters().decode(bytes([148, 0, 1]))
