"""The cluster add-ons ``raykube up`` places on the head node after the controller manager: cluster
DNS (``kube-dns``) and the Ingress controller (``ingress-controller``, our nginx).

Each is a detached Ray actor pinned to the deploying (head) node, given a kubeconfig of its own
identity (``cluster.identities``: the ServiceAccounts ``kube-system/kube-dns`` and
``kube-system/raykube-ingress``, granted by ``raykube_policy``); each keeps its own Service in
``kube-system`` and that Service's EndpointSlice pointing at itself, so pods reach it through the
service proxy. Ray glue, used by ``cluster.bootstrap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster import identities
from cluster.identities import component_kubeconfig
from netplugins.dns.actor import ACTOR_NAME as DNS_ACTOR
from netplugins.dns.actor import DnsActor
from netplugins.ingress.actor import ACTOR_NAME as INGRESS_ACTOR
from netplugins.ingress.actor import IngressActor
from netplugins.ingress.nginx import nginx_binary


@dataclass(frozen=True, slots=True)
class DnsUp:
    cluster_ip: str  # kube-system/kube-dns's ClusterIP, the pods' nameserver
    address: str  # host:port the kube-dns actor serves on (the Service's endpoint)


@dataclass(frozen=True, slots=True)
class IngressUp:
    http: str  # host:port of the Ingress controller's nginx (kube-system/raykube-ingress port 80)
    https: str  # and its TLS port (443)
    missing: str = ""  # why no Ingress controller runs (no nginx on this node); "" when it does


def _on_this_node(actor_class: Any, name: str, namespace: str, *args: Any) -> Any:
    """Create (or find) the detached actor ``name``, pinned to the node this driver runs on."""
    here = ray.get_runtime_context().get_node_id()
    return actor_class.options(
        name=name,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(*args)


def deploy_dns(data_dir: Path, namespace: str, cluster_ip: str, timeout: float = 120.0) -> DnsUp:
    """The cluster DNS actor (``kube-dns``) on this node; it ensures the Service
    ``kube-system/kube-dns`` at ``cluster_ip`` and the EndpointSlice pointing at itself. Killed with
    the other actors by ``teardown``."""
    host_ip = ray.util.get_node_ip_address()
    options = {"cluster_ip": cluster_ip, "kubeconfig_dir": str(data_dir), "node_name": None}
    kubeconfig = component_kubeconfig(data_dir, identities.DNS)
    actor = _on_this_node(DnsActor, DNS_ACTOR, namespace, kubeconfig, host_ip, 0, options)
    info = ray.get(actor.ready.remote(), timeout=timeout)
    return DnsUp(cluster_ip, f"{info['host']}:{info['port']}")


def deploy_ingress(data_dir: Path, namespace: str, timeout: float = 120.0) -> IngressUp:
    """The Ingress controller actor on this node: our own nginx on this node's IP (state in
    ``data_dir/ingress``); it ensures the IngressClass ``raykube`` and the LoadBalancer Service
    ``kube-system/raykube-ingress``. Without nginx here, nothing is started and the step says why:
    Ingress is the one part that needs a program raykube does not ship, and the cluster still comes
    up (as a Kubernetes cluster without an ingress controller). ``stop_ingress`` stops it."""
    if nginx_binary() is None:
        return IngressUp(
            "", "", missing="nginx not found (apt-get install nginx-light): Ingresses are not served"
        )
    host_ip = ray.util.get_node_ip_address()
    kubeconfig = component_kubeconfig(data_dir, identities.INGRESS)
    options = {"root_dir": str(data_dir / "ingress")}
    actor = _on_this_node(IngressActor, INGRESS_ACTOR, namespace, kubeconfig, host_ip, options)
    info = ray.get(actor.ready.remote(), timeout=timeout)
    return IngressUp(f"{host_ip}:{info['http_port']}", f"{host_ip}:{info['https_port']}")


def stop_ingress(namespace: str) -> bool:
    """Stop the Ingress controller's loop and its nginx gracefully (before ``teardown`` kills it)."""
    try:
        return bool(ray.get(ray.get_actor(INGRESS_ACTOR, namespace=namespace).shutdown.remote(), timeout=60))
    except Exception:  # absent or already dead: its nginx got SIGTERM with it (PR_SET_PDEATHSIG)
        return False
