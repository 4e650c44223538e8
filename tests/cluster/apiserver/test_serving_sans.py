"""The API server's serving certificate across control-plane nodes: which names it carries
(``serving_hosts``), re-issuing for a changed set with ``exact`` while the CA stays, and kubectl
reading a kubeconfig whose cluster lists every API server in the ``raykube.io/servers`` extension."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cluster.apiserver.admission.service_allocation import ServiceNetwork
from cluster.apiserver.kubeconfig import write_kubeconfig
from cluster.apiserver.tls import DEFAULT_SERVER_HOSTS, ensure_pki, serving_hosts
from cluster.machinery import pki as certutil
from tests.integration.support import KUBECTL_133

NODES = [("10.0.0.1", "cp-1"), ("10.0.0.2", "cp-2"), ("10.0.0.3", "cp-3")]


def _sans(pki_dir: Path) -> set[str]:
    loaded = certutil.load_pair(pki_dir / "apiserver.crt", pki_dir / "apiserver.key")
    assert loaded is not None
    return certutil.certificate_hosts(loaded[0])


def test_serving_hosts_names_every_node_the_service_ip_and_the_extra_names() -> None:
    hosts = serving_hosts(
        [*NODES, ("10.0.0.1", "cp-1"), ("", "")],
        ServiceNetwork.parse("10.96.0.0/12").kubernetes_ip,
        ["api.example.com"],
    )
    assert hosts == [
        "10.0.0.1",
        "cp-1",
        "10.0.0.2",
        "cp-2",
        "10.0.0.3",
        "cp-3",
        "10.96.0.1",
        "api.example.com",
    ]


def test_the_certificate_carries_them_and_the_in_cluster_names(tmp_path: Path) -> None:
    hosts = serving_hosts(NODES, "10.96.0.1", ["203.0.113.7", "api.example.com"])
    ensure_pki(tmp_path, hosts=hosts, exact=True)
    sans = _sans(tmp_path)
    assert {"127.0.0.1", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} <= sans
    assert {certutil.normalize_host(h) for h in DEFAULT_SERVER_HOSTS} <= sans
    assert {"10.0.0.1", "10.0.0.2", "10.0.0.3", "cp-1", "cp-2", "cp-3"} <= sans
    assert {"10.96.0.1", "203.0.113.7", "api.example.com"} <= sans


def test_a_changed_set_reissues_the_certificate_and_keeps_the_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, hosts=serving_hosts(NODES, "10.96.0.1", ["old.example.com"]), exact=True)
    ca, cert = pki.ca_cert.read_bytes(), pki.server_cert.read_bytes()
    ensure_pki(tmp_path, hosts=serving_hosts(NODES, "10.96.0.1", ["old.example.com"]), exact=True)
    assert pki.server_cert.read_bytes() == cert  # same names: nothing re-issued
    ensure_pki(tmp_path, hosts=serving_hosts(NODES[:2], "10.96.0.1", ["new.example.com"]), exact=True)
    assert pki.ca_cert.read_bytes() == ca
    assert pki.server_cert.read_bytes() != cert
    sans = _sans(tmp_path)
    assert "new.example.com" in sans
    assert "old.example.com" not in sans and "10.0.0.3" not in sans  # dropped, not accumulated
    # Without exact (other callers): adding keeps what was there.
    ensure_pki(tmp_path, hosts=["extra.example.com"])
    assert {"new.example.com", "extra.example.com"} <= _sans(tmp_path)


def test_kubectl_reads_a_kubeconfig_listing_several_servers(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", hosts=["10.0.0.1"])
    servers = ["https://127.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"]
    path = write_kubeconfig(tmp_path / "kubeconfig", server=servers[0], pki=pki, servers=servers)
    out = subprocess.run(
        [
            KUBECTL_133,
            "--kubeconfig",
            str(path),
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out == servers[0]
