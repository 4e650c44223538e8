"""The bridge plugin's host side: ``ip``/``bridge``/``nft``/sysctl commands (the thin shell).

Everything here acts on the network namespace the plugin process runs in (the node's). We run the
iproute2 and nftables tools rather than a netlink library: the reference plugins already need them
present, and the commands read like the documentation.

Invariants: routes we add carry ``ROUTE_PROTO``, and ``actual_state`` reads only those, so a plan
never deletes a route of someone else; neighbour and fdb entries are read from our VXLAN device
only. Every removal tolerates the object being gone already.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from netplugins.bridge.config import ROUTE_PROTO
from netplugins.bridge.topology import FdbEntry, NeighEntry, NetState, Plan, RouteEntry

log = logging.getLogger("raykube.netplugins.bridge")

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


class CommandFailed(RuntimeError):
    pass


def run(*cmd: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def run_json(*cmd: str) -> Any:
    out = run(*cmd).strip()
    return json.loads(out) if out else []


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def bridge_ports(bridge: str) -> list[str]:
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except FileNotFoundError:
        return []


def delete_link(name: str) -> None:
    if link_exists(name):
        run("ip", "link", "del", name, check=False)


def default_ip() -> str:
    """The source address of this namespace's default route ("" when there is none)."""
    try:
        routes = run_json("ip", "-j", "-4", "route", "get", "1.1.1.1")
    except (CommandFailed, ValueError):
        return ""
    return str(routes[0].get("prefsrc", "")) if routes else ""


def device_of(ip: str) -> tuple[str, int]:
    """The interface holding ``ip`` and its MTU (("", 1500) when none does)."""
    for link in run_json("ip", "-j", "-4", "addr"):
        for a in link.get("addr_info") or []:
            if a.get("local") == ip:
                return str(link["ifname"]), int(link.get("mtu", 1500))
    return "", 1500


# ---------------------------------------------------------------------------------------- sysctl


def read_ip_forward() -> str:
    with open(IP_FORWARD) as f:
        return f.read().strip()


IP_FORWARD_HOLDERS = "/run/raykube/ip_forward"


@contextlib.contextmanager
def _holders_of_this_netns() -> Iterator[str]:
    """The directory recording who needs ip_forward in this network namespace (keyed by its inode:
    several plugins, e.g. Ray nodes sharing a host, can run in one), locked while in use."""
    path = os.path.join(IP_FORWARD_HOLDERS, str(os.stat("/proc/self/ns/net").st_ino))
    os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def enable_ip_forward(holder: str) -> None:
    """Set ip_forward=1 for ``holder`` (a stable name of one plugin instance); the value seen before
    the first holder of this network namespace is kept for ``release_ip_forward``."""
    with _holders_of_this_netns() as d:
        prev = os.path.join(d, "prev")
        if not os.path.exists(prev):
            with open(prev, "w") as f:
                f.write(read_ip_forward() + "\n")
        open(os.path.join(d, f"holder-{holder}"), "w").close()
        if read_ip_forward() != "1":
            with open(IP_FORWARD, "w") as f:
                f.write("1\n")


def release_ip_forward(holder: str) -> None:
    """``holder`` no longer needs forwarding; the last holder of the namespace restores the value
    from before the first (so two plugins stopping in any order leave the host as it was)."""
    with _holders_of_this_netns() as d:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(d, f"holder-{holder}"))
        if any(name.startswith("holder-") for name in os.listdir(d)):
            return
        prev = os.path.join(d, "prev")
        try:
            with open(prev) as f:
                value = f.read().strip()
        except FileNotFoundError:
            value = ""
        if value in ("0", "1") and read_ip_forward() != value:
            with open(IP_FORWARD, "w") as f:
                f.write(value + "\n")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(prev)
        with contextlib.suppress(OSError):
            os.rmdir(d)
            os.rmdir(IP_FORWARD_HOLDERS)
            os.rmdir(os.path.dirname(IP_FORWARD_HOLDERS))


def succeeds(*cmd: str) -> bool:
    return subprocess.run(list(cmd), capture_output=True, check=False).returncode == 0


def chain_filters(chain: str) -> bool:
    """True when iptables' ``filter`` ``chain`` has rules or a policy other than ACCEPT. Listing
    creates nothing (inserting a rule would create the table, so we only insert when it filters)."""
    if shutil.which("iptables") is None:
        return False
    lines = run("iptables", "-w", "-S", chain, check=False).splitlines()
    return any(line.strip() and line.strip() != f"-P {chain} ACCEPT" for line in lines)


def ensure_iptables_rules(rules: list[list[str]]) -> None:
    """Insert each ``[chain, *spec]`` at the top of ``filter`` unless present, when that chain
    filters at all (``chain_filters``); no iptables: no-op."""
    for chain, *spec in rules:
        if not chain_filters(chain):
            continue
        if not succeeds("iptables", "-w", "-C", chain, *spec):
            run("iptables", "-w", "-I", chain, "1", *spec)


