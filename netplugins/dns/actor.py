"""The cluster DNS add-on as a Ray actor (``kube-dns``, one per cluster, pinned to the head node).

:class:`KubeDns` (no Ray) watches Services and EndpointSlices (and Pods, for ``pods: verified``)
through informers, rebuilds the :class:`~netplugins.dns.records.DnsIndex` whenever one of them
changes (changes arriving together make one rebuild) and hands it to a
:class:`~netplugins.dns.server.DnsServer` listening on the head node's address, UDP and TCP, on a
port of its own. Once serving it ensures the selector-less Service ``kube-system/kube-dns`` (the
pinned ClusterIP, ports ``dns`` 53/UDP and ``dns-tcp`` 53/TCP with the server's port as targetPort)
and its EndpointSlice ``kube-dns-raykube`` (managed by ``dns.raykube.io``, one endpoint: the
server's address and port), so the service proxy sends ClusterIP:53 to it. Both are rewritten on
every start: a restarted actor may have another port.

:class:`DnsActor` is the thin Ray shell (``max_restarts=-1``): ``ready()`` says where it serves,
``shutdown()`` stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
import yaml  # type: ignore[import-untyped]

from cluster.client.informer import Informer
from cluster.client.kubeconfig import settings_from_config
from cluster.client.rest import ApiClient, ApiError
from cluster.machinery.tasks import cancel_and_wait
from netplugins.dns.records import DnsIndex, DnsOptions
from netplugins.dns.server import DnsServer, upstreams_from_resolv_conf

log = logging.getLogger("raykube.dns")

ACTOR_NAME = "kube-dns"
SERVICE_NAMESPACE = "kube-system"
SERVICE_NAME = "kube-dns"
SLICE_NAME = "kube-dns-raykube"
MANAGED_BY = "dns.raykube.io"  # a label value: no "/" allowed
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
DISCOVERY = "discovery.k8s.io/v1"
REBUILD_DELAY = 0.05  # seconds: changes arriving together make one rebuild


def dns_service(cluster_ip: str, port: int) -> dict[str, Any]:
    """The kube-dns Service: no selector (its EndpointSlice is ours), ClusterIP pinned."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE_NAME,
            "namespace": SERVICE_NAMESPACE,
            "labels": {"k8s-app": "kube-dns"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port},
            ],
        },
    }


def dns_slice(host_ip: str, port: int, node_name: str | None, owner: dict[str, Any] | None) -> dict[str, Any]:
    """The kube-dns EndpointSlice: one ready endpoint, the server's address and port."""
    endpoint: dict[str, Any] = {
        "addresses": [host_ip],
        "conditions": {"ready": True, "serving": True, "terminating": False},
    }
    if node_name:
        endpoint["nodeName"] = node_name
    meta: dict[str, Any] = {
        "name": SLICE_NAME,
        "namespace": SERVICE_NAMESPACE,
        "labels": {SERVICE_NAME_LABEL: SERVICE_NAME, MANAGED_BY_LABEL: MANAGED_BY},
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Service", "name": SERVICE_NAME, "uid": owner["metadata"]["uid"]}
        ]
    return {
        "apiVersion": DISCOVERY,
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": "IPv6" if ":" in host_ip else "IPv4",
        "endpoints": [endpoint],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"},
        ],
    }


