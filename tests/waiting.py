"""Waiting for a state that another process produces (a row, a coil, an HTTP answer).

The services run in other processes or behind brokers, so the test has no event of theirs to
await; it observes the outcome the way a user would, checking often, with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


async def until(predicate: Callable[[], Awaitable[T]], timeout: float = 60.0,
                what: str = "") -> T:
    """The first truthy result of ``predicate``; fail the test after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := await predicate()):  # noqa: ASYNC110 - see module docstring
                await asyncio.sleep(0.05)
            return result
    except TimeoutError:
        pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
