"""What the suite needs from the machine, and the one way a test says so.

A test that cannot run because the machine lacks something (a kubectl binary, root, namespaces,
containerd, etcd) must not turn into a green "skipped": on the machines the README describes the
suite as passing on, that would be a run that tested nothing. ``require`` fails the test with the
reason instead, unless the operator opted out for that capability with
``RAYKUBE_ALLOW_MISSING=kubectl,isolation,...`` (a machine that cannot have it); then it skips, and
``tests/conftest.py`` lists every opted-out skip in the terminal summary.

``needs`` is the same check as a mark (for module ``pytestmark`` and ``pytest.param(marks=...)``),
evaluated when the test is set up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

ENV = "RAYKUBE_ALLOW_MISSING"
# Every capability a test may require; an unknown name in ENV is a usage error (a typo must not
# silently opt out of nothing, nor of everything).
CAPABILITIES: dict[str, str] = {
    "kubectl": "the versioned kubectl.1.x binaries in /usr/lib/google-cloud-sdk/bin",
    "isolation": "Linux namespaces for the process runtime (root or unprivileged user namespaces)",
    "root": "running as root (image roots, cgroups, containerd)",
    "containerd": "root with Debian's containerd, runc, CNI plugins and busybox-static",
    "etcd": "the etcd binary (etcd-server), the store benchmark's peer, and etcdctl (etcd-client)",
    "busybox": "/bin/busybox (busybox-static), the built-in images' only binary",
    "netns": "root with iproute2, nftables and the CNI reference plugins in /usr/lib/cni (pod networks)",
    "nginx": "Debian's nginx binary (nginx-light), the Ingress data path",
}
# How to get each one (the failure message says it).
INSTALL: dict[str, str] = {
    "kubectl": "apt-get install kubectl from Google Cloud's apt repository (packages.cloud.google.com/apt, "
    "suite cloud-sdk), which puts kubectl.1.x into /usr/lib/google-cloud-sdk/bin",
    "isolation": "run as root, or allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1)",
    "root": "run the suite as root",
    "containerd": "run as root after scripts/setup --test (it installs the Debian packages)",
    "etcd": "scripts/setup --test as root (apt-get install etcd-server etcd-client)",
    "busybox": "scripts/setup --test as root (apt-get install busybox-static)",
    "netns": "run as root after scripts/setup --test (iproute2, nftables, containernetworking-plugins)",
    "nginx": "scripts/setup as root (apt-get install nginx-light)",
}
# Prefix of the skip reason of an opted-out test: the summary hook finds them by it.
OPTED_OUT = "opted out via RAYKUBE_ALLOW_MISSING"
MARK = "needs"


def allowed_missing(environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    """The capabilities the operator allows to be missing; raises ValueError on an unknown name."""
    names = frozenset(n.strip() for n in environ.get(ENV, "").split(",") if n.strip())
    unknown = sorted(names - CAPABILITIES.keys())
    if unknown:
        raise ValueError(f"{ENV}: unknown capability {', '.join(unknown)}; known: {', '.join(CAPABILITIES)}")
    return names


def outcome(capability: str, missing: str | None, allowed: frozenset[str]) -> tuple[str, str] | None:
    """What a test needing ``capability`` does: None (run), ("skip"|"fail", message)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")
    if missing is None:
        return None
    if capability in allowed:
        return "skip", f"{OPTED_OUT} ({capability}): {missing}"
    return "fail", (
        f"missing {capability} ({CAPABILITIES[capability]}): {missing}. To get it: {INSTALL[capability]}; "
        f"or set {ENV}={capability} on a machine that cannot have it (the summary lists what it skipped)"
    )


def require(capability: str, missing: str | None) -> None:
    """Fail the running test when ``missing`` says what is absent (skip if opted out)."""
    verdict = outcome(capability, missing, allowed_missing())
    if verdict is None:
        return
    kind, message = verdict
    if kind == "skip":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def needs(capability: str, missing: str | None) -> pytest.MarkDecorator:
    """``require`` as a mark: checked at setup (``missing`` is computed at import, so keep it cheap)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")
    return getattr(pytest.mark, MARK)(capability, missing)


def not_root() -> str | None:
    """Why root-only tests cannot run here, or None."""
    return None if os.geteuid() == 0 else f"running as uid {os.geteuid()}, not root"


def no_netns() -> str | None:
    """Why pod-network tests (netns, veth, nft, the CNI reference plugins) cannot run here, or None."""
    import shutil

    if os.geteuid() != 0:
        return f"running as uid {os.geteuid()}, not root"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    missing += [
        p
        for p in ("bridge", "host-local", "loopback", "portmap")
        if not os.access(f"/usr/lib/cni/{p}", os.X_OK)
    ]
    return f"missing {', '.join(missing)}" if missing else None
