"""Stopping background asyncio tasks the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel every task, then wait for each to finish; a task that ends with an exception (it
    failed before the cancel) is not raised here: its failure was its owner's to log."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
