"""A standard Modbus master reads the simulators with the command lines each profile
documents (mbpoll: Debian package ``mbpoll``; these tests need it installed)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from meterline.profiles import shipped_profile, shipped_profiles
from simulators.config import MeterGroup, RtuLine, SimulatorConfig
from simulators.fleet import serve, serve_fleet

pytestmark = pytest.mark.skipif(shutil.which("mbpoll") is None,
                                reason="mbpoll is not installed (apt install mbpoll)")


async def mbpoll(line: str) -> str:
    process = await asyncio.create_subprocess_shell(
        line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, f"{line}\n{text}"
    return text


def values(output: str) -> dict[int, float]:
    """``[reference]: value`` lines of mbpoll's output."""
    return {int(ref): float(value)
            for ref, value in re.findall(r"^\[(\d+)\]:\s+(-?[\d.e+]+)", output, re.MULTILINE)}


@pytest.mark.parametrize("profile_id", sorted(shipped_profiles()))
async def test_the_documented_mbpoll_lines_read_each_profile(profile_id: str) -> None:
    profile = shipped_profile(profile_id)
    async with serve_fleet(port=0, meters=2, profile=profile_id, serial_base=7_000) as fleet:
        outputs = [await mbpoll(line.format(host="127.0.0.1", port=fleet.port, unit=2))
                   for line in profile.mbpoll]
    read = {ref: value for output in outputs for ref, value in values(output).items()}
    assert read.get(profile.serial.address) == 7_001, read  # the serial, decoded right
    billed = profile.billing[0]
    if billed.address in read:  # the billed counter, in raw steps or as a float
        assert read[billed.address] > 0


async def test_mbpoll_reads_a_meter_on_the_rtu_line(tmp_path: Path) -> None:
    link = tmp_path / "ttyMETERS"
    config = SimulatorConfig(rtu=[RtuLine(name="rs485-1", link=link, meters=[
        MeterGroup(units=[3], profile="pulse-counter-32", serial_base=8_000)])])
    async with serve(config):
        output = await mbpoll(f"mbpoll -m rtu -b 9600 -P none -a 3 -0 -1 -t 4:int -r 16 -c 1 "
                              f"{link}")
    assert values(output) == {16: 8_000}
