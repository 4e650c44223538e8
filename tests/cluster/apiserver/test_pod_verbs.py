"""pods/binding and pods/eviction against the real MVCC state machine behind a store client that fails
on cue: each store error class must come out as the Status Kubernetes would answer, never as a
retry-then-409 or a 429 that hides an outcome-unknown write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cluster.apiserver.auth.authorizer import AlwaysAllow
from cluster.apiserver.errors import StatusError
from cluster.apiserver.pod_verbs import bind_pod, evict_pod
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import lookup
from cluster.apiserver.server import ApiServer
from cluster.apiserver.storage import DEADLINE_EXCEEDED, OUTCOME_UNKNOWN, ObjectStore, status_for_store_error
from cluster.store.api import Unavailable
from cluster.store.mvcc import RequestTooLarge
from tests.cluster.apiserver.faulty_store import Fault, FaultyStore

PODS = lookup("", "v1", "pods")
assert PODS is not None
POD_KEY = "/registry/pods/default/p"
PDB_KEY = "/registry/poddisruptionbudgets/default/budget"
LOST = Unavailable("store unavailable for propose: TimeoutError()")


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "default",
            "uid": "u1",
            "labels": {"app": "web"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "c", "image": "x"}], "terminationGracePeriodSeconds": 0, **spec},
        # Running and Ready: a healthy pod, the one a disruption budget protects.
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pdb(name: str = "budget", allowed: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 1},
        "status": {"disruptionsAllowed": allowed, "desiredHealthy": 1, "currentHealthy": 1},
    }


def relabel(store: FaultyStore) -> None:
    """Another writer touches the pod without binding it: only its resourceVersion moves."""
    obj = store.object(POD_KEY)
    assert obj is not None
    obj["metadata"]["labels"]["touched"] = "yes"
    store.put_object(POD_KEY, obj)


def bind_elsewhere(store: FaultyStore) -> None:
    obj = store.object(POD_KEY)
    assert obj is not None
    obj["spec"]["nodeName"] = "n2"
    store.put_object(POD_KEY, obj)


def touch_budget(store: FaultyStore) -> None:
    obj = store.object(PDB_KEY)
    assert obj is not None
    obj["metadata"]["labels"] = {"touched": "yes"}
    store.put_object(PDB_KEY, obj)


@dataclass(frozen=True)
class Expect:
    code: int  # 201: success
    reason: str = ""
    message: tuple[str, ...] = ()  # substrings of the Status message
    not_in_message: tuple[str, ...] = ()


TIMEOUT_UNKNOWN = Expect(504, "Timeout", (f"Timeout: {DEADLINE_EXCEEDED}", OUTCOME_UNKNOWN))
TIMEOUT_READ = Expect(504, "Timeout", (f"Timeout: {DEADLINE_EXCEEDED}",), (OUTCOME_UNKNOWN,))
REFUSED = Expect(500, "InternalError", ("Internal error occurred: the store refused", "request is too large"))
UNKNOWN_500 = Expect(
    500, "InternalError", ("Internal error occurred: RuntimeError: replica died", OUTCOME_UNKNOWN)
)


def run(store: FaultyStore, verb: Callable[[Registry], Any]) -> tuple[int, StatusError | None]:
    """Run a verb against ``store``; (201, None) on success, else the StatusError's code and itself."""

    async def go() -> tuple[int, StatusError | None]:
        try:
            await verb(registry)
        except StatusError as e:
            return e.code, e
        return 201, None

    registry = Registry(ObjectStore(store))  # type: ignore[arg-type]
    return asyncio.run(go())


def check(code: int, err: StatusError | None, want: Expect) -> None:
    assert code == want.code, err.body() if err else "succeeded"
    if err is None:
        return
    assert err.reason == want.reason
    for text in want.message:
        assert text in err.message
    for text in want.not_in_message:
        assert text not in err.message


BINDING = {"target": {"kind": "Node", "name": "n1"}}


