"""The node IPAM controller (kube-controller-manager's ``node-ipam-controller`` with the range
allocator): gives every Node a ``spec.podCIDR`` (and ``spec.podCIDRs``) carved from the cluster CIDR.

Options (``ControllerOptions.extra``):

* ``cluster_cidr``: one CIDR or a comma-separated dual-stack pair (default ``10.244.0.0/16``);
* ``node_cidr_mask_size``: the per-node prefix length of a single-stack cluster; in either case
  ``node_cidr_mask_size_ipv4`` / ``node_cidr_mask_size_ipv6`` win for their family (defaults 24, 64).

Invariants, as kube's ``RangeAllocator``:

* the allocations live only in the Nodes: before its first decision the controller occupies every
  CIDR already on a Node (so a restarted controller never hands one out twice);
* a Node without ``spec.podCIDR`` gets the next free subnet of each cluster CIDR, written with one
  merge patch of ``spec.podCIDR`` and ``spec.podCIDRs``; a patch that fails is retried after a fresh
  GET (a Node that got CIDRs meanwhile keeps them and ours are released);
* the API server never lets a podCIDR change once set, so a Node's CIDRs are only ever occupied,
  and released when the Node is deleted;
* problems are Events on the Node, once per state: ``CIDRNotAvailable`` when the cluster CIDR is
  exhausted, or when a Node's CIDR lies outside it or overlaps another Node's; ``CIDRAssignmentFailed``
  when the patch keeps failing.

:class:`NodeCidrs` is the pure bookkeeping (which node holds which subnets), over
:class:`~cluster.machinery.cidrset.CidrSet`; the controller reads Nodes and writes patches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.cidrset import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_NODE_MASK,
    CidrError,
    CidrSet,
    CidrSetFull,
    IPNetwork,
    parse_cidr,
    parse_cluster_cidrs,
)

log = logging.getLogger("raykube.controllers.nodeipam")

CIDR_NOT_AVAILABLE = "CIDRNotAvailable"
CIDR_ASSIGNMENT_FAILED = "CIDRAssignmentFailed"
UPDATE_RETRIES = 3  # kube's cidrUpdateRetries


def mask_sizes(cluster_cidrs: Sequence[IPNetwork], extra: Mapping[str, Any]) -> list[int]:
    """The node prefix length for each cluster CIDR (see the module docstring for the keys)."""
    single = extra.get("node_cidr_mask_size") if len(cluster_cidrs) == 1 else None
    sizes = []
    for cidr in cluster_cidrs:
        size = (
            extra.get(f"node_cidr_mask_size_ipv{cidr.version}") or single or DEFAULT_NODE_MASK[cidr.version]
        )
        sizes.append(int(size))
    return sizes


class NodeCidrs:
    """Which Node holds which subnets of the cluster CIDRs (one :class:`CidrSet` per family).

    ``observe`` records what a Node carries, ``assign`` picks CIDRs for a Node that has none,
    ``forget`` frees a deleted Node's. Not thread-safe; the controller calls it from one event loop
    without awaiting in between, so each call is atomic."""

    def __init__(self, cluster_cidrs: Sequence[IPNetwork], node_mask_sizes: Sequence[int]) -> None:
        self.sets = [CidrSet(c, m) for c, m in zip(cluster_cidrs, node_mask_sizes, strict=True)]
        self.held: dict[str, tuple[IPNetwork, ...]] = {}  # node -> the subnets occupied for it
        self.seen: dict[str, tuple[str, ...]] = {}  # node -> the spec.podCIDRs last observed

    def _set_for(self, cidr: IPNetwork) -> CidrSet | None:
        return next((s for s in self.sets if s.cluster_cidr.version == cidr.version), None)

    def holder_of(self, cidr: IPNetwork) -> str | None:
        for node, held in self.held.items():
            if any(h.version == cidr.version and h.overlaps(cidr) for h in held):
                return node
        return None

    def observe(self, node: str, pod_cidrs: Sequence[str]) -> list[str]:
        """Occupy the CIDRs ``node`` carries; the problems found (each said once per change of the
        node's CIDRs): a CIDR that does not parse, lies outside the cluster CIDRs, or overlaps
        another node's (such a CIDR is not held for ``node``)."""
        cidrs = tuple(pod_cidrs)
        if self.seen.get(node) == cidrs:
            return []
        self.forget(node)
        self.seen[node] = cidrs
        problems: list[str] = []
        held: list[IPNetwork] = []
        for raw in cidrs:
            try:
                cidr = parse_cidr(raw)
            except CidrError:
                problems.append(f"podCIDR {raw!r} is not a valid CIDR")
                continue
            cidr_set = self._set_for(cidr)
            if cidr_set is None or not cidr.overlaps(cidr_set.cluster_cidr):
                problems.append(f"podCIDR {cidr} is outside the cluster CIDR {self.describe()}")
                continue
            other = self.holder_of(cidr)
            if other is not None:
                problems.append(f"podCIDR {cidr} overlaps the podCIDR of node {other}")
                continue
            cidr_set.occupy(cidr)
            held.append(cidr)
        if held:
            self.held[node] = tuple(held)
        return problems

    def assign(self, node: str) -> tuple[IPNetwork, ...]:
        """The CIDRs for ``node``: those already held for it, else the next free subnet of each
        cluster CIDR. ``CidrSetFull`` when one is exhausted (then nothing is taken)."""
        if node in self.held:
            return self.held[node]
        taken: list[tuple[CidrSet, IPNetwork]] = []
        try:
            for cidr_set in self.sets:
                taken.append((cidr_set, cidr_set.allocate_next()))
        except CidrSetFull:
            for cidr_set, cidr in taken:
                cidr_set.release(cidr)
            raise
        self.held[node] = tuple(cidr for _, cidr in taken)
        return self.held[node]

    def written(self, node: str) -> None:
        """``node`` now carries what ``assign`` gave it: observing that is a no-op."""
        self.seen[node] = tuple(str(c) for c in self.held.get(node, ()))

    def forget(self, node: str) -> None:
        """Release what is held for ``node`` (deleted, or its assignment was not written)."""
        self.seen.pop(node, None)
        for cidr in self.held.pop(node, ()):
            cidr_set = self._set_for(cidr)
            if cidr_set is not None:
                cidr_set.release(cidr)

    def describe(self) -> str:
        return ",".join(str(s.cluster_cidr) for s in self.sets)


def pod_cidrs_of(node: Mapping[str, Any]) -> list[str]:
    """``spec.podCIDRs``, or ``[spec.podCIDR]`` for a Node written with the single field only."""
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or () if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return cidrs


def cidr_patch(cidrs: Sequence[IPNetwork]) -> dict[str, Any]:
    return {"spec": {"podCIDR": str(cidrs[0]), "podCIDRs": [str(c) for c in cidrs]}}


class NodeIpamController(Controller):
    NAME: ClassVar[str] = "node-ipam-controller"
    COMPONENT: ClassVar[str] = "cidrAllocator"  # kube's event source for the range allocator

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        extra = ctx.options.extra
        cluster_cidrs = parse_cluster_cidrs(str(extra.get("cluster_cidr") or DEFAULT_CLUSTER_CIDR))
        self.cidrs = NodeCidrs(cluster_cidrs, mask_sizes(cluster_cidrs, extra))
        self.nodes = self.watch(
            "v1",
            "nodes",
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self._primed = False
        self._reported: dict[str, str] = {}  # node -> the last problem reported (said once)

    def _prime(self) -> None:
        """Occupy every CIDR the cached Nodes carry, before the first assignment (the manager starts
        workers only after the informers have listed)."""
        if self._primed:
            return
        self._primed = True
        for node in self.nodes.list():
            self._observe(node)

    def _observe(self, node: Mapping[str, Any]) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        for problem in self.cidrs.observe(name, pod_cidrs_of(node)):
            log.warning("node %s: %s", name, problem)
            self.recorder.event(node, "Warning", CIDR_NOT_AVAILABLE, problem)

    def _report(self, node: Mapping[str, Any], reason: str, message: str) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        if self._reported.get(name) != message:
            self._reported[name] = message
            log.warning("node %s: %s", name, message)
            self.recorder.event(node, "Warning", reason, message)

    async def reconcile(self, key: str) -> float | None:
        self._prime()
        node = self.nodes.get_by_key(key)
        if node is None:
            freed = key in self.cidrs.held
            self.cidrs.forget(key)
            self._reported.pop(key, None)
            if freed:  # nodes waiting in backoff for a free CIDR need not wait for their next retry
                for waiting in self.nodes.list():
                    if not pod_cidrs_of(waiting):
                        self.enqueue(waiting)
            return None
        if pod_cidrs_of(node):
            self._observe(node)
            return None
        try:
            cidrs = self.cidrs.assign(key)
        except CidrSetFull:
            self._report(node, CIDR_NOT_AVAILABLE, f"no podCIDR left in {self.cidrs.describe()}")
            raise
        await self._write(node, cidrs)
        return None

    async def _write(self, node: Mapping[str, Any], cidrs: tuple[IPNetwork, ...]) -> None:
        """Patch ``cidrs`` onto the Node; on failure look at the Node afresh and try again, up to
        ``UPDATE_RETRIES`` times. A Node that has CIDRs meanwhile keeps them (ours are released)."""
        name = node["metadata"]["name"]
        error: ApiError | None = None
        for _ in range(UPDATE_RETRIES):
            try:
                await self.client.patch("v1", "nodes", name, cidr_patch(cidrs))
                self._reported.pop(name, None)
                self.cidrs.written(name)
                log.info("node %s: podCIDRs %s", name, ",".join(map(str, cidrs)))
                return
            except ApiError as err:
                error = err
            try:
                fresh = await self.client.get("v1", "nodes", name)
            except ApiError as err:
                if err.status == 404:  # deleted meanwhile: nothing to write, nothing to keep
                    self.cidrs.forget(name)
                    return
                continue
            if pod_cidrs_of(fresh):
                self.cidrs.forget(name)
                self._observe(fresh)
                return
        self.cidrs.forget(name)
        self._report(node, CIDR_ASSIGNMENT_FAILED, f"could not write podCIDRs to the node: {error}")
        raise error or RuntimeError("unreachable")
