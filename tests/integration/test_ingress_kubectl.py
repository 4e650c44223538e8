"""Ingress end to end on the session cluster (`raykube up`: the ingress-controller actor and its
nginx): two Deployments behind two Services, one Ingress routing two hosts and a path prefix to
them, TLS for one host from a Secret made by `kubectl create secret tls`; requests go to nginx
(the kube-system/raykube-ingress EndpointSlice's address) and then to the Ingress address (the LB IP
the service-lb-controller gave that Service, published in the Ingress status, forwarded to nginx by
the service proxy), with Host/SNI set as curl --resolve would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl
from tests.netplugins.ingress import kit

pytestmark = pytest.mark.integration

SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        b = (os.environ['WHO'] + ' ' + self.path).encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
)


def app(name: str) -> str:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "web",
                            "image": "busybox",
                            "command": ["/usr/bin/python3", "-c", SERVER],
                            "env": [{"name": "WHO", "value": name}],
                            "ports": [{"containerPort": 8080, "name": "web"}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]})


def ingress_manifest() -> str:
    def path(p: str, svc: str, port: dict[str, Any]) -> dict[str, Any]:
        return {"path": p, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": port}}}

    return json.dumps(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {
                "tls": [{"hosts": ["b.example.test"], "secretName": "b-tls"}],
                "rules": [
                    {"host": "a.example.test", "http": {"paths": [path("/", "alpha", {"number": 80})]}},
                    {
                        "host": "b.example.test",
                        "http": {
                            "paths": [
                                path("/api", "beta", {"name": "http"}),
                                path("/", "alpha", {"number": 80}),
                            ]
                        },
                    },
                ],
            },
        }
    )


def eventually(check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError) as err:
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {err}") from err
            time.sleep(0.5)


def nginx_address(kubectl: Kubectl) -> tuple[str, int, int]:
    slc = kubectl.json("get", "endpointslice", "raykube-ingress", "-n", "kube-system", namespaced=False)
    ports = {p["name"]: p["port"] for p in slc["ports"]}
    return slc["endpoints"][0]["addresses"][0], ports["http"], ports["https"]


def test_ingress_routes_hosts_paths_and_tls(kubectl: Kubectl, tmp_path: Path) -> None:
    cls = kubectl.json("get", "ingressclass", "raykube", namespaced=False)
    assert cls["spec"]["controller"] == "raykube.io/ingress-nginx"
    kubectl.apply(app("alpha"))
    kubectl.apply(app("beta"))
    cert, key = kit.self_signed("b.example.test")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    kubectl.run(
        "create",
        "secret",
        "tls",
        "b-tls",
        "--cert",
        str(tmp_path / "tls.crt"),
        "--key",
        str(tmp_path / "tls.key"),
    )
    kubectl.apply(ingress_manifest())
    ip, http, https = nginx_address(kubectl)

    def routed() -> None:
        assert kit.get(http, "a.example.test", "/x", address=ip) == (200, "alpha /x")
        assert kit.get(http, "b.example.test", "/api/v1", address=ip) == (200, "beta /api/v1")
        assert kit.get(http, "b.example.test", "/apix", address=ip) == (200, "alpha /apix")
        assert kit.get(http, "c.example.test", "/", address=ip)[0] == 404

    eventually(routed)
    ca = tmp_path / "tls.crt"
    assert kit.get_tls(https, "b.example.test", "/api", str(ca), address=ip) == (200, "beta /api")

    # The service-lb-controller gives kube-system/raykube-ingress an address from the LB pool; the
    # controller publishes it on the Ingress, and the service proxy forwards <LB IP>:80/443 to nginx.
    lb_ip = eventually(lambda: _lb_ip(kubectl), timeout=60)
    eventually(lambda: _status_is(kubectl, lb_ip), timeout=30)
    assert eventually(lambda: kit.get(80, "b.example.test", "/api/lb", address=lb_ip, timeout=5), 30) == (
        200,
        "beta /api/lb",
    )
    assert kit.get_tls(443, "b.example.test", "/api/lb", str(ca), address=lb_ip) == (200, "beta /api/lb")


def _lb_ip(kubectl: Kubectl) -> str:
    svc = kubectl.json("get", "service", "raykube-ingress", "-n", "kube-system", namespaced=False)
    assert svc["spec"]["type"] == "LoadBalancer"
    lb = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress")
    assert lb, svc.get("status")
    return str(lb[0]["ip"])


def _status_is(kubectl: Kubectl, ip: str) -> None:
    ing = kubectl.json("get", "ingress", "web")
    assert ing["status"]["loadBalancer"]["ingress"][0]["ip"] == ip, ing.get("status")
