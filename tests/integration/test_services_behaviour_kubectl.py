"""What a Service does for the pods using it, end to end through the real kubectl: the session cluster
(`raykube up`, ``bridge`` network as root, so each node runs ``proxy-<node>`` in nftables mode and
the ``kube-dns`` actor answers behind the kube-dns ClusterIP).

Shows (issue 13, "What it must show", beyond test_services_kubectl and test_dns_kubectl): a
Deployment's ClusterIP Service answers HTTP from a pod by ``web``, ``web.<ns>`` and
``web.<ns>.svc.cluster.local`` (the pod's search path, kube-dns, the proxy) on its targetPort; only
ready pods get traffic (a pod turned unready leaves the balancing and comes back when ready again);
``sessionAffinity: ClientIP`` keeps one client on one backend while no affinity spreads over both;
a StatefulSet's pods answer by their stable names under their headless Service, whose name resolves
to both pods; an ExternalName Service is a CNAME that a pod's resolver follows; a Service without
ready endpoints refuses connections at once (the proxy's REJECT) instead of letting them time out.

Pods of the process runtime run the host's commands, each in its own UTS namespace (hostname = the
pod's hostname), so the web servers are ``/usr/bin/python3 -c`` HTTP servers answering with their
hostname; ``GET /unready`` and ``GET /ready`` toggle what their readiness probe (``GET /healthz``)
gets.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import pytest

from cluster.apiserver.admission.service_allocation import ServiceNetwork
from cluster.up_config import ClusterConfig
from tests.capabilities import no_netns, require
from tests.integration import support
from tests.integration.conftest import Kubectl, RaykubeCluster
from tests.integration.test_dns_kubectl import GETHOSTBYNAME, running_ip
from tests.integration.test_services_kubectl import CLIENT_POD

pytestmark = pytest.mark.integration

wait_until = functools.partial(support.wait_until, timeout=120.0)

PORT = 8080
SERVER = (
    "import http.server, socket\n"
    "ready = [True]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        if self.path in ('/ready', '/unready'):\n"
    "            ready[0] = self.path == '/ready'\n"
    "        code = 503 if self.path == '/healthz' and not ready[0] else 200\n"
    "        body = socket.gethostname().encode()\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args):\n"
    "        pass\n"
    f"http.server.ThreadingHTTPServer(('0.0.0.0', {PORT}), H).serve_forever()\n"
)
# GET each URL argv[1] times; print each answer (a hostname) or the error's name, space separated.
FETCH = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "out = []\n"
    "for url in sys.argv[2:]:\n"
    "    for _ in range(int(sys.argv[1])):\n"
    "        try:\n"
    "            with opener.open(url, timeout=5) as r:\n"
    "                out.append(r.read().decode())\n"
    "        except Exception as e:\n"
    "            reason = getattr(e, 'reason', e)\n"
    "            out.append(type(reason if isinstance(reason, BaseException) else e).__name__)\n"
    "print(' '.join(out))\n"
)
# One TCP connection to argv[1]:argv[2]: "connected" or the error's name.
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()\n"
    "    print('connected')\n"
    "except OSError as e:\n"
    "    print(type(e).__name__)\n"
)
# The addresses a name resolves to (getaddrinfo through the pod's resolv.conf), sorted.
ADDRESSES = (
    "import socket, sys\n"
    "try:\n"
    "    infos = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)\n"
    "    print(' '.join(sorted({i[4][0] for i in infos})))\n"
    "except OSError as e:\n"
    "    print(type(e).__name__)\n"
)
# The answer section of an A query for argv[3] to the server argv[1]:argv[2], "TYPE data" a line.
DIG = r"""
import sys
from dnslib import DNSRecord, QTYPE
reply = DNSRecord.parse(DNSRecord.question(sys.argv[3], "A").send(sys.argv[1], int(sys.argv[2]), timeout=5))
for rr in reply.rr:
    print(QTYPE.get(rr.rtype), rr.rdata)
