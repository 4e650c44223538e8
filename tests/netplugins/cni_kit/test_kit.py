"""The CNI conformance kit against every plugin of ``conftest.PLUGINS``, one test per case.

A case the table marks not applicable must be one the kit itself skips (with its reason in the
kit's report); every other case must pass.
"""

from __future__ import annotations

import asyncio

import pytest

from netplugins.cni.kit import CASES, PASS, SKIP, Kit, run_case, session
from tests.netplugins.cni_kit.conftest import Served


@pytest.fixture(scope="module")
def kit(served: Served) -> Kit:
    return Kit(served.socket, capacity=served.plugin.capacity)


async def _run(kit: Kit, case: str) -> tuple[str, str]:
    async with session(kit):
        result = await run_case(kit, case)
    return result.outcome, result.detail


@pytest.mark.parametrize("case", [c for c in CASES if c != "cleanup"])
def test_case(served: Served, kit: Kit, case: str) -> None:
    outcome, detail = asyncio.run(_run(kit, case))
    if case in served.plugin.not_applicable:
        assert outcome == SKIP, f"{case} was expected not to apply: {detail}"
    else:
        assert outcome == PASS, detail


def test_no_netns_left(served: Served, kit: Kit) -> None:
    outcome, detail = asyncio.run(_run(kit, "cleanup"))
    assert outcome == PASS, detail
