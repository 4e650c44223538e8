"""The StatefulSet controller's shell against an in-memory API (no Ray, no server): the listers are
filled from the fake client between passes, as the informers would."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from cluster.client.errors import ApiError
from cluster.controllers.runtime import ControllerContext, SharedInformers
from cluster.controllers.statefulset import revisions
from cluster.controllers.statefulset.controller import StatefulSetController
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder
from tests.cluster.controllers.statefulset.objects import make_sts

READY_AT = "2026-01-01T00:00:00Z"
RESOURCES = (
    ("apps/v1", "statefulsets"),
    ("v1", "pods"),
    ("apps/v1", "controllerrevisions"),
    ("v1", "persistentvolumeclaims"),
)


class StrictFakeClient(FakeClient):
    """Creating an object that exists is a 409 AlreadyExists, as with an API server."""

    async def create(
        self, gv: str, plural: str, body: dict[str, Any], namespace: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        if (gv, plural, namespace, body["metadata"]["name"]) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{body["metadata"]["name"]}" already exists')
        return await super().create(gv, plural, body, namespace, **kw)


class Sim:
    def __init__(self, sts: dict[str, Any]) -> None:
        self.client = StrictFakeClient()
        self.clock = FakeClock()
        self.recorder = FakeRecorder()
        ctx = ControllerContext(self.client, SharedInformers(None), self.clock, lambda _: self.recorder)  # type: ignore[arg-type]
        self.ctx = ctx
        self.controller = StatefulSetController(ctx)
        self.client.put("apps/v1", "statefulsets", sts)

    def sync(self) -> None:
        for (_gv, plural, _ns, _name), obj in self.client.objects.items():
            if plural == "pods":
                obj.setdefault("status", {}).setdefault("phase", "Pending")
        for gv, plural in RESOURCES:
            objs = [
                copy.deepcopy(o) for (g, p, _, _), o in self.client.objects.items() if (g, p) == (gv, plural)
            ]
            self.ctx.informers.lister(gv, plural).replace(objs)

    def step(self) -> float | None:
        self.sync()
        again = asyncio.run(self.controller.reconcile("ns/db"))
        self.sync()
        return again

    def names(self, plural: str = "pods") -> list[str]:
        return sorted(n for (_, p, _, n) in self.client.objects if p == plural)

    def obj(self, gv: str, plural: str, name: str) -> dict[str, Any]:
        found = self.client.stored(gv, plural, name, "ns")
        assert found is not None, f"{plural}/{name} missing"
        return found

    def ready(self, *names: str) -> None:
        for name in names:
            self.obj("v1", "pods", name)["status"] = {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ],
            }

    def sts(self) -> dict[str, Any]:
        return self.obj("apps/v1", "statefulsets", "db")

    def edit(self, **spec: Any) -> None:
        sts = self.sts()
        sts["spec"].update(spec)
        sts["metadata"]["generation"] += 1

    def messages(self) -> list[tuple[str, str]]:
        return [(reason, message) for _, reason, message, _ in self.recorder.events]


def test_ordered_creation_waits_for_ready() -> None:
    sim = Sim(make_sts(3))
    sim.step()
    assert sim.names() == ["db-0"]
    sim.step()
    assert sim.names() == ["db-0"], "db-1 must wait for db-0 to be Ready"
    sim.ready("db-0")
    sim.step()
    assert sim.names() == ["db-0", "db-1"]
    sim.ready("db-1")
    sim.step()
    sim.ready("db-2")
    sim.step()
    assert sim.names() == ["db-0", "db-1", "db-2"]
    assert sim.messages() == [
        ("SuccessfulCreate", f"create Pod db-{i} in StatefulSet db successful") for i in range(3)
    ]
    status = sim.sts()["status"]
    (rev,) = sim.names("controllerrevisions")
    assert status["replicas"] == 3 and status["readyReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"] == rev
    assert status["currentReplicas"] == status["updatedReplicas"] == 3
    assert status["observedGeneration"] == 1 and status["collisionCount"] == 0
    pod = sim.obj("v1", "pods", "db-1")
    assert pod["metadata"]["labels"]["controller-revision-hash"] == rev
    assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db-svc"


def test_deleted_pod_returns_with_same_name() -> None:
    sim = Sim(make_sts(2, parallel=True))
    sim.step()
    sim.ready("db-0", "db-1")
    del sim.client.objects[("v1", "pods", "ns", "db-1")]
    sim.step()
    assert sim.names() == ["db-0", "db-1"]


def test_claims_created_before_pod_and_kept_on_scale_down() -> None:
    sim = Sim(make_sts(2, claims=("data",)))
    sim.step()
    creates = [c[2] for c in sim.client.writes("create") if c[2] in ("pods", "persistentvolumeclaims")]
    assert creates == ["persistentvolumeclaims", "pods"]
    assert ("SuccessfulCreate", "create Claim data-db-0 Pod db-0 in StatefulSet db success") in sim.messages()
    sim.ready("db-0")
    sim.step()
    sim.ready("db-1")
    sim.step()
    assert sim.names("persistentvolumeclaims") == ["data-db-0", "data-db-1"]
    sim.edit(replicas=0)
    sim.step()
    assert sim.names() == ["db-0"]
    sim.step()
    assert sim.names() == []
    assert sim.names("persistentvolumeclaims") == ["data-db-0", "data-db-1"]
    claim = sim.obj("v1", "persistentvolumeclaims", "data-db-1")
    assert "ownerReferences" not in claim["metadata"]


def test_scale_down_highest_first_one_at_a_time() -> None:
    sim = Sim(make_sts(3, parallel=True))
    sim.step()
    sim.ready("db-0", "db-1", "db-2")
    sim.sts()["spec"]["podManagementPolicy"] = "OrderedReady"
    sim.edit(replicas=1)
    sim.step()
    assert sim.names() == ["db-0", "db-1"]
    sim.step()
    assert sim.names() == ["db-0"]
    deletes = [m for r, m in sim.messages() if r == "SuccessfulDelete"]
    assert deletes == [
        "delete Pod db-2 in StatefulSet db successful",
        "delete Pod db-1 in StatefulSet db successful",
    ]


def test_rolling_update_descending_then_revision_completes() -> None:
    sim = Sim(make_sts(3, parallel=True))
    sim.step()
    sim.ready("db-0", "db-1", "db-2")
    sim.step()
    first = sim.sts()["status"]["currentRevision"]
    template = copy.deepcopy(sim.sts()["spec"]["template"])
    template["spec"]["containers"][0]["image"] = "busybox:2"
    sim.edit(template=template)
    order = []
    for _ in range(12):
        before = {n: sim.obj("v1", "pods", n)["metadata"]["uid"] for n in sim.names()}
        sim.step()
        order += [n for n in before if n not in sim.names()]
        sim.ready(*sim.names())
    status = sim.sts()["status"]
    assert order == ["db-2", "db-1", "db-0"]
    assert status["updateRevision"] != first
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == 3
    revs = [
        sim.obj("apps/v1", "controllerrevisions", n)["revision"] for n in sim.names("controllerrevisions")
    ]
    assert sorted(revs) == [1, 2]
    assert all(sim.obj("v1", "pods", n)["spec"]["containers"][0]["image"] == "busybox:2" for n in sim.names())


def test_orphan_pod_is_adopted() -> None:
    sts = make_sts(1)
    sim = Sim(sts)
    orphan = {
        "metadata": {"name": "db-0", "namespace": "ns", "labels": {"app": "db"}},
        "spec": {"containers": []},
        "status": {"phase": "Running"},
    }
    sim.client.put("v1", "pods", orphan)
    sim.step()
    refs = sim.obj("v1", "pods", "db-0")["metadata"]["ownerReferences"]
    assert [(r["kind"], r["name"], r["controller"]) for r in refs] == [("StatefulSet", "db", True)]
    assert sim.names() == ["db-0"]


def test_revision_name_collision_bumps_collision_count() -> None:
    sts = make_sts(1)
    sim = Sim(sts)
    squatter = revisions.new_revision(sts, 1, 0)
    squatter["data"] = {"spec": {"template": {"other": True}}}
    squatter["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    sim.client.put("apps/v1", "controllerrevisions", squatter)
    sim.step()
    status = sim.sts()["status"]
    assert status["collisionCount"] == 1
    assert status["updateRevision"] == revisions.new_revision(sts, 1, 1)["metadata"]["name"]


@pytest.mark.parametrize(
    ("policy", "want_owner"),
    [
        pytest.param(("Retain", "Delete"), "StatefulSet", id="when-deleted-delete"),
        pytest.param(("Retain", "Retain"), None, id="retain"),
    ],
)
def test_claim_owner_for_retention(policy: tuple[str, str], want_owner: str | None) -> None:
    sim = Sim(make_sts(1, claims=("data",), retention=policy))
    sim.step()
    refs = sim.obj("v1", "persistentvolumeclaims", "data-db-0")["metadata"].get("ownerReferences") or []
    assert [r["kind"] for r in refs] == ([want_owner] if want_owner else [])
