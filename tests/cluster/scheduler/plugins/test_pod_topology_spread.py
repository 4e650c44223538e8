"""PodTopologySpread: Filter, Score and defaulting over small clusters of hollow nodes."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework import Code, CycleState, Snapshot, SnapshotHandle
from cluster.scheduler.plugins import pod_topology_spread as pts

ZONE = pts.ZONE
HOST = pts.HOSTNAME


def node(name: str, zone: str | None, taint: bool = False, **labels: str) -> dict[str, Any]:
    all_labels = {HOST: name, **labels}
    if zone is not None:
        all_labels[ZONE] = zone
    spec: dict[str, Any] = {}
    if taint:
        spec["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    return {"metadata": {"name": name, "labels": all_labels}, "spec": spec, "status": {}}


def pod(
    name: str,
    on: str | None = None,
    labels: dict[str, str] | None = None,
    ns: str = "default",
    constraints: list[dict[str, Any]] | None = None,
    **spec_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c"}], **spec_extra}
    if on:
        spec["nodeName"] = on
    if constraints:
        spec["topologySpreadConstraints"] = constraints
    meta = {
        "name": name,
        "namespace": ns,
        "uid": name,
        "labels": {"app": "web"} if labels is None else labels,
    }
    return {"metadata": meta, "spec": spec}


def spread(key: str, skew: int = 1, when: str = pts.DO_NOT_SCHEDULE, **extra: Any) -> dict[str, Any]:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


def run_filter(
    incoming: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> dict[str, str]:
    snapshot = Snapshot(nodes, pods)
    plugin = pts.new({}, SnapshotHandle(snapshot))
    state = CycleState()
    if plugin.pre_filter(state, incoming, snapshot.node_infos).is_skip():
        return {info.name: "skip" for info in snapshot.node_infos}
    out = {}
    for info in snapshot.node_infos:
        status = plugin.filter(state, incoming, info)
        out[info.name] = "ok" if status.is_success() else f"{int(status.code)}:{status.reasons[0]}"
    return out


SKEW = f"{int(Code.UNSCHEDULABLE)}:{pts.REASON_CONSTRAINTS_NOT_MATCH}"
LABEL = f"{int(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)}:{pts.REASON_NODE_LABEL_NOT_MATCH}"
ZONES = [node("n1", "a"), node("n2", "a"), node("n3", "b"), node("n4", "b")]


@pytest.mark.parametrize(
    ("incoming", "nodes", "pods", "want"),
    [
        pytest.param(
            pod("p"), ZONES, [], dict.fromkeys(("n1", "n2", "n3", "n4"), "skip"), id="no-constraints"
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE)]),
            ZONES,
            [pod("x1", "n1"), pod("x2", "n2"), pod("x3", "n3")],
            {"n1": SKEW, "n2": SKEW, "n3": "ok", "n4": "ok"},
            id="zone-skew",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, skew=2)]),
            ZONES,
            [pod("x1", "n1"), pod("x2", "n2"), pod("x3", "n3")],
            dict.fromkeys(("n1", "n2", "n3", "n4"), "ok"),
            id="zone-skew-2",
        ),
        pytest.param(
            pod("p", constraints=[spread(HOST)]),
            ZONES,
            [pod("x1", "n1"), pod("x2", "n2"), pod("x3", "n3")],
            {"n1": SKEW, "n2": SKEW, "n3": SKEW, "n4": "ok"},
            id="hostname-skew",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE)]),
            [*ZONES, node("n5", None)],
            [],
            {"n1": "ok", "n2": "ok", "n3": "ok", "n4": "ok", "n5": LABEL},
            id="missing-topology-label",
        ),
        pytest.param(
            pod("p", labels={"app": "other"}, constraints=[spread(ZONE)]),
            ZONES,
            [pod("x1", "n1"), pod("x2", "n2"), pod("x3", "n3")],
            dict.fromkeys(("n1", "n2", "n3", "n4"), "ok"),
            id="no-self-match-no-extra-skew",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE)]),
            ZONES,
            [pod("x1", "n1"), pod("x2", "n2", ns="other"), pod("x3", "n3")],
            dict.fromkeys(("n1", "n2", "n3", "n4"), "ok"),
            id="other-namespace-not-counted",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE)]),
            ZONES,
            [
                pod("x1", "n1"),
                {
                    **pod("x2", "n2"),
                    "metadata": {**pod("x2")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"},
                },
                pod("x3", "n3"),
            ],
            dict.fromkeys(("n1", "n2", "n3", "n4"), "ok"),
            id="terminating-not-counted",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, minDomains=3)]),
            ZONES,
            [pod("x1", "n1"), pod("x3", "n3")],
            dict.fromkeys(("n1", "n2", "n3", "n4"), SKEW),
            id="min-domains-not-reached",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, minDomains=2)]),
            ZONES,
            [pod("x1", "n1"), pod("x3", "n3")],
            dict.fromkeys(("n1", "n2", "n3", "n4"), "ok"),
            id="min-domains-reached",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE)], nodeSelector={"disk": "ssd"}),
            [node("n1", "a", disk="ssd"), node("n2", "b", disk="ssd"), node("n3", "c")],
            [pod("x1", "n1"), pod("x2", "n2")],
            {"n1": "ok", "n2": "ok", "n3": "ok"},
            id="node-affinity-policy-honor",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, nodeAffinityPolicy="Ignore")], nodeSelector={"disk": "ssd"}),
            [node("n1", "a", disk="ssd"), node("n2", "b", disk="ssd"), node("n3", "c")],
            [pod("x1", "n1"), pod("x2", "n2")],
            {"n1": SKEW, "n2": SKEW, "n3": "ok"},
            id="node-affinity-policy-ignore",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE)]),
            [node("n1", "a"), node("n2", "b"), node("n3", "c", taint=True)],
            [pod("x1", "n1"), pod("x2", "n2")],
            {"n1": SKEW, "n2": SKEW, "n3": "ok"},
            id="node-taints-policy-ignore-default",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, nodeTaintsPolicy="Honor")]),
            [node("n1", "a"), node("n2", "b"), node("n3", "c", taint=True)],
            [pod("x1", "n1"), pod("x2", "n2")],
            {"n1": "ok", "n2": "ok", "n3": "ok"},
            id="node-taints-policy-honor",
        ),
        pytest.param(
            pod("p", labels={"app": "web", "rev": "2"}, constraints=[spread(ZONE, matchLabelKeys=["rev"])]),
            ZONES,
            [
                pod("x1", "n1", labels={"app": "web", "rev": "1"}),
                pod("x2", "n2", labels={"app": "web", "rev": "2"}),
            ],
            {"n1": SKEW, "n2": SKEW, "n3": "ok", "n4": "ok"},
            id="match-label-keys",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE), spread(HOST)]),
            ZONES,
            [pod("x1", "n1"), pod("x3", "n3")],
            {"n1": SKEW, "n2": "ok", "n3": SKEW, "n4": "ok"},
            id="two-constraints",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, when=pts.SCHEDULE_ANYWAY)]),
            ZONES,
            [pod("x1", "n1"), pod("x2", "n2")],
            dict.fromkeys(("n1", "n2", "n3", "n4"), "skip"),
            id="schedule-anyway-not-filtered",
        ),
    ],
)
def test_filter(
    incoming: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], want: dict[str, str]
) -> None:
    assert run_filter(incoming, nodes, pods) == want


class ListerHandle(SnapshotHandle):
    def __init__(self, snapshot: Snapshot, **objects: list[dict[str, Any]]) -> None:
        super().__init__(snapshot)
        self._objects = objects

    def services(self) -> list[dict[str, Any]]:
        return self._objects.get("services", [])

    def replica_sets(self) -> list[dict[str, Any]]:
        return self._objects.get("replica_sets", [])


def run_score(
    incoming: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    args: dict[str, Any] | None = None,
    **objects: list[dict[str, Any]],
) -> dict[str, int] | None:
    snapshot = Snapshot(nodes, pods)
    plugin = pts.new(args or {}, ListerHandle(snapshot, **objects))
    state = CycleState()
    if plugin.pre_score(state, incoming, snapshot.node_infos).is_skip():
        return None
    scores = {info.name: plugin.score(state, incoming, info)[0] for info in snapshot.node_infos}
    assert plugin.normalize_score(state, incoming, scores).is_success()
    return scores


ANYWAY = pts.SCHEDULE_ANYWAY
THREE = [node("n1", "a"), node("n2", "a"), node("n3", "b")]
OWNED = {
    **pod("p")["metadata"],
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True}],
}
RS = {
    "metadata": {"name": "rs", "namespace": "default"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}},
}
SVC = {"metadata": {"name": "s", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}


@pytest.mark.parametrize(
    ("incoming", "nodes", "pods", "objects", "want"),
    [
        pytest.param(pod("p"), THREE, [], {}, None, id="no-constraints-no-owner"),
        pytest.param(
            pod("p", constraints=[spread(HOST, when=ANYWAY)]),
            THREE,
            [pod("x1", "n1"), pod("x2", "n1"), pod("x3", "n2")],
            {},
            # raw: round(2 ln 5) = 3, round(ln 5) = 2, 0 -> 100 * (3 - raw) // 3
            {"n1": 0, "n2": 33, "n3": 100},
            id="hostname",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, when=ANYWAY)]),
            THREE,
            [pod("x1", "n1"), pod("x2", "n2")],
            {},
            {"n1": 0, "n2": 0, "n3": 100},
            id="zone",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, skew=3, when=ANYWAY)]),
            THREE,
            [],
            {},
            {"n1": 100, "n2": 100, "n3": 100},
            id="all-equal",
        ),
        pytest.param(
            pod("p", constraints=[spread(ZONE, when=ANYWAY)]),
            [*THREE, node("n4", None)],
            [pod("x1", "n1")],
            {},
            {"n1": 0, "n2": 0, "n3": 100, "n4": 0},
            id="node-without-key-ignored",
        ),
        pytest.param(
            {**pod("p"), "metadata": OWNED},
            THREE,
            [pod("x1", "n1"), pod("x2", "n1")],
            {"replica_sets": [RS]},
            # hostname (skew 3, w=ln 5) + zone (skew 5, w=ln 4): n1 round(2 ln 5 + 2 + 2 ln 4 + 4) = 12,
            # n2 round(2 + 2 ln 4 + 4) = 9, n3 2 + 4 = 6 -> 100 * (12 + 6 - raw) // 12
            {"n1": 50, "n2": 75, "n3": 100},
            id="system-defaults-replicaset",
        ),
        pytest.param(
            pod("p"),
            THREE,
            [pod("x1", "n1"), pod("x2", "n1")],
            {"services": [SVC]},
            {"n1": 50, "n2": 75, "n3": 100},
            id="system-defaults-service",
        ),
        pytest.param(
            pod("p"),
            THREE,
            [pod("x1", "n1")],
            {"services": [{**SVC, "metadata": {"name": "s", "namespace": "other"}}]},
            None,
            id="service-in-other-namespace",
        ),
    ],
)
def test_score(
    incoming: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    objects: dict[str, list[dict[str, Any]]],
    want: dict[str, int] | None,
) -> None:
    assert run_score(incoming, nodes, pods, **objects) == want


def test_list_defaulting_uses_given_constraints() -> None:
    args = {"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": ZONE}]}
    snapshot = Snapshot(THREE, [pod("x1", "n1")])
    plugin = pts.new(args, ListerHandle(snapshot, services=[SVC]))
    state = CycleState()
    incoming = pod("p")
    assert plugin.pre_filter(state, incoming, snapshot.node_infos).is_success()
    got = {i.name: plugin.filter(state, incoming, i).is_success() for i in snapshot.node_infos}
    assert got == {"n1": False, "n2": False, "n3": True}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"defaultingType": "Zone"}, id="unknown-type"),
        pytest.param({"defaultConstraints": [{"maxSkew": 1, "topologyKey": ZONE}]}, id="system-with-list"),
    ],
)
def test_invalid_args(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        pts.new(args, SnapshotHandle())
