"""Which nodes a DaemonSet runs on (nodeSelector, node affinity, taints and the default tolerations),
and the pods it creates (tolerations added, pinned to their node by a matchFields affinity)."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.daemonset.eligibility import (
    DEFAULT_TOLERATIONS,
    Eligibility,
    new_daemon_pod,
    node_should_run,
    pin_to_node,
    target_node_name,
    with_daemon_tolerations,
)
from tests.cluster.controllers.daemonset.objects import DS_UID, make_ds, make_node, make_pod, taint

BUSYBOX = [{"name": "c", "image": "busybox"}]
RUN = Eligibility(True, True)
KEEP_ONLY = Eligibility(False, True)
NEVER = Eligibility(False, False)


def spec(**extra: Any) -> dict[str, Any]:
    return {"containers": BUSYBOX, **extra}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


@pytest.mark.parametrize(
    ("pod_spec", "node", "expected"),
    [
        pytest.param(spec(), make_node("n1"), RUN, id="plain-node"),
        pytest.param(
            spec(nodeSelector={"disk": "ssd"}), make_node("n1", {"disk": "ssd"}), RUN, id="selector-match"
        ),
        pytest.param(
            spec(nodeSelector={"disk": "ssd"}), make_node("n1", {"disk": "hdd"}), NEVER, id="selector-other"
        ),
        pytest.param(spec(nodeSelector={"disk": "ssd"}), make_node("n1"), NEVER, id="selector-label-missing"),
        pytest.param(
            spec(affinity=required({"matchExpressions": [expr("zone", "In", "a", "b")]})),
            make_node("n1", {"zone": "b"}),
            RUN,
            id="affinity-in",
        ),
        pytest.param(
            spec(affinity=required({"matchExpressions": [expr("zone", "NotIn", "a")]})),
            make_node("n1"),
            RUN,
            id="affinity-notin-absent-label",
        ),
        pytest.param(
            spec(affinity=required({"matchExpressions": [expr("gpu", "Exists")]})),
            make_node("n1"),
            NEVER,
            id="affinity-exists-missing",
        ),
        pytest.param(
            spec(affinity=required({"matchExpressions": [expr("cores", "Gt", "4")]})),
            make_node("n1", {"cores": "8"}),
            RUN,
            id="affinity-gt",
        ),
        pytest.param(
            spec(
                affinity=required(
                    {"matchExpressions": [expr("gpu", "Exists")]},
                    {"matchExpressions": [expr("zone", "In", "a")]},
                )
            ),
            make_node("n1", {"zone": "a"}),
            RUN,
            id="affinity-terms-are-ored",
        ),
        pytest.param(
            spec(affinity=required({"matchExpressions": [expr("zone", "In", "a"), expr("gpu", "Exists")]})),
            make_node("n1", {"zone": "a"}),
            NEVER,
            id="affinity-expressions-are-anded",
        ),
        pytest.param(
            spec(affinity=required({"matchFields": [expr("metadata.name", "In", "n2")]})),
            make_node("n1"),
            NEVER,
            id="affinity-match-fields-other-node",
        ),
        pytest.param(
            spec(affinity=required({"matchFields": [expr("metadata.name", "NotIn", "n2")]})),
            make_node("n1"),
            RUN,
            id="affinity-match-fields-notin",
        ),
        pytest.param(
            spec(affinity=required({})), make_node("n1"), NEVER, id="affinity-empty-term-matches-nothing"
        ),
        pytest.param(
            spec(
                affinity=required(
                    {"matchExpressions": [expr("zone", "In")]},
                    {"matchExpressions": [expr("x", "DoesNotExist")]},
                )
            ),
            make_node("n1"),
            RUN,
            id="affinity-invalid-term-skipped",
        ),
        pytest.param(
            spec(
                nodeSelector={"disk": "ssd"},
                affinity=required({"matchExpressions": [expr("zone", "In", "a")]}),
            ),
            make_node("n1", {"zone": "a"}),
            NEVER,
            id="selector-and-affinity-both-needed",
        ),
        pytest.param(spec(nodeName="n2"), make_node("n1"), NEVER, id="template-node-name-other"),
        pytest.param(spec(nodeName="n1"), make_node("n1"), RUN, id="template-node-name-this"),
        pytest.param(
            spec(),
            make_node("n1", taints=[taint("dedicated", "NoSchedule", "db")]),
            KEEP_ONLY,
            id="noschedule-keeps-running-pod",
        ),
        pytest.param(
            spec(), make_node("n1", taints=[taint("dedicated", "NoExecute")]), NEVER, id="noexecute-evicts"
        ),
        pytest.param(
            spec(),
            make_node("n1", taints=[taint("soft", "PreferNoSchedule")]),
            RUN,
            id="prefer-no-schedule-ignored",
        ),
        pytest.param(
            spec(
                tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
            ),
            make_node("n1", taints=[taint("dedicated", "NoSchedule", "db")]),
            RUN,
            id="tolerated-equal",
        ),
        pytest.param(
            spec(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "web"}]),
            make_node("n1", taints=[taint("dedicated", "NoSchedule", "db")]),
            KEEP_ONLY,
            id="toleration-value-differs",
        ),
        pytest.param(
            spec(tolerations=[{"operator": "Exists"}]),
            make_node("n1", taints=[taint("a", "NoExecute"), taint("b", "NoSchedule")]),
            RUN,
            id="tolerate-everything",
        ),
        pytest.param(
            spec(),
            make_node(
                "n1", taints=[taint("node.kubernetes.io/unschedulable", "NoSchedule")], unschedulable=True
            ),
            RUN,
            id="default-toleration-cordoned",
        ),
        pytest.param(
            spec(),
            make_node(
                "n1",
                taints=[
                    taint("node.kubernetes.io/not-ready", "NoExecute"),
                    taint("node.kubernetes.io/unreachable", "NoSchedule"),
                ],
            ),
            KEEP_ONLY,
            id="default-tolerations-not-ready-noexecute-but-not-unreachable-noschedule",
        ),
        pytest.param(
            spec(),
            make_node(
                "n1",
                taints=[
                    taint("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    taint("node.kubernetes.io/unreachable", "NoExecute"),
                ],
            ),
            RUN,
            id="default-tolerations-pressure-and-unreachable",
        ),
        pytest.param(
            spec(),
            make_node("n1", taints=[taint("node.kubernetes.io/network-unavailable", "NoSchedule")]),
            KEEP_ONLY,
            id="network-unavailable-not-tolerated-without-host-network",
        ),
        pytest.param(
            spec(hostNetwork=True),
            make_node("n1", taints=[taint("node.kubernetes.io/network-unavailable", "NoSchedule")]),
            RUN,
            id="network-unavailable-tolerated-with-host-network",
        ),
    ],
)
def test_node_should_run(pod_spec: dict[str, Any], node: dict[str, Any], expected: Eligibility) -> None:
    assert node_should_run(node, make_ds(pod_spec=pod_spec)) == expected


def test_default_tolerations_replace_same_ones_and_keep_others() -> None:
    user = [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {"key": "dedicated", "operator": "Exists"},
    ]
    out = with_daemon_tolerations({"containers": BUSYBOX, "tolerations": user})
    assert out["tolerations"][0] == {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
    }
    assert out["tolerations"][1] == {"key": "dedicated", "operator": "Exists"}
    assert out["tolerations"][2:] == list(DEFAULT_TOLERATIONS[1:])
    assert user[0]["tolerationSeconds"] == 300  # the input is not modified
    keys = [(t["key"], t["effect"]) for t in with_daemon_tolerations({})["tolerations"]]
    assert keys == [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    assert all("tolerationSeconds" not in t for t in with_daemon_tolerations({})["tolerations"])
    host = with_daemon_tolerations({"hostNetwork": True})["tolerations"]
    assert host[-1] == {
        "key": "node.kubernetes.io/network-unavailable",
        "operator": "Exists",
        "effect": "NoSchedule",
    }


PIN = {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}


@pytest.mark.parametrize(
    ("affinity", "expected"),
    [
        pytest.param(
            None, {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": PIN}}, id="none"
        ),
        pytest.param(
            {}, {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": PIN}}, id="empty"
        ),
        pytest.param(
            {
                "podAntiAffinity": {"x": 1},
                "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]},
            },
            {
                "podAntiAffinity": {"x": 1},
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}],
                    "requiredDuringSchedulingIgnoredDuringExecution": PIN,
                },
            },
            id="keeps-preferred-and-pod-affinity",
        ),
        pytest.param(
            required(
                {"matchExpressions": [expr("zone", "In", "a")]},
                {"matchFields": [expr("metadata.name", "In", "n9")]},
            ),
            {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": PIN}},
            id="replaces-required-terms",
        ),
    ],
)
def test_pin_to_node(affinity: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    pod_spec = {"containers": BUSYBOX} if affinity is None else {"containers": BUSYBOX, "affinity": affinity}
    before = repr(pod_spec)
    assert pin_to_node(pod_spec, "n1")["affinity"] == expected
    assert repr(pod_spec) == before


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(make_pod("p", "n1"), "n1", id="bound"),
        pytest.param(make_pod("p", "n1", bound=False), "n1", id="pinned-not-bound"),
        pytest.param(make_pod("p", None), None, id="neither"),
        pytest.param(
            {"spec": {"affinity": required({"matchFields": [expr("metadata.name", "In", "a", "b")]})}},
            None,
            id="not-unique",
        ),
        pytest.param(
            {
                "spec": {
                    "affinity": required(
                        {"matchExpressions": [expr("zone", "In", "a")]},
                        {"matchFields": [expr("metadata.name", "In", "n3")]},
                    )
                }
            },
            "n3",
            id="second-term",
        ),
    ],
)
def test_target_node_name(pod: dict[str, Any], expected: str | None) -> None:
    assert target_node_name(pod) == expected


def test_new_daemon_pod() -> None:
    ds = make_ds(
        pod_spec=spec(nodeSelector={"disk": "ssd"}, tolerations=[{"key": "x", "operator": "Exists"}])
    )
    pod = new_daemon_pod(ds, "n1", "h4sh")
    meta = pod["metadata"]
    assert meta["generateName"] == "agent-" and "name" not in meta and meta["namespace"] == "ns"
    assert meta["labels"] == {"app": "agent", "controller-revision-hash": "h4sh"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": "agent",
            "uid": DS_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod["spec"]["affinity"] == {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": PIN}
    }
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert "nodeName" not in pod["spec"]  # the scheduler binds it
    assert pod["spec"]["tolerations"][0] == {"key": "x", "operator": "Exists"}
    assert len(pod["spec"]["tolerations"]) == 1 + len(DEFAULT_TOLERATIONS)
    assert "controller-revision-hash" not in ds["spec"]["template"]["metadata"]["labels"]
