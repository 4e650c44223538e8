"""One API server per control-plane node, and losing one keeps the API up. A ``ray.cluster_utils``
head and two workers (one host, so the three instances share one port through SO_REUSEPORT),
``raykube up --replicas 3 --runtime none``: an API server actor on each of the three nodes, and the
``kubernetes`` Endpoints and EndpointSlice list three addresses (one per instance, by node). A
worker hosting an API server (and a store follower) is removed: kubectl through the shared port
keeps creating and reading, our ApiClient with the kubeconfig's server list keeps working, and once
the dead instance's Lease expires the Endpoints and the EndpointSlice list two. A later ``up`` with
another ``--tls-san`` re-issues the serving certificate with the same CA, and the running
instances serve it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from cluster.client.rest import ApiClient
from cluster.naming import node_names
from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

NAMESPACE = "apiserver-ha"
IDENTITY = "apiserver.kubernetes.io/identity=kube-apiserver"

wait_until = functools.partial(support.wait_until, timeout=120.0, every=1.0)


def _cm(name: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    )


def _served_names(port: int) -> set[str]:
    """The DNS names in the certificate served on ``127.0.0.1:port`` (no verification: just read it)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(san.value.get_values_for_type(x509.DNSName))


@pytest.mark.timeout(600)
def test_losing_a_node_keeps_the_api_up(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAYKUBE_NAMESPACE", NAMESPACE)
    ray_stop()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        run_cli(
            "up", "--address", cluster.address, "--replicas", "3", "--runtime", "none", "--port", "0",
            data_dir=data_dir, timeout=400,
        )  # fmt: skip
        kubeconfig = data_dir / "kubeconfig"

        def kubectl(*args: str, stdin: str | None = None) -> str:
            return support.kubectl_at(kubeconfig, *args, input=stdin)

        # Three API server actors, on three distinct Ray nodes.
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        names = sorted(
            e["name"]
            for e in ray.util.list_named_actors(all_namespaces=True)
            if e["namespace"] == NAMESPACE and e["name"].startswith("apiserver")
        )
        assert len(names) == 3 and names[0] == "apiserver", names
        node_name = node_names(n for n in ray.nodes() if n["Alive"])
        assert names[1:] == sorted(f"apiserver-{node_name[w.node_id]}" for w in workers), names

        def endpoints() -> list[tuple[str, str, int]]:
            obj = json.loads(kubectl("get", "endpoints", "kubernetes", "-o", "json"))
            return sorted(
                (a["ip"], a.get("nodeName", ""), s["ports"][0]["port"])
                for s in obj.get("subsets") or []
                for a in s["addresses"]
            )

        def slice_nodes() -> list[str]:
            obj = json.loads(kubectl("get", "endpointslices.discovery.k8s.io", "kubernetes", "-o", "json"))
            return sorted(e.get("nodeName", "") for e in obj.get("endpoints") or [])

        three = wait_until(
            lambda: (eps := endpoints()) and len(eps) == 3 and eps, "three API server endpoints"
        )
        assert len({node for _, node, _ in three}) == 3
        assert slice_nodes() == sorted(node for _, node, _ in three)
        leases = json.loads(kubectl("-n", "kube-system", "get", "leases", "-l", IDENTITY, "-o", "json"))[
            "items"
        ]
        assert len(leases) == 3

        # Remove a worker whose store replica follows (the API servers are what this test is about).
        def replica(i: int) -> dict[str, Any]:
            status: dict[str, Any] = ray.get(ray.get_actor(f"store-{i}").status.remote(), timeout=10)
            return status

        roles = {replica(i)["node_id"]: replica(i).get("role") for i in (1, 2, 3)}
        victim = next(w for w in workers if roles.get(w.node_id) != "leader")
        dead_name = node_name[victim.node_id]
        ray.shutdown()
        cluster.remove_node(victim)

        # kubectl through the shared port: creates and reads, every time.
        for i in range(10):
            kubectl("create", "-f", "-", stdin=_cm(f"after-{i}"))
            assert json.loads(kubectl("get", "configmap", f"after-{i}", "-o", "json"))["data"] == {
                "k": f"after-{i}"
            }

        # Our client with the kubeconfig's server list.
        async def with_client() -> list[str]:
            client = ApiClient.from_kubeconfig(str(kubeconfig))
            try:
                assert len(client.servers) >= 2, client.servers
                for i in range(10):
                    await client.create("v1", "configmaps", json.loads(_cm(f"client-{i}")), "default")
                listed = await client.list("v1", "configmaps", "default")
                return sorted(item["metadata"]["name"] for item in listed["items"])
            finally:
                await client.close()

        made = asyncio.run(with_client())
        assert {f"client-{i}" for i in range(10)} | {f"after-{i}" for i in range(10)} <= set(made)

        # The dead instance's Lease expires (15 s unchanged) and its address leaves the Endpoints.
        two = wait_until(lambda: (eps := endpoints()) and len(eps) == 2 and eps, "the dead endpoint dropped")
        assert dead_name not in {node for _, node, _ in two}
        wait_until(lambda: slice_nodes() == sorted(node for _, node, _ in two), "the EndpointSlice following")
        remaining = json.loads(kubectl("-n", "kube-system", "get", "leases", "-l", IDENTITY, "-o", "json"))
        assert len(remaining["items"]) == 2

        # A later `up` with another --tls-san: the certificate is re-issued (same CA) and the running
        # instances serve it on new connections.
        ca = (data_dir / "pki" / "ca.crt").read_bytes()
        port = three[0][2]
        run_cli(
            "up", "--address", cluster.address, "--runtime", "none", "--tls-san", "ha.example.com",
            data_dir=data_dir, timeout=400,
        )  # fmt: skip
        assert (data_dir / "pki" / "ca.crt").read_bytes() == ca
        for _ in range(8):  # new connections, spread by the kernel over the instances
            assert "ha.example.com" in _served_names(port)
        kubectl("get", "configmap", "after-0")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        run_cli("down", "--purge", "--address", cluster.address, data_dir=data_dir, check=False)
        cluster.shutdown()
        ray_stop()
