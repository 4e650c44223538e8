"""Which ServiceAccounts the controller creates in a namespace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.controllers.serviceaccount import ServiceAccountController, missing_accounts
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder


def ns(phase: str | None = "Active", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "team"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


@pytest.mark.parametrize(
    ("namespace", "existing", "want"),
    [
        pytest.param(ns(), [], ["default"], id="new-namespace"),
        pytest.param(ns(None), [], ["default"], id="no-phase-yet"),
        pytest.param(ns(), ["builder"], ["default"], id="other-accounts-only"),
        pytest.param(ns(), ["default"], [], id="already-there"),
        pytest.param(ns("Terminating"), [], [], id="terminating"),
        pytest.param(ns(deleting=True), [], [], id="being-deleted"),
        pytest.param(None, [], [], id="gone"),
    ],
)
def test_missing_accounts(namespace: dict[str, Any] | None, existing: list[str], want: list[str]) -> None:
    made = missing_accounts(namespace, existing)
    assert [a["metadata"]["name"] for a in made] == want
    for account in made:
        assert account["metadata"]["namespace"] == "team"
        assert account["kind"] == "ServiceAccount"


class AlreadyThere(FakeClient):
    async def create(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        self.calls.append(("create", gv, plural, namespace, body["metadata"]["name"]))
        raise ApiError(409, "AlreadyExists", 'serviceaccounts "default" already exists')


@pytest.mark.parametrize(
    ("client", "accounts", "want_creates"),
    [
        pytest.param(FakeClient(), [], 1, id="creates-default"),
        pytest.param(FakeClient(), [{"metadata": {"name": "default", "namespace": "team"}}], 0, id="exists"),
        pytest.param(AlreadyThere(), [], 1, id="cache-behind-409-tolerated"),
    ],
)
def test_controller(client: FakeClient, accounts: list[dict[str, Any]], want_creates: int) -> None:
    informers = SharedInformers(client)  # type: ignore[arg-type]
    ctx = ControllerContext(client, informers, FakeClock(), lambda _: FakeRecorder())  # type: ignore[arg-type]
    controller = ServiceAccountController(ctx)
    informers.lister("v1", "namespaces").upsert(ns())
    for account in accounts:
        informers.lister("v1", "serviceaccounts").upsert(account)
    assert asyncio.run(controller.reconcile("team")) is None
    assert [c[:5] for c in client.calls] == [
        ("create", "v1", "serviceaccounts", "team", "default")
    ] * want_creates


def test_deleted_account_requeues_its_namespace() -> None:
    client = FakeClient()
    informers = SharedInformers(client)  # type: ignore[arg-type]
    ctx = ControllerContext(client, informers, FakeClock(), lambda _: FakeRecorder())  # type: ignore[arg-type]
    controller = ServiceAccountController(ctx)
    controller._account_deleted({"metadata": {"name": "default", "namespace": "team"}})
    assert asyncio.run(controller.queue.get()) == "team"
