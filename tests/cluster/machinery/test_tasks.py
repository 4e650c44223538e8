"""cancel_and_wait stops running tasks and does not re-raise a failed one's exception."""

from __future__ import annotations

import asyncio

from cluster.machinery.tasks import cancel_and_wait


def test_running_tasks_are_cancelled_and_failed_ones_do_not_raise() -> None:
    async def main() -> tuple[bool, bool]:
        async def forever() -> None:
            await asyncio.sleep(3600)

        async def fails() -> None:
            raise RuntimeError("already failed")

        running, failed = asyncio.create_task(forever()), asyncio.create_task(fails())
        await asyncio.sleep(0)
        await cancel_and_wait([running, failed])
        return running.cancelled(), failed.done() and not failed.cancelled()

    assert asyncio.run(main()) == (True, True)
