"""What the reference ``portmap`` plugin leaves in iptables' ``nat`` table, and its removal.

portmap (hostPort) creates the chains ``CNI-HOSTPORT-*`` once per host and jumps to them from the
nat hooks; it never removes them, even after the last pod's DEL. Whoever ran it (containerd's own
network, the bridge plugin) removes them on purge: only chains it did not find there before, and
only while no pod still has rules in them (a ``-j CNI-DN-...`` jump is a live pod's).
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess

log = logging.getLogger(__name__)

HOSTPORT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")
NAT_PARENTS = {"CNI-HOSTPORT-DNAT": ("PREROUTING", "OUTPUT"), "CNI-HOSTPORT-MASQ": ("POSTROUTING",)}


def _iptables_nat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "-t", "nat", *args], capture_output=True, text=True, check=False)


def nat_chains() -> frozenset[str]:
    """Names of the iptables ``nat`` chains (empty when iptables is missing)."""
    if shutil.which("iptables") is None:
        return frozenset()
    out = _iptables_nat("-S").stdout
    return frozenset(line.split()[1] for line in out.splitlines() if line.startswith("-N "))


def remove_hostport_chains(before: frozenset[str] = frozenset()) -> None:
    """Remove portmap's chains not in ``before`` (and their jumps), unless a pod still uses them."""
    ours = [c for c in HOSTPORT_CHAINS if c in nat_chains() and c not in before]
    if not ours:
        return
    rules = _iptables_nat("-S").stdout
    if "-j CNI-DN-" in rules:
        log.info("leaving CNI-HOSTPORT chains: a pod still has hostPort rules")
        return
    for chain in ours:
        for parent in NAT_PARENTS.get(chain, ()):
            # The jumps portmap adds carry a comment, so delete by the exact listed rule;
            # shlex keeps the quoted comment ("CNI portfwd requiring masquerade") one argument.
            for line in rules.splitlines():
                if line.startswith(f"-A {parent} ") and f"-j {chain}" in line:
                    _iptables_nat(*shlex.split(line.replace("-A ", "-D ", 1)))
    for chain in ours:
        _iptables_nat("-F", chain)
    for chain in ours:
        _iptables_nat("-X", chain)
