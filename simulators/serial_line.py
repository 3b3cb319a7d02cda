"""An RS-485 line on this machine: two pseudo-terminals joined back to back.

The simulator's Modbus RTU server opens one end; a master (the gateway, mbpoll) opens the
other through ``link``, a symlink to its device path, as it would open /dev/ttyUSB0. Bytes
written at either end come out at the other, unchanged. (A single pseudo-terminal would not
do: its master side is an open file of this process with no path another process can open.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path


class SerialLine:
    def __init__(self, link: Path) -> None:
        self.link = link
        self._fds: list[int] = []
        self.server_port = ""  # the device path the simulator's server opens
        self.device = ""  # the device path a master opens (``link`` points to it)

    def open(self) -> None:
        server_master, server_side = os.openpty()
        master_master, master_side = os.openpty()
        self._fds = [server_master, server_side, master_master, master_side]
        for fd in (server_side, master_side):
            tty.setraw(fd)  # no echo, no line editing: bytes as they are
        for fd in (server_master, master_master):
            os.set_blocking(fd, False)
        self.server_port = os.ttyname(server_side)
        self.device = os.ttyname(master_side)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(self.device)
        loop = asyncio.get_running_loop()
        loop.add_reader(server_master, self._relay, server_master, master_master)
        loop.add_reader(master_master, self._relay, master_master, server_master)

    @staticmethod
    def _relay(source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, OSError):
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view):]
            except OSError:  # nobody reads the other end and its buffer is full: bytes lost,
                return  # as on a line nobody listens to

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self._fds[0], self._fds[2]) if self._fds else ():
            loop.remove_reader(fd)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        with contextlib.suppress(FileNotFoundError):
            if self.link.is_symlink() and os.readlink(self.link) == self.device:
                self.link.unlink()