def iptables_rules_present(rules: list[list[str]]) -> bool:
    """False when a rule ``ensure_iptables_rules`` would insert is missing."""
    return all(
        not chain_filters(chain) or succeeds("iptables", "-w", "-C", chain, *spec) for chain, *spec in rules
    )


def delete_iptables_rules(rules: list[list[str]]) -> None:
    if shutil.which("iptables") is None:
        return
    for chain, *spec in rules:
        while succeeds("iptables", "-w", "-D", chain, *spec):
            pass


# ---------------------------------------------------------------------------------------- nftables


def apply_nft(script: str) -> None:
    run("nft", "-f", "-", stdin=script)


def delete_nft_table(table: str) -> None:
    run("nft", "delete", "table", "ip", table, check=False)


def nft_table_exists(table: str) -> bool:
    return bool(run("nft", "list", "table", "ip", table, check=False).strip())


# ---------------------------------------------------------------------------------------- vxlan


def ensure_vxlan(device: str, vni: int, port: int, local_ip: str, mac: str, vtep_ip: str) -> None:
    """Create (or fix) the VXLAN device: learning off, our MAC, the VTEP address as a /32, up."""
    info: dict[str, Any] = {}
    if link_exists(device):
        info = run_json("ip", "-j", "-d", "link", "show", device)[0]
        data = (info.get("linkinfo") or {}).get("info_data") or {}
        if data.get("id") != vni or data.get("local") != local_ip or data.get("port") != port:
            delete_link(device)
            info = {}
    if not info:
        run("ip", "link", "add", device, "type", "vxlan", "id", str(vni), "local", local_ip,
            "dstport", str(port), "nolearning")  # fmt: skip
    if str(info.get("address", "")).lower() != mac:
        run("ip", "link", "set", device, "address", mac)
    _, underlay_mtu = device_of(local_ip)
    run("ip", "link", "set", device, "mtu", str(underlay_mtu - 50), "up")
    run("ip", "addr", "replace", f"{vtep_ip}/32", "dev", device)


def link_mac(device: str) -> str:
    return str(run_json("ip", "-j", "link", "show", device)[0].get("address", "")).lower()


# ---------------------------------------------------------------------------------------- routes etc.


def actual_state(device: str | None) -> NetState:
    """Our routes (protocol ``ROUTE_PROTO``), and the neighbour/fdb entries of ``device``."""
    routes = set()
    for r in run_json("ip", "-j", "-4", "route", "show", "proto", str(ROUTE_PROTO)):
        dst = str(ipaddress.ip_network(r["dst"], strict=False))
        onlink = "onlink" in (r.get("flags") or [])
        routes.add(RouteEntry(dst, str(r.get("gateway", "")), str(r.get("dev", "")) if onlink else ""))
    neighbours, fdb = set(), set()
    if device and link_exists(device):
        for n in run_json("ip", "-j", "-4", "neigh", "show", "dev", device):
            if "lladdr" in n:
                neighbours.add(NeighEntry(str(n["dst"]), str(n["lladdr"]).lower(), device))
        for e in run_json("bridge", "-j", "fdb", "show", "dev", device):
            if e.get("dst"):
                fdb.add(FdbEntry(str(e["mac"]).lower(), str(e["dst"]), device))
    return NetState(frozenset(routes), frozenset(neighbours), frozenset(fdb))


def _route_args(r: RouteEntry) -> list[str]:
    args = [r.dst, "via", r.via]
    if r.dev:
        args += ["dev", r.dev, "onlink"]
    return [*args, "proto", str(ROUTE_PROTO)]


def apply_plan(p: Plan) -> list[str]:
    """Carry out ``p``; returns the failures (each step is tried; the next reconcile retries)."""
    steps: list[list[str]] = []
    steps += [["bridge", "fdb", "del", f.mac, "dev", f.dev, "dst", f.dst, "self"] for f in p.del_fdb]
    steps += [["ip", "neigh", "del", n.ip, "dev", n.dev] for n in p.del_neighbours]
    steps += [["ip", "route", "del", *_route_args(r)] for r in p.del_routes]
    steps += [
        ["bridge", "fdb", "append", f.mac, "dev", f.dev, "dst", f.dst, "self", "permanent"] for f in p.add_fdb
    ]
    steps += [
        ["ip", "neigh", "replace", n.ip, "lladdr", n.mac, "dev", n.dev, "nud", "permanent"]
        for n in p.add_neighbours
    ]
    steps += [["ip", "route", "replace", *_route_args(r)] for r in p.add_routes]
    failures = []
    for cmd in steps:
        try:
            run(*cmd)
        except CommandFailed as e:
            failures.append(str(e))
    return failures


def delete_our_routes() -> None:
    for r in actual_state(None).routes:
        run("ip", "route", "del", *_route_args(r), check=False)
