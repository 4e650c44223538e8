"""Pod volume scenarios through kubectl 1.33, shared by the session cluster (process runtime) and the
clusters of their own (containerd, `down --purge`): each takes a ``Kubectl`` bound to a fresh
namespace and the image its containers run.

With the process runtime, an image from an OCI layout is what lets a container mount a volume at a
path the host does not have (record images run on the host's filesystem, where the runtime never
creates directories); ``install_rooted_busybox`` drops such an image into each node's runtime import
directory, where a pull of a name the runtime does not know finds it. containerd's ``busybox`` always
has a root of its own.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from bench.startup_volumes import install_image_root
from tests.integration import support
from tests.integration.conftest import Kubectl

WAIT = 180.0
# configMap updates reach a running pod within the agent's sync period plus its cache's TTL
# (Kubernetes: about a minute plus the TTL).
UPDATE_WAIT = 180.0
DRIVER = "hostpath.csi.raykube.io"
TOPOLOGY_KEY = "topology.hostpath.csi.raykube.io/node"
ROOTED_IMAGE = "raykube.test/busybox-rooted:1"

wait_until = functools.partial(support.wait_until, timeout=WAIT)

# The Kubernetes docs' example of `kubectl create configmap --from-file=<directory>` (the seed's
# "configmap from a directory"): one key per file.
GAME_PROPERTIES = (
    "enemies=aliens\nlives=3\nenemies.cheat=true\nenemies.cheat.level=noGoodRotten\n"
    "secret.code.passphrase=UUDDLRLRBABAS\nsecret.code.allowed=true\nsecret.code.lives=30\n"
)
UI_PROPERTIES = "color.good=purple\ncolor.bad=yellow\nallow.textmode=true\nhow.nice.to.look=fairlyNice\n"
SLEEP = "trap 'exit 0' TERM; sleep 3600 & wait"


def install_rooted_busybox(data_dir: Path) -> str:
    """Write the busybox OCI layout, named ``ROOTED_IMAGE``, into every node's process-runtime import
    directory under ``data_dir``; returns the image name."""
    return install_image_root(data_dir, ROOTED_IMAGE)


def mounts_under(path: Path) -> list[str]:
    """Mount points of the host's mount namespace at or below ``path`` (findmnt)."""
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True)
    return sorted(t for t in out.stdout.splitlines() if t == str(path) or t.startswith(f"{path}/"))


# -- manifests ------------------------------------------------------------------------------------


def container(
    name: str, image: str, script: str, mounts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image, "command": ["sh", "-c", script]}
    if mounts:
        c["volumeMounts"] = mounts
    return c


def pod(
    name: str,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
) -> str:
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 2, "containers": containers, "volumes": volumes}
    if init:
        spec["initContainers"] = init
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def claim(name: str, storage_class: str | None, size: str = "16Mi", volume_name: str = "") -> str:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume_name:
        spec["volumeName"] = volume_name
    return json.dumps(
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}
    )


def claim_pod(name: str, image: str, claim_name: str) -> str:
    return pod(
        name,
        [container("main", image, SLEEP, [{"name": "data", "mountPath": "/data"}])],
        [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
    )


def statefulset(name: str, image: str) -> str:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [container("main", image, SLEEP, [{"name": "data", "mountPath": "/data"}])],
        },
    }
    spec = {
        "replicas": 1,
        "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": template,
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
            }
        ],
    }
    return json.dumps(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec}
    )


# -- waiting --------------------------------------------------------------------------------------