@pytest.mark.parametrize(
    ("seed", "txn", "reads", "binding", "want", "bound_to", "txns"),
    [
        pytest.param(pod(), [], [], BINDING, Expect(201), "n1", 1, id="binds"),
        pytest.param(
            pod(), [Fault(LOST)], [], BINDING, TIMEOUT_UNKNOWN, None, 1, id="unavailable-not-applied"
        ),
        pytest.param(
            pod(),
            [Fault(LOST, after_apply=True)],
            [],
            BINDING,
            TIMEOUT_UNKNOWN,
            "n1",
            1,
            id="unavailable-applied",
        ),
        pytest.param(
            pod(), [Fault(RequestTooLarge(9, 1))], [], BINDING, REFUSED, None, 1, id="store-refused"
        ),
        pytest.param(
            pod(),
            [Fault(RuntimeError("replica died"))],
            [],
            BINDING,
            UNKNOWN_500,
            None,
            1,
            id="unexpected-error",
        ),
        pytest.param(pod(), [], [Fault(LOST)], BINDING, TIMEOUT_READ, None, 0, id="read-unavailable"),
        pytest.param(
            pod(), [Fault(concurrent=relabel)], [], BINDING, Expect(201), "n1", 2, id="version-race-retried"
        ),
        pytest.param(
            pod(),
            [Fault(concurrent=bind_elsewhere)],
            [],
            BINDING,
            Expect(
                409,
                "Conflict",
                ('Operation cannot be fulfilled on pods/binding "p"', 'assigned to node "n2"'),
            ),
            "n2",
            1,
            id="bound-by-another-scheduler",
        ),
        pytest.param(
            pod(nodeName="n3"),
            [],
            [],
            BINDING,
            Expect(409, "Conflict", ('pod p is already assigned to node "n3"',)),
            "n3",
            0,
            id="already-bound",
        ),
        pytest.param(
            pod(schedulingGates=[{"name": "g"}]),
            [],
            [],
            BINDING,
            Expect(409, "Conflict", ("pod p has non-empty .spec.schedulingGates",)),
            None,
            0,
            id="gated",
        ),
        pytest.param(
            pod(),
            [],
            [],
            {**BINDING, "metadata": {"uid": "other"}},
            Expect(409, "Conflict", ("UID in precondition: other",)),
            None,
            0,
            id="uid-precondition",
        ),
        pytest.param(
            None, [], [], BINDING, Expect(404, "NotFound", ('pods "p" not found',)), None, 0, id="missing"
        ),
        pytest.param(
            pod(),
            [],
            [],
            {"target": {}},
            Expect(400, "BadRequest", ("must name a node",)),
            None,
            0,
            id="no-node",
        ),
    ],
)
def test_binding_status(
    seed: dict[str, Any] | None,
    txn: list[Fault | None],
    reads: list[Fault | None],
    binding: dict[str, Any],
    want: Expect,
    bound_to: str | None,
    txns: int,
) -> None:
    store = FaultyStore()
    if seed is not None:
        store.put_object(POD_KEY, seed)
    store.txn_faults, store.range_faults = list(txn), list(reads)
    code, err = run(store, lambda r: bind_pod(r, PODS, "default", "p", binding))
    check(code, err, want)
    stored = store.object(POD_KEY)
    assert (stored["spec"].get("nodeName") if stored else None) == bound_to
    assert store.txns == txns  # an outcome-unknown write is never sent twice


def test_binding_sets_pod_scheduled() -> None:
    store = FaultyStore()
    store.put_object(POD_KEY, pod())
    assert run(store, lambda r: bind_pod(r, PODS, "default", "p", BINDING))[0] == 201
    stored = store.object(POD_KEY)
    assert stored is not None
    assert next(c for c in stored["status"]["conditions"] if c["type"] == "PodScheduled")["status"] == "True"


EVICT: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}


