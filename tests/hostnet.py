"""A snapshot of the root network namespace's state, and the differences between two, for leak checks.

Role: a test takes ``snapshot()`` before it builds networks and again after it tore them down;
``diff(before, after)`` lists what appeared or vanished (a veth, an address, a route, a netns, an nft
table, chain, rule or set, a CNI state file, a changed sysctl) as readable lines such as
``+ link rkv1a2b3c-0 (veth, master rkul1a2b3c, up)``.

Invariants:
- Each object becomes one canonical text line built only from fields that identify it (names,
  kinds, addresses, destinations, rule expressions); volatile fields are dropped: counters and
  statistics, ifindex, MAC addresses and MTU (a bridge takes its ports' MAC and MTU), link carrier
  flags (``LOWER_UP``/``NO-CARRIER`` flap; the administrative ``up`` is kept), address and route
  lifetimes and route flags (``linkdown``), nft handles and element expiry.
- A snapshot is a multiset: two identical rules count twice, so a duplicated rule is reported.
- The parsers are pure (JSON in, lines out); ``snapshot()`` is the only part that runs commands.

The machine is shared: other engineers' objects come and go during a run. ``diff(..., only=NAMES)``
keeps the differences that mention one of ``NAMES`` (the run's own names and subnets; pass
``"sysctl"`` too to keep sysctl changes, which cannot be told apart by owner: another run's plugin may
flip ``ip_forward`` meanwhile); without ``only`` it reports everything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
)
TOOLS = (("ip", "iproute2"), ("nft", "nftables"))
STATE_DIRS = (Path("/var/lib/cni"), Path("/run/netns"))
# Keys whose values change without anything being created or removed.
VOLATILE_NFT_KEYS = frozenset({"handle", "packets", "bytes", "expires"})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The canonical lines describing the host network (sorted, duplicates kept)."""

    lines: tuple[str, ...]


# ----------------------------------------------------------------------------------------- parsers


def link_lines(links: Iterable[Mapping[str, Any]]) -> list[str]:
    """Lines for ``ip -j -d link``: name, kind (veth, bridge, dummy, ...), master, admin state."""
    out = []
    for link in links:
        kind = link.get("linkinfo", {}).get("info_kind") or link.get("link_type", "")
        parts = [str(kind)]
        if link.get("master"):
            parts.append(f"master {link['master']}")
        parts.append("up" if "UP" in link.get("flags", []) else "down")
        out.append(f"link {link['ifname']} ({', '.join(parts)})")
    return out


def addr_lines(links: Iterable[Mapping[str, Any]]) -> list[str]:
    """Lines for ``ip -j addr``: each address with its prefix on its interface (lifetimes dropped;
    IPv6 privacy addresses, which rotate by themselves, left out)."""
    return [
        f"addr {link['ifname']} {info['local']}/{info['prefixlen']}"
        for link in links
        for info in link.get("addr_info", [])
        if not info.get("temporary")
    ]


def route_lines(routes: Iterable[Mapping[str, Any]], family: str) -> list[str]:
    """Lines for ``ip -j [-6] route show table all`` (``family`` "4" or "6"): identifying fields only."""
    out = []
    for r in routes:
        fields = [f"table {r.get('table', 'main')}", str(r.get("type", "unicast")), str(r.get("dst", "?"))]
        for key, label in (
            ("gateway", "via"),
            ("dev", "dev"),
            ("protocol", "proto"),
            ("scope", "scope"),
            ("prefsrc", "src"),
            ("metric", "metric"),
        ):
            if key in r:
                fields.append(f"{label} {r[key]}")
        for hop in r.get("nexthops", []):
            fields.append(f"nexthop via {hop.get('gateway', '?')} dev {hop.get('dev', '?')}")
        out.append(f"route{family} {' '.join(fields)}")
    return out


def _strip(value: Any) -> Any:
    """``value`` without nft's volatile keys, recursively (a counter statement keeps its place, empty)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_NFT_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def nft_lines(ruleset: Mapping[str, Any]) -> list[str]:
    """Lines for ``nft -j list ruleset``: one per table, chain, rule, set, map, element, object."""
    out = []
    for item in ruleset.get("nftables", []):
        for kind, body in item.items():
            if kind == "metainfo" or not isinstance(body, dict):
                continue
            body = _strip(body)
            where = [str(body.pop("family", "?"))]
            if kind != "table":
                where.append(str(body.pop("table", "?")))
            if kind == "rule":
                where.append(str(body.pop("chain", "?")))
            name = body.pop("name", None)
            if name is not None:
                where.append(str(name))
            rest = f" {json.dumps(body, sort_keys=True, separators=(',', ':'))}" if body else ""
            out.append(f"nft {kind} {' '.join(where)}{rest}")
    return out


def netns_lines(listing: str) -> list[str]:
    """Lines for ``ip netns list`` (names only; the "(id: N)" tail is volatile)."""
    return [f"netns {line.split()[0]}" for line in listing.splitlines() if line.strip()]


def sysctl_lines(values: Mapping[str, str | None]) -> list[str]:
    return [f"sysctl {name}={'absent' if value is None else value}" for name, value in sorted(values.items())]


def file_lines(paths: Iterable[Path]) -> list[str]:
    return [f"file {p}" for p in paths]


# ------------------------------------------------------------------------------------------ shell


def missing() -> str | None:
    """Why ``snapshot()`` (and the namespaces it is for) cannot work here, or None.

    Tests pass it to ``tests.capabilities.require("root", ...)``.
    """
    problems = [] if os.geteuid() == 0 else [f"running as uid {os.geteuid()}, not root"]
    problems += [f"{tool} not found (apt-get install {pkg})" for tool, pkg in TOOLS if not shutil.which(tool)]
    return "; ".join(problems) or None


def _run(*cmd: str) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _json(*cmd: str) -> Any:
    out = _run(*cmd).strip()
    return json.loads(out) if out else []


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except FileNotFoundError:
        return None


def _files(roots: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            found += [Path(dirpath, n) for n in dirnames + filenames]
    return found


def snapshot() -> Snapshot:
    """The root namespace's links, addresses, IPv4/IPv6 routes (all tables), nft ruleset, named netns,
    forwarding sysctls and the files under /var/lib/cni and /run/netns. Needs root, ``ip`` and ``nft``."""
    lines = [
        *link_lines(_json("ip", "-j", "-d", "link")),
        *addr_lines(_json("ip", "-j", "addr")),
        *route_lines(_json("ip", "-j", "-4", "route", "show", "table", "all"), "4"),
        *route_lines(_json("ip", "-j", "-6", "route", "show", "table", "all"), "6"),
        *nft_lines(_json("nft", "-j", "list", "ruleset") or {}),
        *netns_lines(_run("ip", "netns", "list")),
        *sysctl_lines({name: _sysctl(name) for name in SYSCTLS}),
        *file_lines(_files(STATE_DIRS)),
    ]
    return Snapshot(tuple(sorted(lines)))


def diff(before: Snapshot, after: Snapshot, *, only: Iterable[str] | None = None) -> list[str]:
    """What changed: ``+ line`` for what appeared, ``- line`` for what vanished (sorted).

    A changed sysctl shows as its old value removed and its new one added. ``only``: keep the lines
    containing one of these strings (see the module docstring).
    """
    old, new = Counter(before.lines), Counter(after.lines)
    changes = [f"- {line}" for line in sorted((old - new).elements())]
    changes += [f"+ {line}" for line in sorted((new - old).elements())]
    if only is None:
        return changes
    tokens = [t for t in only if t]
    return [c for c in changes if any(t in c[2:] for t in tokens)]
