"""The controller manager's identities (kube-controller-manager's --use-service-account-credentials):
each controller writes and sends its events with its own ServiceAccount's client, the shared
informers read with the manager's. Fake clients, no Ray."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from cluster.controllers.manager import ControllerManager
from cluster.controllers.runtime import Controller
from tests.cluster.controllers.fake_client import FakeClient


class Writer(Controller):
    """Writes one ConfigMap named after its account and records an event about it."""

    NAME: ClassVar[str] = "writer"
    COMPONENT: ClassVar[str] = "writer-controller"

    async def reconcile(self, key: str) -> float | None:
        made = await self.client.create("v1", "configmaps", {"metadata": {"name": key}}, "default")
        self.recorder.event({"kind": "ConfigMap", "apiVersion": "v1", **made}, "Normal", "Made", key)
        return None


class Other(Writer):
    NAME: ClassVar[str] = "other"


def writes(client: FakeClient) -> list[tuple[Any, ...]]:
    return [(call[2], call[4]) for call in client.calls if call[0] == "create"]


async def run_manager(accounts: dict[str, str], clients: dict[str, FakeClient] | None) -> FakeClient:
    shared = FakeClient()
    manager = ControllerManager(
        shared,  # type: ignore[arg-type]
        ["writer", "other"],
        registry={"writer": Writer, "other": Other},
        clients=None if clients is None else clients.__getitem__,  # type: ignore[arg-type]
        accounts=accounts,
    )
    await manager.start(sync_timeout=1)
    for name, controller in manager.controllers.items():
        controller.enqueue(f"made-by-{name}")
    for _ in range(200):
        await asyncio.sleep(0.01)
        everyone = [shared, *(clients or {}).values()]
        if sum(len([w for w in writes(c) if w[0] == "events"]) for c in everyone) >= 2:
            break
    await manager.stop()
    return shared


def test_each_controller_writes_as_its_service_account() -> None:
    clients = {"writer-sa": FakeClient(), "other-sa": FakeClient()}
    shared = asyncio.run(run_manager({"writer": "writer-sa", "other": "other-sa"}, clients))
    assert writes(shared) == []  # the manager's identity only reads
    for name in ("writer", "other"):
        made = writes(clients[f"{name}-sa"])
        assert ("configmaps", f"made-by-{name}") in made
        assert [w for w in made if w[0] == "events"], "the controller's events go out as its account"
        assert all(w[1] != f"made-by-{'other' if name == 'writer' else 'writer'}" for w in made)


def test_without_account_clients_everything_uses_the_manager_client() -> None:
    shared = asyncio.run(run_manager({"writer": "writer-sa"}, None))
    assert {("configmaps", "made-by-writer"), ("configmaps", "made-by-other")} <= set(writes(shared))