"""


def web_template(app: str) -> dict[str, Any]:
    """A pod template of the HTTP server, ready while its readiness probe gets 200 on /healthz."""
    probe = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1, "failureThreshold": 1}
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["/usr/bin/python3", "-c", SERVER],
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "readinessProbe": probe,
                }
            ],
        },
    }


def deployment(name: str = "web", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": web_template(name),
        },
    }


def service(name: str, app: str = "web", port: int = 80, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": "http", "port": port, "targetPort": PORT}],
            **spec,
        },
    }


def apply(kubectl: Kubectl, *items: dict[str, Any]) -> None:
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)}))


def ready_pods(kubectl: Kubectl, app: str, count: int) -> dict[str, str] | None:
    """{pod name: pod IP} of the pods labelled app=``app`` once ``count`` of them are Ready."""
    pods = kubectl.json("get", "pods", "-l", f"app={app}")["items"]
    ready = {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in pods
        if p["status"].get("podIP")
        and not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    }
    return ready if len(ready) == count else None


def slice_readiness(kubectl: Kubectl, svc: str) -> dict[str, bool]:
    """{pod name: ready} over the endpoints of the Service's EndpointSlices."""
    slices = kubectl.json("get", "endpointslices", "-l", f"kubernetes.io/service-name={svc}")["items"]
    return {
        e["targetRef"]["name"]: bool((e.get("conditions") or {}).get("ready"))
        for s in slices
        for e in s.get("endpoints") or ()
        if e.get("targetRef")
    }


def fetch(kubectl: Kubectl, n: int, *urls: str, pod: str = "client") -> list[str]:
    """From ``pod``: ``n`` GETs of each URL; the answering hostnames (or error names), in order."""
    return kubectl.out("exec", pod, "--", "/usr/bin/python3", "-c", FETCH, str(n), *urls).split()


def in_pod(kubectl: Kubectl, script: str, *args: str, python: str = "/usr/bin/python3") -> str:
    return kubectl.out("exec", "client", "--", python, "-c", script, *args).strip()


def start_web(kubectl: Kubectl, *services: dict[str, Any]) -> dict[str, str]:
    """The web Deployment, ``services`` and the client pod; {web pod name: IP} once all run."""
    apply(kubectl, deployment(), *services, CLIENT_POD)
    pods = wait_until(lambda: ready_pods(kubectl, "web", 2), "two Ready web pods")
    running_ip(kubectl, "client")
    return pods


def reaches_all(kubectl: Kubectl, url: str, names: set[str], n: int = 20) -> None:
    """Wait until GETs of ``url`` from the client have been answered by every one of ``names``."""
    seen: set[str] = set()

    def probe() -> set[str] | None:
        seen.update(fetch(kubectl, n, url))
        return seen if seen >= names else None

    wait_until(probe, f"{sorted(names)} answering {url}")


def dns_ip(cluster: RaykubeCluster) -> str:
    cfg = ClusterConfig.load(cluster.data_dir)
    assert cfg is not None
    return ServiceNetwork.parse(cfg.service_cidr).dns_ip


