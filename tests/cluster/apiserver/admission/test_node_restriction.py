"""NodeRestriction: what a node's identity may write (its own mirror pods, pod status, Node, Lease,
CSINode) with kube's refusals; other users pass."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.admission.interfaces import Operation
from cluster.apiserver.admission.node_restriction import NodeRestriction, token_request_refusal
from cluster.apiserver.auth.user import NODES, UserInfo
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, resource, run

NODE = UserInfo("system:node:n1", groups=(NODES,))
NODES_RES = resource("", "v1", "nodes")
LEASES = resource("coordination.k8s.io", "v1", "leases")
CSINODES = resource("storage.k8s.io", "v1", "csinodes")
C, U, D = Operation.CREATE, Operation.UPDATE, Operation.DELETE


def mirror(node: str = "n1", **spec: Any) -> dict[str, Any]:
    body = pod(nodeName=node, **spec)
    body["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "h"}
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Node", "name": node, "controller": True}
    ]
    return body


def node(name: str, labels: dict[str, str] | None = None, taints: list[Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def check(*args: Any, **kw: Any) -> None:
    run(NodeRestriction().validate(attrs(*args, user=NODE, **kw)))


def deny(*args: Any, **kw: Any) -> str:
    return refused(NodeRestriction().validate(attrs(*args, user=NODE, **kw)))


def test_allowed() -> None:
    check(mirror())
    check(pod(nodeName="n1"), operation=U, old=pod(nodeName="n1"), subresource="status")
    check(pod(nodeName="n1"), operation=D, old=pod(nodeName="n1"))
    check(
        node("n1", {"kubernetes.io/hostname": "n1"}), NODES_RES, namespace=None, operation=U, old=node("n1")
    )
    check({"metadata": {"name": "n1"}}, LEASES, namespace="kube-node-lease", operation=U)
    check({"metadata": {"name": "n1"}}, CSINODES, namespace=None)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda: deny(pod(nodeName="n1")),
            'pod does not have "kubernetes.io/config.mirror" annotation, '
            'node "n1" can only create mirror pods',
            id="not-mirror",
        ),
        pytest.param(
            lambda: deny(mirror("n2")),
            'node "n1" can only create pods with spec.nodeName set to itself',
            id="other-node",
        ),
        pytest.param(
            lambda: deny(mirror(serviceAccountName="default")),
            'node "n1" can not create pods that reference a service account',
            id="sa",
        ),
        pytest.param(
            lambda: deny(mirror(volumes=[{"name": "s", "secret": {"secretName": "x"}}])),
            'node "n1" can not create pods that reference secrets',
            id="secret",
        ),
        pytest.param(
            lambda: deny(pod(nodeName="n2"), operation=U, old=pod(nodeName="n2"), subresource="status"),
            'node "n1" can only update pod status for pods with spec.nodeName set to itself',
            id="status-other",
        ),
        pytest.param(
            lambda: deny(pod(nodeName="n1"), operation=U, old=pod(nodeName="n1")),
            'unexpected operation "UPDATE", node "n1" can only create and delete mirror pods',
            id="update",
        ),
        pytest.param(
            lambda: deny(pod(nodeName="n2"), operation=D, old=pod(nodeName="n2")),
            'node "n1" can only delete pods with spec.nodeName set to itself',
            id="delete-other",
        ),
        pytest.param(
            lambda: deny(node("n2"), NODES_RES, namespace=None, operation=U, old=node("n2")),
            'node "n1" is not allowed to modify node "n2"',
            id="other-node-object",
        ),
        pytest.param(
            lambda: deny(
                node("n1", taints=[]),
                NODES_RES,
                namespace=None,
                operation=U,
                old=node("n1", taints=[{"key": "k", "effect": "NoSchedule"}]),
            ),
            'node "n1" is not allowed to modify taints',
            id="taints",
        ),
        pytest.param(
            lambda: deny(
                node("n1", {"node-restriction.kubernetes.io/pool": "a"}),
                NODES_RES,
                namespace=None,
                operation=U,
                old=node("n1"),
            ),
            "is not allowed to modify labels: node-restriction.kubernetes.io/pool",
            id="restricted-label",
        ),
        pytest.param(
            lambda: deny({"metadata": {"name": "n2"}}, LEASES, namespace="kube-node-lease", operation=U),
            "can only access node lease with the same name as the requesting node",
            id="lease",
        ),
        pytest.param(
            lambda: deny({"metadata": {"name": "n1"}}, LEASES, namespace="default", operation=U),
            'can only access leases in the "kube-node-lease" system namespace',
            id="lease-ns",
        ),
        pytest.param(
            lambda: deny({"metadata": {"name": "n2"}}, CSINODES, namespace=None),
            "can only access CSINode with the same name as the requesting node",
            id="csinode",
        ),
    ],
)
def test_refused(call: Any, message: str) -> None:
    assert call().endswith(f"is forbidden: {message}")


def test_other_users_pass() -> None:
    run(NodeRestriction().validate(attrs(pod(nodeName="n2"), user=UserInfo("alice"))))
    run(NodeRestriction().validate(attrs(pod(nodeName="n2"))))


@pytest.mark.parametrize(
    ("ref", "pod_node", "pod_uid", "message"),
    [
        pytest.param(
            {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}, "n1", "u1", None, id="own-pod",
        ),
        pytest.param({}, "n1", "u1", "node requested token not bound to a pod", id="unbound"),
        pytest.param(
            {"kind": "Secret", "apiVersion": "v1", "name": "s", "uid": "u1"}, "n1", "u1",
            "node requested token not bound to a pod", id="secret",
        ),
        pytest.param(
            {"kind": "Pod", "apiVersion": "v1", "name": "web"}, "n1", "u1",
            "node requested token with a pod binding without a uid", id="no-uid",
        ),
        pytest.param(
            {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "old"}, "n1", "u1",
            "the UID in the bound object reference (old) does not match the UID in record (u1). "
            "The object might have been deleted and then recreated",
            id="recreated",
        ),
        pytest.param(
            {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}, "n2", "u1",
            "node requested token bound to a pod scheduled on a different node", id="other-node",
        ),
    ],
)  # fmt: skip
def test_token_requests(ref: dict[str, Any], pod_node: str, pod_uid: str, message: str | None) -> None:
    bound = pod(nodeName=pod_node)
    bound["metadata"]["uid"] = pod_uid
    assert token_request_refusal("n1", ref, bound) == message
