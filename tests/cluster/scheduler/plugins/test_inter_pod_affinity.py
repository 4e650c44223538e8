"""InterPodAffinity: Filter and Score over small clusters of hollow nodes, as kube-scheduler's tests."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.framework import Code, CycleState, Snapshot, SnapshotHandle
from cluster.scheduler.plugins import inter_pod_affinity as ipa

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def node(name: str, zone: str | None = "a", **labels: str) -> dict[str, Any]:
    all_labels = {HOST: name, **labels}
    if zone is not None:
        all_labels[ZONE] = zone
    return {"metadata": {"name": name, "labels": all_labels}, "status": {"allocatable": {"pods": "110"}}}


def pod(
    name: str,
    labels: dict[str, str] | None = None,
    on: str | None = None,
    ns: str = "default",
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c"}]}
    if on:
        spec["nodeName"] = on
    if affinity:
        spec["affinity"] = affinity
    return {"metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels or {}}, "spec": spec}


def term(key: str = ZONE, **extra: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": key, **extra}


def required(kind: str, *terms: dict[str, Any]) -> dict[str, Any]:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(kind: str, weight: int, t: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight, "podAffinityTerm": t}]}
    }


class NamespacedHandle(SnapshotHandle):
    def __init__(self, snapshot: Snapshot, namespaces: list[dict[str, Any]]) -> None:
        super().__init__(snapshot)
        self._namespaces = namespaces

    def namespaces(self) -> list[dict[str, Any]]:
        return self._namespaces


def run_filter(
    incoming: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], handle_ns: Any = None
) -> dict[str, str]:
    snapshot = Snapshot(nodes, pods)
    handle = NamespacedHandle(snapshot, handle_ns) if handle_ns is not None else SnapshotHandle(snapshot)
    plugin = ipa.new({}, handle)
    state = CycleState()
    pre = plugin.pre_filter(state, incoming, snapshot.node_infos)
    if pre.is_skip():
        return {info.name: "skip" for info in snapshot.node_infos}
    out = {}
    for info in snapshot.node_infos:
        status = plugin.filter(state, incoming, info)
        out[info.name] = "ok" if status.is_success() else f"{int(status.code)}:{status.reasons[0]}"
    return out


AFF = f"{int(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)}:{ipa.REASON_AFFINITY}"
ANTI = f"{int(Code.UNSCHEDULABLE)}:{ipa.REASON_ANTI_AFFINITY}"
EXISTING = f"{int(Code.UNSCHEDULABLE)}:{ipa.REASON_EXISTING_ANTI_AFFINITY}"
TWO_ZONES = [node("n1", "a"), node("n2", "a"), node("n3", "b")]
DB_ON_N1 = [pod("db", {"app": "db"}, on="n1")]


@pytest.mark.parametrize(
    ("incoming", "nodes", "pods", "namespaces", "want"),
    [
        pytest.param(
            pod("p"), TWO_ZONES, DB_ON_N1, None, dict.fromkeys(("n1", "n2", "n3"), "skip"), id="no-terms"
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term())),
            TWO_ZONES,
            DB_ON_N1,
            None,
            {"n1": "ok", "n2": "ok", "n3": AFF},
            id="affinity-same-zone",
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term(HOST))),
            TWO_ZONES,
            DB_ON_N1,
            None,
            {"n1": "ok", "n2": AFF, "n3": AFF},
            id="affinity-same-host",
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term())),
            [node("n1", "a"), node("n2", None)],
            [pod("db", {"app": "db"}, on="n2")],
            None,
            {"n1": AFF, "n2": AFF},
            id="affinity-topology-key-missing",
        ),
        pytest.param(
            pod("p", {"app": "db"}, affinity=required("podAffinity", term())),
            TWO_ZONES,
            [],
            None,
            {"n1": "ok", "n2": "ok", "n3": "ok"},
            id="first-pod-of-group-matches-itself",
        ),
        pytest.param(
            pod("p", {"app": "db"}, affinity=required("podAffinity", term())),
            [node("n1", "a"), node("n2", None)],
            [],
            None,
            {"n1": "ok", "n2": AFF},
            id="first-pod-still-needs-topology-label",
        ),
        pytest.param(
            pod("p", {"app": "web"}, affinity=required("podAffinity", term())),
            TWO_ZONES,
            [],
            None,
            dict.fromkeys(("n1", "n2", "n3"), AFF),
            id="no-match-and-not-self",
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term(), term(HOST))),
            TWO_ZONES,
            [*DB_ON_N1, pod("db2", {"app": "db"}, on="n3")],
            None,
            {"n1": "ok", "n2": AFF, "n3": "ok"},
            id="all-terms-per-node",
        ),
        pytest.param(
            pod("p", affinity=required("podAntiAffinity", term())),
            TWO_ZONES,
            DB_ON_N1,
            None,
            {"n1": ANTI, "n2": ANTI, "n3": "ok"},
            id="anti-affinity-zone",
        ),
        pytest.param(
            pod("p", affinity=required("podAntiAffinity", term(HOST))),
            TWO_ZONES,
            DB_ON_N1,
            None,
            {"n1": ANTI, "n2": "ok", "n3": "ok"},
            id="anti-affinity-host",
        ),
        pytest.param(
            pod("p", {"app": "db"}),
            TWO_ZONES,
            [pod("x", on="n3", affinity=required("podAntiAffinity", term()))],
            None,
            {"n1": "ok", "n2": "ok", "n3": EXISTING},
            id="existing-pod-anti-affinity",
        ),
        pytest.param(
            pod("p", {"app": "db"}),
            TWO_ZONES,
            [pod("x", on="n3", ns="other", affinity=required("podAntiAffinity", term()))],
            None,
            dict.fromkeys(("n1", "n2", "n3"), "skip"),
            id="existing-anti-affinity-other-namespace",
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term())),
            TWO_ZONES,
            [pod("db", {"app": "db"}, on="n1", ns="other")],
            None,
            dict.fromkeys(("n1", "n2", "n3"), AFF),
            id="affinity-ignores-other-namespace",
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term(namespaces=["other"]))),
            TWO_ZONES,
            [pod("db", {"app": "db"}, on="n3", ns="other")],
            None,
            {"n1": AFF, "n2": AFF, "n3": "ok"},
            id="affinity-listed-namespace",
        ),
        pytest.param(
            pod("p", affinity=required("podAffinity", term(namespaceSelector={}))),
            TWO_ZONES,
            [pod("db", {"app": "db"}, on="n3", ns="other")],
            None,
            {"n1": AFF, "n2": AFF, "n3": "ok"},
            id="empty-namespace-selector-all",
        ),
        pytest.param(
            pod(
                "p", affinity=required("podAffinity", term(namespaceSelector={"matchLabels": {"team": "x"}}))
            ),
            TWO_ZONES,
            [pod("db", {"app": "db"}, on="n3", ns="other")],
            [{"metadata": {"name": "other", "labels": {"team": "x"}}}],
            {"n1": AFF, "n2": AFF, "n3": "ok"},
            id="namespace-selector-by-labels",
        ),
        pytest.param(
            pod(
                "p", affinity=required("podAffinity", term(namespaceSelector={"matchLabels": {"team": "y"}}))
            ),
            TWO_ZONES,
            [pod("db", {"app": "db"}, on="n3", ns="other")],
            [{"metadata": {"name": "other", "labels": {"team": "x"}}}],
            dict.fromkeys(("n1", "n2", "n3"), AFF),
            id="namespace-selector-no-match",
        ),
        pytest.param(
            pod("p", {"app": "db"}, ns="prod"),
            TWO_ZONES,
            [
                pod(
                    "x",
                    on="n1",
                    affinity=required(
                        "podAntiAffinity", term(namespaceSelector={"matchLabels": {"env": "prod"}})
                    ),
                )
            ],
            [{"metadata": {"name": "prod", "labels": {"env": "prod"}}}],
            {"n1": EXISTING, "n2": EXISTING, "n3": "ok"},
            id="existing-anti-affinity-namespace-selector",
        ),
    ],
)
def test_filter(
    incoming: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    namespaces: Any,
    want: dict[str, str],
) -> None:
    assert run_filter(incoming, nodes, pods, namespaces) == want


def run_score(
    incoming: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], args: dict[str, Any]
) -> dict[str, int] | None:
    snapshot = Snapshot(nodes, pods)
    plugin = ipa.new(args, SnapshotHandle(snapshot))
    state = CycleState()
    if plugin.pre_score(state, incoming, snapshot.node_infos).is_skip():
        return None
    scores = {info.name: plugin.score(state, incoming, info)[0] for info in snapshot.node_infos}
    assert plugin.normalize_score(state, incoming, scores).is_success()
    return scores


THREE = [node("n1", "a"), node("n2", "b"), node("n3", "c")]


@pytest.mark.parametrize(
    ("incoming", "pods", "args", "want"),
    [
        pytest.param(pod("p"), [pod("db", {"app": "db"}, on="n1")], {}, None, id="nothing-to-score"),
        pytest.param(
            pod("p", affinity=preferred("podAffinity", 5, term())),
            [pod("db", {"app": "db"}, on="n1")],
            {},
            {"n1": 100, "n2": 0, "n3": 0},
            id="preferred-affinity",
        ),
        pytest.param(
            pod("p", affinity=preferred("podAntiAffinity", 5, term())),
            [pod("db", {"app": "db"}, on="n1")],
            {},
            {"n1": 0, "n2": 100, "n3": 100},
            id="preferred-anti-affinity",
        ),
        pytest.param(
            pod("p", affinity=preferred("podAffinity", 5, term())),
            [
                pod("db", {"app": "db"}, on="n1"),
                pod("db2", {"app": "db"}, on="n1"),
                pod("db3", {"app": "db"}, on="n2"),
            ],
            {},
            {"n1": 100, "n2": 50, "n3": 0},
            id="weights-add-up-per-pod",
        ),
        pytest.param(
            pod("p", {"app": "db"}),
            [pod("x", on="n2", affinity=required("podAffinity", term()))],
            {},
            {"n1": 0, "n2": 100, "n3": 0},
            id="existing-required-affinity-hard-weight",
        ),
        pytest.param(
            pod("p", {"app": "db"}),
            [pod("x", on="n2", affinity=required("podAffinity", term()))],
            {"hardPodAffinityWeight": 0},
            {"n1": 0, "n2": 0, "n3": 0},
            id="hard-weight-zero",
        ),
        pytest.param(
            pod("p", {"app": "db"}),
            [pod("x", on="n3", affinity=preferred("podAntiAffinity", 10, term()))],
            {},
            {"n1": 100, "n2": 100, "n3": 0},
            id="existing-preferred-anti-affinity",
        ),
        pytest.param(
            pod("p", {"app": "db"}),
            [pod("x", on="n3", affinity=preferred("podAntiAffinity", 10, term()))],
            {"ignorePreferredTermsOfExistingPods": True},
            {"n1": 0, "n2": 0, "n3": 0},
            id="ignore-existing-preferred",
        ),
    ],
)
def test_score(
    incoming: dict[str, Any], pods: list[dict[str, Any]], args: dict[str, Any], want: dict[str, int] | None
) -> None:
    assert run_score(incoming, THREE, pods, args) == want


def test_hard_weight_out_of_range() -> None:
    with pytest.raises(ValueError, match="hardPodAffinityWeight"):
        ipa.new({"hardPodAffinityWeight": 101}, SnapshotHandle())
