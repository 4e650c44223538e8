"""Carving a cluster CIDR into equal per-node subnets (kube's ``nodeipam/ipam/cidrset``).

A :class:`CidrSet` splits one cluster CIDR (``10.244.0.0/16``) into ``2**(mask - prefix)`` subnets of
the node mask size (``/24``) and remembers which are in use. Invariants:

* a subnet is handed out by :meth:`CidrSet.allocate_next` only while it is not in use; the search
  starts after the last subnet handed out and wraps (kube's ``nextCandidate``), so a just-released
  subnet is the last to be reused; on a fresh set that is the lowest free one;
* :meth:`CidrSet.occupy` and :meth:`CidrSet.release` take any CIDR that overlaps the cluster CIDR and
  mark every subnet it touches (a ``/23`` marks two ``/24``); both are idempotent;
* a CIDR that does not overlap the cluster CIDR raises :class:`CidrOutOfRange`, a full set
  :class:`CidrSetFull`; nothing changes when they are raised.

Pure: no I/O, no clock. :func:`parse_cluster_cidrs` reads ``--cluster-cidr`` (one CIDR or a
comma-separated dual-stack pair).
"""

from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_MASK = {4: 24, 6: 64}
MAX_SUBNET_BITS = 16  # kube's clusterSubnetMaxDiff: at most 65536 subnets per cluster CIDR


class CidrError(ValueError):
    pass


class CidrOutOfRange(CidrError):
    pass


class CidrSetFull(CidrError):
    pass


def parse_cidr(value: str) -> IPNetwork:
    """A network in canonical form; ``CidrError`` when ``value`` is not a CIDR or has host bits set."""
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as err:
        raise CidrError(f"{value!r} is not a valid CIDR: {err}") from None


def parse_cluster_cidrs(value: str) -> list[IPNetwork]:
    """``--cluster-cidr``: one CIDR, or two (one IPv4, one IPv6) separated by a comma."""
    cidrs = [parse_cidr(part) for part in value.split(",") if part.strip()]
    if not cidrs:
        raise CidrError("the cluster CIDR is empty")
    if len(cidrs) > 2 or len({c.version for c in cidrs}) != len(cidrs):
        raise CidrError(f"{value!r}: give one CIDR, or a dual-stack pair (one IPv4 and one IPv6)")
    return cidrs


class CidrSet:
    """The subnets of ``cluster_cidr`` of size ``/node_mask_size`` and which of them are in use."""

    def __init__(self, cluster_cidr: IPNetwork | str, node_mask_size: int) -> None:
        cluster = parse_cidr(cluster_cidr) if isinstance(cluster_cidr, str) else cluster_cidr
        if not cluster.prefixlen <= node_mask_size <= cluster.max_prefixlen:
            raise CidrError(
                f"node mask size /{node_mask_size} must be between the cluster CIDR's "
                f"/{cluster.prefixlen} and /{cluster.max_prefixlen}"
            )
        if node_mask_size - cluster.prefixlen > MAX_SUBNET_BITS:
            raise CidrError(
                f"node mask size /{node_mask_size} cuts {cluster} into more than 2^{MAX_SUBNET_BITS} subnets"
            )
        self.cluster_cidr: IPNetwork = cluster
        self.node_mask_size = node_mask_size
        self.max_cidrs = 1 << (node_mask_size - cluster.prefixlen)
        self._shift = cluster.max_prefixlen - node_mask_size
        self._used: set[int] = set()
        self._next_candidate = 0

    @property
    def used(self) -> int:
        return len(self._used)

    def subnet(self, index: int) -> IPNetwork:
        first = int(self.cluster_cidr.network_address) + (index << self._shift)
        return ipaddress.ip_network((first, self.node_mask_size))

    def allocate_next(self) -> IPNetwork:
        """Mark the next free subnet used and return it; ``CidrSetFull`` when none is free."""
        for step in range(self.max_cidrs):
            index = (self._next_candidate + step) % self.max_cidrs
            if index not in self._used:
                self._used.add(index)
                self._next_candidate = (index + 1) % self.max_cidrs
                return self.subnet(index)
        raise CidrSetFull(f"no /{self.node_mask_size} left in {self.cluster_cidr}")

    def occupy(self, cidr: IPNetwork | str) -> None:
        """Mark every subnet ``cidr`` touches used (already used ones stay used)."""
        self._used.update(self._indices(cidr))

    def release(self, cidr: IPNetwork | str) -> None:
        """Mark every subnet ``cidr`` touches free (free ones stay free)."""
        self._used.difference_update(self._indices(cidr))

    def is_used(self, cidr: IPNetwork | str) -> bool:
        """True when any subnet ``cidr`` touches is in use."""
        return any(i in self._used for i in self._indices(cidr))

    def _indices(self, cidr: IPNetwork | str) -> range:
        net = parse_cidr(cidr) if isinstance(cidr, str) else cidr
        cluster = self.cluster_cidr
        base = int(cluster.network_address)
        first = max(int(net.network_address), base)
        last = min(int(net.broadcast_address), int(cluster.broadcast_address))
        if net.version != cluster.version or first > last:
            raise CidrOutOfRange(f"{net} is outside the cluster CIDR {cluster}")
        return range((first - base) >> self._shift, ((last - base) >> self._shift) + 1)