def events(k: Kubectl, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k.json("get", "events", "--field-selector", f"involvedObject.name={name}")[
        "items"
    ]
    return items


def event_lines(k: Kubectl, name: str) -> list[str]:
    return [f"{e.get('type')} {e.get('reason')}: {e.get('message', '')}" for e in events(k, name)]


def ready_pod(k: Kubectl, name: str, not_uid: str = "") -> dict[str, Any]:
    """Wait for pod ``name`` (with a uid other than ``not_uid``) to be Ready; its JSON. The failure
    says what the pod's events said."""

    def probe() -> dict[str, Any] | None:
        got = k.run("get", "pod", name, "-o", "json", check=False)
        if got.returncode != 0:
            return None
        p: dict[str, Any] = json.loads(got.stdout)
        if p["metadata"]["uid"] == not_uid or p["metadata"].get("deletionTimestamp"):
            return None
        conds = (p.get("status") or {}).get("conditions") or []
        return p if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None

    try:
        return wait_until(probe, f"pod {name} Ready")
    except AssertionError as e:
        raise AssertionError(f"{e}\nevents of {name}:\n" + "\n".join(event_lines(k, name))) from None


def event_with(k: Kubectl, name: str, text: str) -> dict[str, Any]:
    """Wait for an event about ``name`` whose message contains ``text``."""
    found: dict[str, Any] = wait_until(
        lambda: next((e for e in events(k, name) if text in e.get("message", "")), None),
        f"an event of {name} saying {text!r} (events: {event_lines(k, name)})",
    )
    return found


def sh(k: Kubectl, pod_name: str, script: str, container_name: str = "") -> str:
    args = ["exec", pod_name, *(["-c", container_name] if container_name else []), "--", "sh", "-c", script]
    return k.out(*args)


def gone(k: Kubectl, *args: str) -> bool:
    got = k.run("get", *args, check=False)
    return got.returncode != 0 and "NotFound" in got.stderr


# -- scenarios ------------------------------------------------------------------------------------


def statefulset_pod_keeps_its_data(k: Kubectl, image: str) -> None:
    """(a) A StatefulSet pod writes to its claim (the default class), is deleted, comes back under
    the same name and reads what it wrote."""
    token = secrets.token_hex(8)
    k.apply(statefulset("web", image))
    first = ready_pod(k, "web-0")
    pvc = k.json("get", "pvc", "data-web-0")
    assert pvc["status"]["phase"] == "Bound", pvc
    assert pvc["spec"]["storageClassName"] == "standard"
    pv = k.json("get", "pv", pvc["spec"]["volumeName"], namespaced=False)
    assert pv["spec"]["csi"]["driver"] == DRIVER
    sh(k, "web-0", f"echo {token} > /data/note")
    k.run("delete", "pod", "web-0", "--wait=false")
    ready_pod(k, "web-0", not_uid=first["metadata"]["uid"])
    assert sh(k, "web-0", "cat /data/note") == f"{token}\n"
    assert k.json("get", "pvc", "data-web-0")["spec"]["volumeName"] == pv["metadata"]["name"]


def emptydir_is_shared(k: Kubectl, image: str) -> None:
    """(f) An emptyDir shared by two containers: one writes, the other reads."""
    token = secrets.token_hex(8)
    mounts = [{"name": "cache", "mountPath": "/cache"}]
    k.apply(
        pod(
            "share",
            [
                container("writer", image, f"echo {token} > /cache/f; {SLEEP}", mounts),
                container("reader", image, SLEEP, mounts),
            ],
            [{"name": "cache", "emptyDir": {}}],
        )
    )
    ready_pod(k, "share")
    # the writer's echo may still be on its way when the pod turns Ready
    wait = "for i in $(seq 100); do [ -s /cache/f ] && break; sleep 0.1; done; cat /cache/f"
    assert sh(k, "share", wait, "reader") == f"{token}\n"


def configmap_from_directory(k: Kubectl, image: str, workdir: Path) -> None:
    """(d) A ConfigMap from a directory shows its keys as files (through the atomic writer's
    ``..data`` link) and an applied change appears in the running pod."""
    src = workdir / "game"
    src.mkdir(parents=True, exist_ok=True)
    (src / "game.properties").write_text(GAME_PROPERTIES)
    (src / "ui.properties").write_text(UI_PROPERTIES)
    k.run("create", "configmap", "game-config", f"--from-file={src}")
    k.apply(
        pod(
            "game",
            [container("main", image, SLEEP, [{"name": "config", "mountPath": "/etc/game"}])],
            [{"name": "config", "configMap": {"name": "game-config"}}],
        )
    )
    ready_pod(k, "game")
    assert sh(k, "game", "ls /etc/game") == "game.properties\nui.properties\n"
    assert sh(k, "game", "cat /etc/game/game.properties") == GAME_PROPERTIES
    assert sh(k, "game", "cat /etc/game/ui.properties") == UI_PROPERTIES
    assert sh(k, "game", "readlink /etc/game/ui.properties") == "..data/ui.properties\n"

    changed = UI_PROPERTIES.replace("color.good=purple", "color.good=green")
    (src / "ui.properties").write_text(changed)
    manifest = k.out(
        "create", "configmap", "game-config", f"--from-file={src}", "--dry-run=client", "-o", "yaml"
    )
    k.apply(manifest)
    support.wait_until(
        lambda: sh(k, "game", "cat /etc/game/ui.properties") == changed,
        "the changed ui.properties in the running pod",
        timeout=UPDATE_WAIT,
        every=2.0,
    )
    assert sh(k, "game", "cat /etc/game/game.properties") == GAME_PROPERTIES


def secret_on_tmpfs(k: Kubectl, image: str) -> None:
    """(e) A Secret volume is a tmpfs (never written to the node's disk)."""
    k.run("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    k.apply(
        pod(
            "vault",
            [
                container(
                    "main", image, SLEEP, [{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}]
                )
            ],
            [{"name": "creds", "secret": {"secretName": "creds"}}],
        )
    )
    ready_pod(k, "vault")
    assert sh(k, "vault", "cat /etc/creds/password") == "s3cret"
    lines = [line.split() for line in sh(k, "vault", "cat /proc/mounts").splitlines()]
    types = [f[2] for f in lines if len(f) > 2 and f[1] == "/etc/creds"]
    assert types and types[-1] == "tmpfs", f"/etc/creds in /proc/mounts: {types}"
    assert sh(k, "vault", "stat -f -c %T /etc/creds").strip() == "tmpfs"


def subpath_escape_refused(k: Kubectl, image: str) -> None:
    """A subPath that leads out of its emptyDir through a symlink (made by an init container) is refused:
    a Warning event, and the container waits with CreateContainerConfigError, never running."""
    work = [{"name": "work", "mountPath": "/work"}]
    k.apply(
        pod(
            "escape",
            [container("main", image, SLEEP, [{"name": "work", "mountPath": "/x", "subPath": "out"}])],
            [{"name": "work", "emptyDir": {}}],
            init=[container("link", image, "ln -s /etc /work/out", work)],
        )
    )
    ev = event_with(k, "escape", 'failed to prepare subPath for volumeMount "work" of container "main"')
    assert ev["type"] == "Warning", ev

    def waiting() -> dict[str, Any] | None:
        statuses = k.json("get", "pod", "escape").get("status", {}).get("containerStatuses") or []
        main = next((s for s in statuses if s["name"] == "main"), None)
        found: dict[str, Any] | None = (main or {}).get("state", {}).get("waiting")
        return found

    assert wait_until(waiting, "main waiting")["reason"] == "CreateContainerConfigError"
    statuses = k.json("get", "pod", "escape")["status"]["containerStatuses"]
    assert not any("running" in s.get("state", {}) for s in statuses)


def pods_with_volumes_run(k: Kubectl, image: str, workdir: Path) -> None:
    """The core scenarios every runtime must pass: emptyDir, ConfigMap, StatefulSet claim."""
    emptydir_is_shared(k, image)
    configmap_from_directory(k, image, workdir)
    statefulset_pod_keeps_its_data(k, image)


def node_volume_paths(data_dir: Path, node: str, handle: str) -> list[str]:
    """Where the node keeps the data of volume ``handle``: entries named after it (a directory, an
    ``.img`` image) under the node's data dir, outside the pods' own directories."""
    found = []
    root = data_dir / "nodes" / node
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in ("pods", "plugins")]
        for name in dirnames + filenames:
            if name in (handle, f"{handle}.img"):
                found.append(os.path.join(dirpath, name))
    return found