@pytest.mark.parametrize(
    ("pdbs", "txn", "reads", "eviction", "want", "pod_left", "allowed_left"),
    [
        pytest.param([], [], [], EVICT, Expect(201), False, None, id="no-budget"),
        pytest.param([pdb(allowed=1)], [], [], EVICT, Expect(201), False, 0, id="budget-allows"),
        pytest.param(
            [pdb(allowed=0)],
            [],
            [],
            EVICT,
            Expect(429, "TooManyRequests", ("would violate the pod's disruption budget",)),
            True,
            0,
            id="budget-forbids",
        ),
        pytest.param([], [Fault(LOST)], [], EVICT, TIMEOUT_UNKNOWN, True, None, id="delete-unavailable"),
        pytest.param(
            [],
            [Fault(LOST, after_apply=True)],
            [],
            EVICT,
            TIMEOUT_UNKNOWN,
            False,
            None,
            id="delete-applied-unknown",
        ),
        pytest.param(
            [], [Fault(RuntimeError("replica died"))], [], EVICT, UNKNOWN_500, True, None, id="delete-error"
        ),
        pytest.param([], [Fault(RequestTooLarge(9, 1))], [], EVICT, REFUSED, True, None, id="delete-refused"),
        pytest.param(
            [pdb(allowed=1)],
            [Fault(LOST)],
            [],
            EVICT,
            TIMEOUT_UNKNOWN,
            True,
            1,
            id="budget-write-unavailable",
        ),
        pytest.param(
            [pdb(allowed=1)],
            [Fault(RuntimeError("replica died"))],
            [],
            EVICT,
            UNKNOWN_500,
            True,
            1,
            id="budget-error",
        ),
        pytest.param(
            [pdb(allowed=1)],
            [Fault(concurrent=touch_budget)],
            [],
            EVICT,
            Expect(201),
            False,
            0,
            id="budget-race-retried",
        ),
        pytest.param([], [], [Fault(LOST)], EVICT, TIMEOUT_READ, True, None, id="read-unavailable"),
        pytest.param(
            [pdb(allowed=1)],
            [],
            [None, Fault(LOST)],
            EVICT,
            TIMEOUT_READ,
            True,
            1,
            id="budget-list-unavailable",
        ),
        pytest.param(
            [pdb("a", allowed=1), pdb("b", allowed=1)],
            [],
            [],
            EVICT,
            Expect(500, "InternalError", ("more than one PodDisruptionBudget",)),
            True,
            None,
            id="two-budgets",
        ),
        pytest.param(
            [],
            [],
            [],
            {**EVICT, "deleteOptions": {"preconditions": {"uid": "other"}}},
            Expect(409, "Conflict", ("UID in precondition: other",)),
            True,
            None,
            id="uid-precondition",
        ),
    ],
)
def test_eviction_status(
    pdbs: list[dict[str, Any]],
    txn: list[Fault | None],
    reads: list[Fault | None],
    eviction: dict[str, Any],
    want: Expect,
    pod_left: bool,
    allowed_left: int | None,
) -> None:
    store = FaultyStore()
    store.put_object(POD_KEY, pod())
    for budget in pdbs:
        store.put_object(f"/registry/poddisruptionbudgets/default/{budget['metadata']['name']}", budget)
    store.txn_faults, store.range_faults = list(txn), list(reads)
    code, err = run(store, lambda r: evict_pod(r, PODS, "default", "p", eviction))
    check(code, err, want)
    assert (store.object(POD_KEY) is not None) == pod_left
    if allowed_left is not None:
        budget = store.object(PDB_KEY)
        assert budget is not None and budget["status"]["disruptionsAllowed"] == allowed_left


def test_eviction_of_missing_pod_is_404() -> None:
    store = FaultyStore()
    code, err = run(store, lambda r: evict_pod(r, PODS, "default", "p", EVICT))
    check(code, err, Expect(404, "NotFound", ('pods "p" not found',)))


@pytest.mark.parametrize(
    ("error", "write", "want"),
    [
        pytest.param(LOST, True, TIMEOUT_UNKNOWN, id="unavailable-write"),
        pytest.param(LOST, False, TIMEOUT_READ, id="unavailable-read"),
        pytest.param(RequestTooLarge(9, 1), True, REFUSED, id="store-error"),
        pytest.param(RuntimeError("replica died"), True, UNKNOWN_500, id="other-write"),
        pytest.param(
            RuntimeError("replica died"),
            False,
            Expect(500, "InternalError", ("RuntimeError: replica died",), (OUTCOME_UNKNOWN,)),
            id="other-read",
        ),
    ],
)
def test_status_for_store_error(error: Exception, write: bool, want: Expect) -> None:
    err = status_for_store_error(error, write=write)
    check(err.code, err, want)


@pytest.mark.parametrize(
    ("method", "path", "body", "want"),
    [
        pytest.param("POST", "pods/p/binding", BINDING, TIMEOUT_UNKNOWN, id="binding-write-lost"),
        pytest.param("POST", "pods/p/eviction", EVICT, TIMEOUT_UNKNOWN, id="eviction-write-lost"),
        pytest.param("PUT", "configmaps/c", {"metadata": {"name": "c"}}, TIMEOUT_READ, id="update-read-lost"),
        pytest.param(
            "PUT", "configmaps/c", {"metadata": {"name": "c"}}, TIMEOUT_UNKNOWN, id="update-write-lost"
        ),
    ],
)
def test_the_server_answers_a_kubernetes_status(
    method: str, path: str, body: dict[str, Any], want: Expect
) -> None:
    """Through the real routes and error middleware: the HTTP code, headers and v1.Status body."""
    store = FaultyStore()
    store.put_object(POD_KEY, pod())
    store.put_object("/registry/configmaps/default/c", {"metadata": {"name": "c", "namespace": "default"}})
    if want is TIMEOUT_READ:
        store.range_faults = [Fault(LOST)]
    else:
        store.txn_faults = [Fault(LOST)]

    async def go() -> tuple[int, dict[str, Any]]:
        # no authorization caches, system objects or background loops: only the request
        server = ApiServer(store, authorizer=AlwaysAllow())  # type: ignore[arg-type]
        app = server.app(insecure_local=True)
        app.on_startup.clear()
        app.on_cleanup.clear()
        async with TestClient(TestServer(app)) as client:
            resp = await client.request(method, f"/api/v1/namespaces/default/{path}", json=body)
            return resp.status, await resp.json()

    status, reply = asyncio.run(go())
    assert status == want.code
    assert (reply["kind"], reply["status"], reply["code"], reply["reason"]) == (
        "Status",
        "Failure",
        want.code,
        want.reason,
    )
    err = StatusError(reply["code"], reply["reason"], reply["message"])
    check(err.code, err, want)


