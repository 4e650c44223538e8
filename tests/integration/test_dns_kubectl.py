"""Cluster DNS end to end: `raykube up` (the session cluster) runs the kube-dns actor, which keeps the
Service kube-system/kube-dns at the Service CIDR's tenth address and its EndpointSlice pointing at
itself; a pod's /etc/resolv.conf (written by the kubelet part and the process runtime) names that
address with the cluster search path, and names resolve from inside the pod: the ``kubernetes``
Service's full name, a Service of the pod's namespace by its short name and ``<svc>.<ns>``
(expanded through the pod's own search list), a headless Service to its ready pod, and that pod by
``<hostname>.<svc>`` (hostname/subdomain, as a StatefulSet's pods).

The pod first asks the actor's own address (from the EndpointSlice) directly, applying its
resolv.conf's search list itself (DNS alone), then resolves through its resolv.conf as any program
does (``socket.gethostbyname``, busybox ``nslookup``): the queries go to the ClusterIP and the
service proxy (``proxy-<node>``) takes them to the actor.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import pytest

from cluster.apiserver.admission.service_allocation import ServiceNetwork
from cluster.up_config import ClusterConfig
from tests.integration import support
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

wait_until = functools.partial(support.wait_until, timeout=120.0)

# Resolves each name as a stub resolver with the pod's resolv.conf would (search list first, since
# every name here has fewer dots than ndots:5), asking the server given on the command line.
RESOLVE = r"""
import sys
from dnslib import DNSRecord, RCODE
server, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lines = [l.split() for l in open("/etc/resolv.conf") if l.strip()]
searches = next((l[1:] for l in lines if l[0] == "search"), [])
for name in names:
    answer = "NXDOMAIN"
    for fqdn in [f"{name}.{s}" for s in searches] + [name]:
        reply = DNSRecord.parse(DNSRecord.question(fqdn, "A").send(server, port, timeout=5))
        if reply.header.rcode == RCODE.NOERROR and reply.rr:
            answer = str(reply.rr[0].rdata)
            break
    print(name, answer)
"""

GETHOSTBYNAME = "import socket, sys\nfor n in sys.argv[1:]:\n    print(n, socket.gethostbyname(n))\n"


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}], **spec},
    }


def sleeper(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
            **spec,
        },
    }


def running_ip(kubectl: Kubectl, name: str) -> str:
    def probe() -> str | None:
        status = kubectl.json("get", "pod", name)["status"]
        return str(status["podIP"]) if status.get("phase") == "Running" and status.get("podIP") else None

    return wait_until(probe, f"pod {name} running with an IP")


def test_pods_resolve_services(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    cfg = ClusterConfig.load(raykube_cluster.data_dir)
    assert cfg is not None
    dns_ip = ServiceNetwork.parse(cfg.service_cidr).dns_ip
    admin = Kubectl(raykube_cluster, "1.33", "kube-system")

    dns = admin.json("get", "service", "kube-dns")
    assert dns["spec"]["clusterIP"] == dns_ip
    assert not dns["spec"].get("selector")
    ports = {p["name"]: p for p in dns["spec"]["ports"]}
    assert {(p["port"], p["protocol"]) for p in ports.values()} == {(53, "UDP"), (53, "TCP")}
    (eps,) = [
        s for s in admin.json("get", "endpointslices", "-l", "kubernetes.io/service-name=kube-dns")["items"]
    ]
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "dns.raykube.io"
    host = eps["endpoints"][0]["addresses"][0]
    port = {p["name"]: p["port"] for p in eps["ports"]}["dns"]
    assert ports["dns"]["targetPort"] == port == ports["dns-tcp"]["targetPort"]

    ns = kubectl.namespace
    kubectl.apply(json.dumps(service("web")))
    web_ip = kubectl.json("get", "service", "web")["spec"]["clusterIP"]
    kubernetes_ip = Kubectl(raykube_cluster, "1.33", "default").json("get", "service", "kubernetes")["spec"][
        "clusterIP"
    ]
    # A StatefulSet-style pod: hostname + subdomain naming a headless Service.
    kubectl.apply(json.dumps(service("db", clusterIP="None")))
    kubectl.apply(json.dumps(sleeper("db-0", "db", hostname="db-0", subdomain="db")))
    kubectl.apply(json.dumps(sleeper("client", "client")))
    db_ip = running_ip(kubectl, "db-0")
    running_ip(kubectl, "client")

    resolv = kubectl.out("exec", "client", "--", "cat", "/etc/resolv.conf").splitlines()
    assert f"nameserver {dns_ip}" in resolv
    search = next(line.split()[1:] for line in resolv if line.startswith("search "))
    assert search[:3] == [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert "options ndots:5" in resolv

    names = ["kubernetes.default.svc.cluster.local", "web", f"web.{ns}", "db", "db-0.db", "nope"]
    want = {names[0]: kubernetes_ip, "web": web_ip, f"web.{ns}": web_ip, "nope": "NXDOMAIN"}
    want |= {"db": db_ip, "db-0.db": db_ip}  # headless: the ready pod; its hostname under the Service

    seen: list[dict[str, str]] = []

    def resolved() -> dict[str, str] | None:
        out = kubectl.out("exec", "client", "--", sys.executable, "-c", RESOLVE, host, str(port), *names)
        seen.append(dict(line.split() for line in out.splitlines()))
        return seen[-1] if seen[-1] == want else None  # the index follows the API within moments

    try:
        wait_until(resolved, "names resolved by kube-dns from inside the pod")
    except AssertionError:
        slices = kubectl.json("get", "endpointslices")["items"]
        raise AssertionError(f"want {want}\ngot {seen[-1:]}\nslices {json.dumps(slices)}") from None

    # Through the ClusterIP and the service proxy, as any program in the pod resolves.
    through = names[:5]

    def through_cluster_ip() -> str | None:
        proc = kubectl.run("exec", "client", "--", sys.executable, "-c", GETHOSTBYNAME, *through, check=False)
        return proc.stdout if proc.returncode == 0 else None  # until the proxy has the kube-dns rules

    out = wait_until(through_cluster_ip, "gethostbyname through the kube-dns ClusterIP")
    assert dict(line.split() for line in out.splitlines()) == {n: want[n] for n in through}
    # busybox nslookup asks every search domain and exits 1 when any of them is NXDOMAIN
    lookup = kubectl.run("exec", "client", "--", "busybox", "nslookup", "web", check=False).stdout
    assert f"Name:\tweb.{ns}.svc.cluster.local\nAddress: {web_ip}" in lookup, lookup
