"""`meterline broker` stops its Kafka-compatible broker (a child process) on SIGTERM as on
Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from meterline.kafka import free_port, port_open


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_broker_command_stops_its_broker(stop: signal.Signals) -> None:
    port = free_port()
    command = subprocess.Popen(
        [sys.executable, "-m", "meterline", "broker"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "METERLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"},
    )
    try:
        assert command.stdout is not None
        for line in command.stdout:
            if "broker ready" in line:
                break
        assert port_open("127.0.0.1", port)
        (broker,) = psutil.Process(command.pid).children()
        command.send_signal(stop)
        assert command.wait(30) == 0
        psutil.wait_procs([broker], timeout=10)
        assert not broker.is_running()
        assert not port_open("127.0.0.1", port)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