async def _create_or_replace(client: ApiClient, gv: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    try:
        current = await client.get(gv, plural, meta["name"], meta["namespace"])
    except ApiError as err:
        if not err.not_found:
            raise
        return await client.create(gv, plural, body, meta["namespace"])
    merged = {**current, **{k: v for k, v in body.items() if k != "metadata"}}
    merged["metadata"] = {**current["metadata"], **meta}
    if plural == "services":  # ClusterIP and friends are immutable or allocated: keep the server's
        merged["spec"] = {**current["spec"], "ports": body["spec"]["ports"]}
    if merged == current:
        return current
    return await client.update(gv, plural, merged, meta["namespace"])


class KubeDns:
    """Informers -> index -> server, plus the kube-dns Service and EndpointSlice (module docstring)."""

    def __init__(
        self,
        client: ApiClient,
        host_ip: str,
        port: int,
        options: DnsOptions,
        upstreams: Sequence[str],
        *,
        cluster_ip: str | None = None,
        node_name: str | None = None,
    ) -> None:
        self.client = client
        self.host_ip = host_ip
        self.port = port
        self.options = options
        self.cluster_ip = cluster_ip
        self.node_name = node_name
        self.server = DnsServer(DnsIndex.build([], [], options=options), upstreams)
        self.informers = {
            "services": Informer(client, "v1", "services"),
            "endpointslices": Informer(client, DISCOVERY, "endpointslices"),
        }
        if options.pods == "verified":  # only then do pod records depend on the pods
            self.informers["pods"] = Informer(client, "v1", "pods")
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.rebuilds = 0

    async def start(self, timeout: float = 60.0) -> int:
        """Sync the informers, serve, ensure the Service and slice; returns the bound port."""
        for informer in self.informers.values():
            informer.add_handler(
                on_add=lambda _o: self._dirty.set(),
                on_update=self._updated,
                on_delete=lambda _o: self._dirty.set(),
            )
            self._tasks.append(asyncio.get_running_loop().create_task(informer.run()))
        for name, informer in self.informers.items():
            if not await informer.wait_synced(timeout):
                raise TimeoutError(f"kube-dns: {name} informer did not sync within {timeout}s")
        self.rebuild()
        self._tasks.append(asyncio.get_running_loop().create_task(self._rebuild_loop()))
        self.port = await self.server.start(self.host_ip, self.port)
        if self.cluster_ip:
            await self.ensure_service()
        log.info("kube-dns serving %s on %s:%d", self.options.zone, self.host_ip, self.port)
        return self.port

    def _updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        # Resyncs and status heartbeats re-deliver unchanged objects: only a new version rebuilds.
        if (old.get("metadata") or {}).get("resourceVersion") != (new.get("metadata") or {}).get(
            "resourceVersion"
        ):
            self._dirty.set()

    def rebuild(self) -> None:
        self.server.index = DnsIndex.build(
            self.informers["services"].store.list(),
            self.informers["endpointslices"].store.list(),
            self.informers["pods"].store.list() if "pods" in self.informers else [],
            self.options,
        )
        self.rebuilds += 1

    async def _rebuild_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(REBUILD_DELAY)
            self._dirty.clear()
            try:
                self.rebuild()
            except Exception:  # a malformed object must not stop DNS: keep the last index
                log.exception("kube-dns: rebuilding the index failed")

    async def ensure_service(self) -> None:
        assert self.cluster_ip is not None
        service = await _create_or_replace(
            self.client, "v1", "services", dns_service(self.cluster_ip, self.port)
        )
        if service["spec"].get("clusterIP") != self.cluster_ip:
            log.warning(
                "kube-dns: Service has ClusterIP %s, pods are told %s",
                service["spec"].get("clusterIP"),
                self.cluster_ip,
            )
        body = dns_slice(self.host_ip, self.port, self.node_name, service)
        await _create_or_replace(self.client, DISCOVERY, "endpointslices", body)

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        await self.server.close()


def client_from_kubeconfig_text(text: str, base_dir: str = ".") -> ApiClient:
    return ApiClient.from_settings(settings_from_config(yaml.safe_load(text) or {}, base_dir))


def node_upstreams(resolv_conf: str, skip: Sequence[str]) -> list[str]:
    try:
        text = Path(resolv_conf).read_text()
    except OSError as err:
        log.warning("kube-dns: cannot read %s (%s): no upstream resolvers", resolv_conf, err)
        return []
    return upstreams_from_resolv_conf(text, skip)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)  # type: ignore[call-overload]
class DnsActor:
    """``DnsActor(kubeconfig_text, host_ip, port, options)``; options: ``zone``, ``ttl``, ``pods``
    (see ``DnsOptions``), ``cluster_ip`` (the Service's; None: no Service/slice written),
    ``upstreams`` (default: the node's resolv.conf without our own addresses), ``resolv_conf``,
    ``kubeconfig_dir`` (what relative kubeconfig paths mean), ``node_name``."""

    def __init__(self, kubeconfig_text: str, host_ip: str, port: int, options: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        self.args = (kubeconfig_text, host_ip, port, dict(options))
        self.dns = self._new()
        self._started = asyncio.get_event_loop().create_task(self.dns.start())

    def _new(self) -> KubeDns:
        kubeconfig_text, host_ip, port, options = self.args
        cluster_ip = options.get("cluster_ip")
        upstreams = options.get("upstreams")
        if upstreams is None:
            skip = [host_ip] + ([cluster_ip] if cluster_ip else [])
            upstreams = node_upstreams(str(options.get("resolv_conf") or "/etc/resolv.conf"), skip)
        client = client_from_kubeconfig_text(kubeconfig_text, str(options.get("kubeconfig_dir") or "."))
        return KubeDns(
            client,
            host_ip,
            port,
            DnsOptions.from_dict(options),
            list(upstreams),
            cluster_ip=cluster_ip,
            node_name=options.get("node_name"),
        )

    async def ready(self) -> dict[str, Any]:
        """``{"host", "port", "zone", "upstreams"}`` once serving (a failed start is tried afresh)."""
        if self._started.done() and self._started.exception() is not None:
            log.warning("kube-dns: start failed (%s); retrying", self._started.exception())
            await self.dns.close()
            await self.dns.client.close()
            self.dns = self._new()
            self._started = asyncio.get_event_loop().create_task(self.dns.start())
        await asyncio.shield(self._started)
        return {
            "host": self.dns.host_ip,
            "port": self.dns.port,
            "zone": self.dns.options.zone,
            "upstreams": [f"{h}:{p}" for h, p in self.dns.server.upstreams],
        }

    async def lookup(self, name: str, qtype: str = "A") -> list[str]:
        """The index's answer records as text (for ``raykube status`` and tests)."""
        answer = self.dns.server.index.lookup(name, qtype)
        return [] if answer is None else [str(rr.data) for rr in answer.answers]

    async def shutdown(self) -> None:
        await self.dns.close()
        await self.dns.client.close()
