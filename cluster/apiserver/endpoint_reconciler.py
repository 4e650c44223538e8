"""The ``kubernetes`` Service's Endpoints list every live API server, as kube-apiserver's lease
endpoint reconciler keeps them.

Several API servers serve one cluster (one per control-plane node, all state in the store), and each
runs an :class:`EndpointReconciler`:

* it holds a ``coordination.k8s.io/v1`` Lease in ``kube-system`` named ``apiserver-<hash of its node
  name>``, labelled ``apiserver.kubernetes.io/identity=kube-apiserver`` (as kube-apiserver's identity
  Leases are) and annotated with the address it serves on, and renews it every ``period``;
* a Lease counts as live while its record keeps changing: whether it did within ``lease_seconds`` is
  judged by this instance's own monotonic clock from when it saw the record change (the writer's
  ``renewTime`` is never compared with the local clock, so skew between hosts does not matter);
  a Lease unchanged for that long is expired and deleted (with its resourceVersion as precondition,
  so a holder that renewed meanwhile keeps it);
* it writes ``default/kubernetes`` Endpoints with one address per live Lease, sorted, and the
  ``kubernetes`` EndpointSlice (what service proxies read) with the same endpoints, each only when
  it differs from what is stored. Instances agree on the result, so they converge, not fight.

On a clean stop an instance deletes its own Lease and rewrites the Endpoints without itself, so a
rolling restart does not leave a dead address behind for a whole lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cluster.apiserver.errors import StatusError
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import list_prefix
from cluster.machinery.times import rfc3339_micro

log = logging.getLogger("raykube.apiserver")

LEASE_NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY_VALUE = "kube-apiserver"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ADDRESS_ANNOTATION = "raykube.io/apiserver-address"  # "<ip>:<port>"
NODE_ANNOTATION = "raykube.io/apiserver-node"
SERVICE_NAME = "kubernetes.io/service-name"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LEASE_SECONDS = 15  # kube-apiserver's --endpoint-reconciler lease TTL
PERIOD = 5.0


def lease_name(node: str) -> str:
    """``apiserver-<hash>``: stable for a node, a valid object name whatever the node is called."""
    return "apiserver-" + hashlib.sha256(node.encode()).hexdigest()[:16]


def _info(group: str, plural: str) -> ResourceInfo:
    info = lookup(group, "v1", plural)
    assert info is not None, plural
    return info


@dataclass
class _Seen:
    version: str
    since: float


@dataclass
class EndpointReconciler:
    """One API server's part in keeping ``default/kubernetes`` Endpoints right (module docstring).
    ``node`` names the instance (its Kubernetes node name), ``ip``/``port`` where it serves."""

    registry: Registry
    node: str
    ip: str
    port: int
    lease_seconds: int = LEASE_SECONDS
    period: float = PERIOD
    monotonic: Callable[[], float] = time.monotonic
    holder: str = field(default_factory=lambda: f"apiserver-{uuid.uuid4()}")
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.leases = _info("coordination.k8s.io", "leases")
        self.endpoints = _info("", "endpoints")
        self.slices = _info("discovery.k8s.io", "endpointslices")
        self.name = lease_name(self.node)

    async def run(self) -> None:
        """Reconcile every ``period`` until cancelled; an error is logged and retried next time."""
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if isinstance(err, StatusError) and err.code == 409:
                    log.info("another API server wrote the same object first; reconciling again soon")
                else:
                    log.exception(
                        "reconciling the kubernetes Endpoints failed; retrying in %.0fs", self.period
                    )
            await asyncio.sleep(self.period)

    async def reconcile(self) -> list[str]:
        """Renew this instance's Lease, drop expired ones, write the Endpoints; returns their addresses."""
        await self._renew()
        live = await self._live_leases()
        await self._write_endpoints(live)
        return [_address(lease)[0] for lease in live]

    async def stop(self) -> None:
        """Give up this instance's Lease and take its address out of the Endpoints."""
        with contextlib.suppress(StatusError):
            await self.registry.delete(self.leases, LEASE_NAMESPACE, self.name, {})
        self._seen.pop(self.name, None)
        live = [lease for lease in await self._live_leases() if lease["metadata"]["name"] != self.name]
        await self._write_endpoints(live)

    # ------------------------------------------------------------------ steps

    def _lease(self, current: dict[str, Any] | None) -> dict[str, Any]:
        now = rfc3339_micro(datetime.now(UTC))
        spec = dict((current or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.holder:
            spec.update(holderIdentity=self.holder, acquireTime=now)
        spec.update(leaseDurationSeconds=self.lease_seconds, renewTime=now)
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": LEASE_NAMESPACE,
            "labels": {IDENTITY_LABEL: IDENTITY_VALUE, HOSTNAME_LABEL: self.node},
            "annotations": {ADDRESS_ANNOTATION: f"{self.ip}:{self.port}", NODE_ANNOTATION: self.node},
        }
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    async def _renew(self) -> None:
        try:
            current = await self.registry.get(self.leases, LEASE_NAMESPACE, self.name)
        except StatusError as err:
            if err.code != 404:
                raise
            current = None
        if current is None:
            await self.registry.create(self.leases, LEASE_NAMESPACE, self._lease(None))
        else:
            await self.registry.update(self.leases, LEASE_NAMESPACE, self.name, self._lease(current))

    async def _live_leases(self) -> list[dict[str, Any]]:
        listed = await self.registry.store.list(list_prefix(self.leases, LEASE_NAMESPACE))
        now = self.monotonic()
        live, names = [], set()
        for lease in listed.items:
            meta = lease["metadata"]
            if (meta.get("labels") or {}).get(IDENTITY_LABEL) != IDENTITY_VALUE:
                continue
            name, version = meta["name"], meta["resourceVersion"]
            names.add(name)
            seen = self._seen.get(name)
            if seen is None or seen.version != version:
                seen = self._seen[name] = _Seen(version, now)
            if name == self.name or now - seen.since < _duration(lease, self.lease_seconds):
                live.append(lease)
                continue
            log.info("API server lease %s expired (unchanged for %.0fs): deleting it", name, now - seen.since)
            options = {"preconditions": {"resourceVersion": version}}
            with contextlib.suppress(StatusError):  # renewed or deleted by someone else meanwhile
                await self.registry.delete(self.leases, LEASE_NAMESPACE, name, options)
        for gone in set(self._seen) - names:
            del self._seen[gone]
        return [lease for lease in live if _address(lease)[0]]

    async def _write_endpoints(self, live: list[dict[str, Any]]) -> None:
        entries = sorted({(*_address(lease), _node(lease)) for lease in live})
        subsets = []
        for port in sorted({p for _, p, _ in entries}):
            addresses = [
                {"ip": ip, "nodeName": node} if node else {"ip": ip} for ip, p, node in entries if p == port
            ]
            subsets.append(
                {"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
            )
        await self._put(
            self.endpoints,
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {SKIP_MIRROR: "true"}},
                "subsets": subsets,
            },
            ("subsets",),
        )
        # The EndpointSlice is what service proxies read: pods reach the API at the kubernetes ClusterIP.
        # One slice has one port; instances all serve the same one (the first, should they differ).
        port = entries[0][1] if entries else 0
        ipv6 = any(":" in ip for ip, _, _ in entries)
        endpoints = [
            {"addresses": [ip], "conditions": {"ready": True}, **({"nodeName": node} if node else {})}
            for ip, p, node in entries
            if p == port and (":" in ip) == ipv6
        ]
        await self._put(
            self.slices,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {SERVICE_NAME: "kubernetes"},
                },
                "addressType": "IPv6" if ipv6 else "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}] if endpoints else [],
            },
            ("addressType", "endpoints", "ports"),
        )

    async def _put(self, info: ResourceInfo, body: dict[str, Any], fields: tuple[str, ...]) -> None:
        """Create ``default/kubernetes`` of ``info`` as ``body``, or update it when one of ``fields``
        differs (a stale read gives 409: another instance wrote first, the next pass converges)."""
        try:
            current: dict[str, Any] | None = await self.registry.get(info, "default", "kubernetes")
        except StatusError as err:
            if err.code != 404:
                raise
            current = None
        if current is None:
            await self.registry.create(info, "default", body)
            return
        if all((current.get(f) or []) == (body.get(f) or []) for f in fields):
            return
        meta = current["metadata"]
        labels = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
        body["metadata"] = {**meta, "labels": labels, "resourceVersion": meta["resourceVersion"]}
        await self.registry.update(info, "default", "kubernetes", body)


def _address(lease: dict[str, Any]) -> tuple[str, int]:
    raw = str(((lease["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION)) or "")
    host, _, port = raw.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return "", 0


def _node(lease: dict[str, Any]) -> str:
    return str((lease["metadata"].get("annotations") or {}).get(NODE_ANNOTATION) or "")


def _duration(lease: dict[str, Any], default: int) -> float:
    try:
        return float((lease.get("spec") or {}).get("leaseDurationSeconds") or default)
    except (TypeError, ValueError):
        return float(default)