def budget(allowed: int, desired: int = 1, current: int = 1, **extra: Any) -> dict[str, Any]:
    b = pdb(allowed=allowed)
    b["status"].update(desiredHealthy=desired, currentHealthy=current)
    for key, value in extra.items():
        if key in ("generation",):
            b["metadata"][key] = value
        elif key in ("selector", "unhealthyPodEvictionPolicy"):
            b["spec"][key] = value
        else:
            b["status"][key] = value
    return b


NOT_READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
FORBIDS = Expect(
    429, "TooManyRequests", ("Cannot evict pod as it would violate the pod's disruption budget.",)
)


@pytest.mark.parametrize(
    ("pod_status", "the_budget", "eviction", "want", "pod_left", "allowed_left"),
    [
        pytest.param(
            {"phase": "Pending"}, budget(0), EVICT, Expect(201), False, 0, id="pending-ignores-budget"
        ),
        pytest.param(
            {"phase": "Succeeded"}, budget(0), EVICT, Expect(201), False, 0, id="finished-ignores-budget"
        ),
        pytest.param(NOT_READY, budget(0), EVICT, Expect(201), False, 0, id="unready-pod-budget-met"),
        pytest.param(NOT_READY, budget(0, desired=2), EVICT, FORBIDS, True, 0, id="unready-pod-budget-short"),
        pytest.param(
            NOT_READY,
            budget(0, desired=2, unhealthyPodEvictionPolicy="AlwaysAllow"),
            EVICT,
            Expect(201),
            False,
            0,
            id="unready-pod-always-allow",
        ),
        pytest.param(
            None,
            budget(1, generation=2, observedGeneration=1),
            EVICT,
            Expect(429, "TooManyRequests", ("would violate",)),
            True,
            1,
            id="budget-status-behind-spec",
        ),
        pytest.param(
            None,
            budget(-1),
            EVICT,
            Expect(403, "Forbidden", ("pdb disruptions allowed is negative",)),
            True,
            -1,
            id="negative-allowed",
        ),
        pytest.param(
            None,
            budget(1),
            {**EVICT, "deleteOptions": {"dryRun": ["All"]}},
            Expect(201),
            True,
            1,
            id="dry-run",
        ),
        pytest.param(
            None, budget(0, selector={}), EVICT, Expect(201), False, 0, id="empty-selector-protects-nothing"
        ),
    ],
)
def test_eviction_follows_budget_rules(
    pod_status: dict[str, Any] | None,
    the_budget: dict[str, Any],
    eviction: dict[str, Any],
    want: Expect,
    pod_left: bool,
    allowed_left: int,
) -> None:
    store = FaultyStore()
    p = pod()
    if pod_status is not None:
        p["status"] = pod_status
    store.put_object(POD_KEY, p)
    store.put_object(PDB_KEY, the_budget)
    code, err = run(store, lambda r: evict_pod(r, PODS, "default", "p", eviction))
    check(code, err, want)
    assert (store.object(POD_KEY) is not None) == pod_left
    stored = store.object(PDB_KEY)
    assert stored is not None and stored["status"]["disruptionsAllowed"] == allowed_left


def test_granted_eviction_is_recorded_in_the_budget() -> None:
    store = FaultyStore()
    store.put_object(POD_KEY, pod())
    store.put_object(PDB_KEY, budget(1, desired=2, current=3))
    assert run(store, lambda r: evict_pod(r, PODS, "default", "p", EVICT))[0] == 201
    stored = store.object(PDB_KEY)
    assert stored is not None
    assert list(stored["status"]["disruptedPods"]) == ["p"]
    assert [(c["type"], c["status"], c["reason"]) for c in stored["status"]["conditions"]] == [
        ("DisruptionAllowed", "False", "InsufficientPods")
    ]


def test_budget_refusal_names_the_budget_and_sets_no_retry_after() -> None:
    store = FaultyStore()
    store.put_object(POD_KEY, pod())
    store.put_object(PDB_KEY, budget(0, desired=3, current=3))
    code, err = run(store, lambda r: evict_pod(r, PODS, "default", "p", EVICT))
    assert code == 429 and err is not None
    assert not err.retry_after  # kubectl drain waits and retries by itself
    assert err.details == {
        "causes": [
            {
                "reason": "DisruptionBudget",
                "message": "The disruption budget budget needs 3 healthy pods and has 3 currently",
            }
        ]
    }
