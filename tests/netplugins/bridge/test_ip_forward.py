"""ip_forward is shared by every plugin in one network namespace: the last one out restores it."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from tests.capabilities import no_netns, require

SCRIPT = """
import os
from netplugins.bridge import links
with open(links.IP_FORWARD, "w") as f:  # a new netns may inherit the host's value: start from off
    f.write("0\\n")
seen = [links.read_ip_forward()]
links.enable_ip_forward("a"); seen.append(links.read_ip_forward())
links.enable_ip_forward("b"); seen.append(links.read_ip_forward())
links.release_ip_forward("a"); seen.append(links.read_ip_forward())
links.release_ip_forward("b"); seen.append(links.read_ip_forward())
links.release_ip_forward("b"); seen.append(links.read_ip_forward())  # idempotent
ino = str(os.stat("/proc/self/ns/net").st_ino)
seen.append(str(os.path.exists(os.path.join(links.IP_FORWARD_HOLDERS, ino))))
print(" ".join(seen))
"""


def test_the_last_holder_restores_the_value_from_before_the_first() -> None:
    require("netns", no_netns())
    ns = f"rkfwd{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[3],
        ).stdout.split()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    # Off before; on while either holds it; off after both left.
    assert out == ["0", "1", "1", "1", "0", "0", "False"]
