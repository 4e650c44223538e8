"""EndpointSlices, Endpoints and the default ServiceAccount through real kubectl against `raykube up`.

Pods are busybox ``sleep`` processes on the host (the process runtime) whose readiness probe tests for a
file this test creates and removes, so readiness flips on cue. Every pod of the process runtime has the
sandbox address 127.0.0.1, so endpoints are told apart by their ``targetRef`` and each address is checked
against its own pod's ``status.podIP``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl
from tests.integration.test_pods_kubectl import apply, find_real_node, wait_until

pytestmark = pytest.mark.integration

WAIT = 90.0


def probed_pod(name: str, app: str, node: str, ready_file: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "command": ["sh", "-c", "sleep 3600"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {
                        "exec": {"command": ["test", "-e", str(ready_file)]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


def service(name: str, selector: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def slices_of(k: Kubectl, service_name: str) -> list[dict[str, Any]]:
    return list(k.json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service_name}")["items"])


def endpoint_view(k: Kubectl, service_name: str) -> dict[str, bool]:
    """pod name -> ready, over all of the Service's slices."""
    view: dict[str, bool] = {}
    for s in slices_of(k, service_name):
        for e in s.get("endpoints") or []:
            view[e["targetRef"]["name"]] = bool(e["conditions"]["ready"])
    return view


def wait_view(k: Kubectl, service_name: str, want: dict[str, bool]) -> None:
    wait_until(
        lambda: endpoint_view(k, service_name) == want or None,
        f"EndpointSlices of {service_name} to read {want} (have {endpoint_view(k, service_name)})",
        WAIT,
    )


def test_endpointslice_follows_readiness(kubectl: Kubectl, tmp_path: Path) -> None:
    node = find_real_node(Kubectl(kubectl.cluster, "1.33", None))["metadata"]["name"]
    app = f"ep-{secrets.token_hex(3)}"
    files = {name: tmp_path / f"ready-{app}-{name}" for name in ("a", "b", "c")}
    files["a"].touch()
    files["b"].touch()
    apply(
        kubectl,
        service("web", {"app": app}),
        service("manual", None),
        *(probed_pod(name, app, node, path) for name, path in files.items()),
    )
    wait_view(kubectl, "web", {"a": True, "b": True, "c": False})

    (eps,) = slices_of(kubectl, "web")
    pods = {p["metadata"]["name"]: p for p in kubectl.json("get", "pods")["items"]}
    assert eps["addressType"] == "IPv4"
    assert eps["metadata"]["generateName"] == "web-"
    assert (
        eps["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
        == "endpointslice-controller.k8s.io"
    )
    assert [(r["kind"], r["name"]) for r in eps["metadata"]["ownerReferences"]] == [("Service", "web")]
    assert eps["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    for e in eps["endpoints"]:
        pod = pods[e["targetRef"]["name"]]
        assert e["addresses"] == [pod["status"]["podIP"]]
        assert e["nodeName"] == node
        assert e["conditions"]["serving"] == e["conditions"]["ready"]
        assert e["conditions"]["terminating"] is False
    ready_ips = sorted(e["addresses"][0] for e in eps["endpoints"] if e["conditions"]["ready"])
    assert ready_ips == sorted(pods[n]["status"]["podIP"] for n in ("a", "b"))

    files["a"].unlink()
    wait_view(kubectl, "web", {"a": False, "b": True, "c": False})
    files["a"].touch()
    files["c"].touch()
    wait_view(kubectl, "web", {"a": True, "b": True, "c": True})

    # The legacy Endpoints object follows too, and kubectl shows its addresses.
    files["b"].unlink()

    def endpoints_split() -> tuple[list[str], list[str]] | None:
        ep = kubectl.json("get", "endpoints", "web")
        (subset,) = ep.get("subsets") or [{}]
        ready = sorted(a["targetRef"]["name"] for a in subset.get("addresses") or [])
        not_ready = sorted(a["targetRef"]["name"] for a in subset.get("notReadyAddresses") or [])
        return (ready, not_ready) if (ready, not_ready) == (["a", "c"], ["b"]) else None

    wait_until(endpoints_split, "Endpoints web: a and c ready, b not ready", WAIT)
    ep = kubectl.json("get", "endpoints", "web")
    assert ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"] == "endpoint-controller"
    assert ep["subsets"][0]["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    table = kubectl.out("get", "endpoints", "web")
    assert f"{pods['a']['status']['podIP']}:8080" in table, table

    # A deleted pod leaves the slice; the Service without a selector never got one.
    kubectl.run("delete", "pod", "c", "--wait=true", timeout=WAIT)
    wait_view(kubectl, "web", {"a": True, "b": False})
    assert slices_of(kubectl, "manual") == []
    assert kubectl.run("get", "endpoints", "manual", check=False).returncode != 0


def test_default_service_account_is_created_and_recreated(kubectl: Kubectl) -> None:
    def account_uid() -> str | None:
        proc = kubectl.run("get", "serviceaccount", "default", "-o", "jsonpath={.metadata.uid}", check=False)
        return proc.stdout.strip() or None

    first = wait_until(account_uid, "the default ServiceAccount in a new namespace", WAIT)
    kubectl.run("delete", "serviceaccount", "default")
    second = wait_until(
        lambda: uid if (uid := account_uid()) not in (None, first) else None,
        "the default ServiceAccount to come back",
        WAIT,
    )
    assert second != first