@pytest.mark.timeout(600)
def test_cluster_ip_answers_by_service_names(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    pods = start_web(kubectl, service("web"))
    ns = kubectl.namespace
    urls = ["http://web/", f"http://web.{ns}/", f"http://web.{ns}.svc.cluster.local/"]

    def answered() -> list[str] | None:
        out = fetch(kubectl, 1, *urls)
        return out if set(out) <= set(pods) else None  # until the proxy has the new Service

    answers = wait_until(answered, "the Service answering by its names")
    assert len(answers) == 3 and set(answers) <= set(pods), answers
    # port 80 is the Service's alone: the pods listen on 8080 (the targetPort)
    ip = next(iter(pods.values()))
    assert fetch(kubectl, 1, f"http://{ip}/") == ["ConnectionRefusedError"]


@pytest.mark.timeout(600)
def test_only_ready_pods_get_traffic(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    pods = start_web(kubectl, service("web"))
    url = f"http://{kubectl.json('get', 'service', 'web')['spec']['clusterIP']}/"
    reaches_all(kubectl, url, set(pods))
    unready, other = sorted(pods)

    fetch(kubectl, 1, f"http://127.0.0.1:{PORT}/unready", pod=unready)
    wait_until(
        lambda: slice_readiness(kubectl, "web") == {unready: False, other: True}, f"{unready} not ready"
    )
    wait_until(lambda: set(fetch(kubectl, 10, url)) == {other}, "the proxy following the slice")
    answers = fetch(kubectl, 20, url)
    assert answers == [other] * 20, answers

    fetch(kubectl, 1, f"http://127.0.0.1:{PORT}/ready", pod=unready)
    wait_until(lambda: slice_readiness(kubectl, "web") == {unready: True, other: True}, f"{unready} ready")
    reaches_all(kubectl, url, {unready, other})


@pytest.mark.timeout(600)
def test_client_ip_session_affinity(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    sticky = service("sticky", sessionAffinity="ClientIP")
    pods = start_web(kubectl, service("web"), sticky)
    both = {name: True for name in pods}
    wait_until(lambda: slice_readiness(kubectl, "sticky") == both, "both pods in the sticky Service's slice")
    reaches_all(kubectl, "http://web/", set(pods))  # the proxy has both endpoints

    def sticky_answers() -> list[str] | None:
        out = fetch(kubectl, 20, "http://sticky/")
        return out if set(out) <= set(pods) else None

    answers = wait_until(sticky_answers, "the sticky Service answering")
    assert len(set(answers)) == 1, answers  # 20 times the same backend: 2^-19 by chance
    spread = fetch(kubectl, 40, "http://web/")
    assert set(spread) == set(pods), spread  # both, but for a chance of 2^-39


@pytest.mark.timeout(600)
def test_statefulset_pods_by_stable_names(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    ns = kubectl.namespace
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": web_template("web"),
        },
    }
    apply(kubectl, service("web", port=PORT, clusterIP="None"), statefulset, CLIENT_POD)
    pods = wait_until(lambda: ready_pods(kubectl, "web", 2), "web-0 and web-1 Ready")
    assert set(pods) == {"web-0", "web-1"}
    running_ip(kubectl, "client")

    headless = f"web.{ns}.svc.cluster.local"
    want = " ".join(sorted(pods.values()))
    wait_until(lambda: in_pod(kubectl, ADDRESSES, headless) == want, f"{headless} resolving to both pods")
    urls = [f"http://{name}.{headless}:{PORT}/" for name in sorted(pods)]

    def by_name() -> list[str] | None:
        out = fetch(kubectl, 1, *urls)
        return out if set(out) <= set(pods) else None  # until kube-dns has the pod records

    assert wait_until(by_name, "the pods answering by name") == ["web-0", "web-1"]
    for name, ip in pods.items():
        assert in_pod(kubectl, ADDRESSES, f"{name}.{headless}") == ip


@pytest.mark.timeout(600)
def test_external_name_is_a_cname(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    target = "kubernetes.default.svc.cluster.local"
    apply(kubectl, {**service("ext"), "spec": {"type": "ExternalName", "externalName": target}}, CLIENT_POD)
    running_ip(kubectl, "client")
    default = Kubectl(raykube_cluster, "1.33", "default")
    kubernetes_ip = default.json("get", "service", "kubernetes")["spec"]["clusterIP"]
    fqdn = f"ext.{kubectl.namespace}.svc.cluster.local"

    def answer() -> list[str] | None:  # from kube-dns through its ClusterIP and the service proxy
        out = in_pod(kubectl, DIG, dns_ip(raykube_cluster), "53", fqdn, python=sys.executable)
        return out.splitlines() if out.startswith("CNAME") else None

    records = wait_until(answer, f"a CNAME for {fqdn}")
    assert records[0] == f"CNAME {target}.", records
    assert records[1:] == [f"A {kubernetes_ip}"], records  # the in-zone target, answered along
    assert in_pod(kubectl, ADDRESSES, "ext") == kubernetes_ip
    assert in_pod(kubectl, GETHOSTBYNAME, fqdn).split() == [fqdn, kubernetes_ip]


@pytest.mark.timeout(600)
def test_no_ready_endpoints_refuses(raykube_cluster: RaykubeCluster, kubectl: Kubectl) -> None:
    require("netns", no_netns())
    idle = {  # Running, never Ready: nothing listens on its probed port
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "idle", "labels": {"app": "idle"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
                }
            ],
        },
    }
    apply(kubectl, idle, service("idle", app="idle"), CLIENT_POD)
    running_ip(kubectl, "idle")
    running_ip(kubectl, "client")
    wait_until(
        lambda: slice_readiness(kubectl, "idle") == {"idle": False}, "the idle pod's endpoint, not ready"
    )
    cluster_ip = kubectl.json("get", "service", "idle")["spec"]["clusterIP"]

    # refused (the proxy's REJECT), where a dropped SYN would end in TimeoutError after 5 s
    refused = "ConnectionRefusedError"
    wait_until(lambda: in_pod(kubectl, CONNECT, cluster_ip, "80") == refused, "the ClusterIP refusing")
    assert [in_pod(kubectl, CONNECT, cluster_ip, "80") for _ in range(3)] == [refused] * 3
