"""A pool of single addresses handed to LoadBalancer Services (MetalLB's IPAddressPool, in small).

``parse_pool("172.29.0.0/24")`` or ``parse_pool("10.0.0.0/30, 192.168.1.10-192.168.1.20")``: a pool is
one or more CIDRs or inclusive ``first-last`` ranges, comma-separated, any family. An IPv4 CIDR of
prefix up to ``/30`` leaves out its network and broadcast addresses (MetalLB's ``avoidBuggyIPs``
made the default: some clients drop traffic to ``.0``/``.255``); a range is taken as written.

:class:`IpPool` remembers which owner (a Service's ``namespace/name``) holds which address.
Invariants:

* an address is held by at most one owner, and an owner holds at most one address;
* :meth:`IpPool.assign` gives the lowest free address (or the one asked for, when it is in the pool
  and free) and is idempotent for an owner that already holds one;
* :meth:`IpPool.claim` records an address an owner already carries (a restart rebuilds the pool from
  the Services this way), and refuses one outside the pool or held by someone else;
* nothing changes when an error is raised.

Pure: no I/O, no clock. Lowest-free search is linear in the addresses held, not in the pool size.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_LB_POOL = "172.29.0.0/24"


class PoolError(ValueError):
    pass


class PoolExhausted(PoolError):
    pass


class AddressUnavailable(PoolError):
    """The address asked for is outside the pool or held by another owner."""


@dataclass(frozen=True, slots=True)
class AddressRange:
    """Inclusive range of addresses of one family, as integers."""

    version: int
    first: int
    last: int

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return address.version == self.version and self.first <= int(address) <= self.last

    def __str__(self) -> str:
        return f"{ipaddress.ip_address(self.first)}-{ipaddress.ip_address(self.last)}"


def _parse_part(part: str) -> AddressRange:
    try:
        if "/" in part:
            net = ipaddress.ip_network(part, strict=True)
            first, last = int(net.network_address), int(net.broadcast_address)
            if net.version == 4 and net.prefixlen <= 30:
                first, last = first + 1, last - 1
            return AddressRange(net.version, first, last)
        if "-" in part:
            lo, hi = (ipaddress.ip_address(p.strip()) for p in part.split("-", 1))
            if lo.version != hi.version or int(lo) > int(hi):
                raise PoolError(f"{part!r}: the range must go up, within one address family")
            return AddressRange(lo.version, int(lo), int(hi))
        one = ipaddress.ip_address(part)
        return AddressRange(one.version, int(one), int(one))
    except ValueError as err:
        if isinstance(err, PoolError):
            raise
        raise PoolError(f"{part!r} is not a CIDR, an address or a first-last range: {err}") from None


def parse_pool(value: str) -> tuple[AddressRange, ...]:
    """The ranges of a pool spec (see the module docstring); ``PoolError`` when it is empty, does not
    parse, or two parts overlap."""
    ranges = tuple(_parse_part(part.strip()) for part in value.split(",") if part.strip())
    if not ranges:
        raise PoolError("the load-balancer pool is empty")
    ordered = sorted(ranges, key=lambda r: (r.version, r.first))
    for a, b in itertools.pairwise(ordered):
        if a.version == b.version and b.first <= a.last:
            raise PoolError(f"{value!r}: {a} and {b} overlap")
    return tuple(ordered)


def _address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class IpPool:
    """Which owner holds which address of the pool. Not thread-safe: call it from one event loop."""

    def __init__(self, ranges: tuple[AddressRange, ...] | str) -> None:
        self.ranges = parse_pool(ranges) if isinstance(ranges, str) else ranges
        self.held: dict[str, str] = {}  # owner -> address
        self._holder: dict[str, str] = {}  # address -> owner

    def __contains__(self, address: str) -> bool:
        ip = _address(address)
        return ip is not None and any(ip in r for r in self.ranges)

    @property
    def size(self) -> int:
        return sum(r.last - r.first + 1 for r in self.ranges)

    def holder(self, address: str) -> str | None:
        return self._holder.get(self._canonical(address))

    def claim(self, owner: str, address: str) -> None:
        """Record that ``owner`` carries ``address`` (releasing any other it held).
        ``AddressUnavailable`` when the address is outside the pool or another owner's."""
        canonical = self._canonical(address)
        if canonical not in self:
            raise AddressUnavailable(f"{address} is not in the pool {self.describe()}")
        other = self._holder.get(canonical)
        if other is not None and other != owner:
            raise AddressUnavailable(f"{address} is already in use by {other}")
        self.release(owner)
        self._take(owner, canonical)

    def assign(self, owner: str, requested: str = "") -> str:
        """The address for ``owner``: the one it holds if any (and it matches ``requested``), else
        ``requested`` when given, else the lowest free one. ``AddressUnavailable`` / ``PoolExhausted``
        leave everything as it was."""
        held = self.held.get(owner)
        if held is not None and (not requested or held == self._canonical(requested)):
            return held
        if requested:
            self.claim(owner, requested)
            return self.held[owner]
        address = self._lowest_free()
        self.release(owner)
        self._take(owner, address)
        return address

    def release(self, owner: str) -> str | None:
        """Free what ``owner`` holds; the address freed, or None."""
        address = self.held.pop(owner, None)
        if address is not None:
            del self._holder[address]
        return address

    def describe(self) -> str:
        return ",".join(str(r) for r in self.ranges)

    def _take(self, owner: str, address: str) -> None:
        self.held[owner] = address
        self._holder[address] = owner

    def _canonical(self, address: str) -> str:
        ip = _address(address)
        return str(ip) if ip is not None else address

    def _lowest_free(self) -> str:
        taken = [ipaddress.ip_address(a) for a in self._holder]
        for r in self.ranges:
            candidate = r.first
            # skip past held addresses in order: at most len(taken) steps per range
            for used in sorted(int(t) for t in taken if t in r):
                if used != candidate:
                    break
                candidate += 1
            if candidate <= r.last:
                return str(ipaddress.ip_address(candidate))
        raise PoolExhausted(f"no address left in the pool {self.describe()}")
