"""``VolumeManager`` on real directories and real mounts (tmpfs, bind), as root; every test checks with
findmnt that nothing stays mounted. The API is a dict behind the manager's ``get`` seam."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cluster.client.errors import ApiError
from nodeagent.cri import api_pb2
from nodeagent.volumes import mounts
from nodeagent.volumes.errors import VolumeError
from nodeagent.volumes.manager import VolumeManager
from tests.capabilities import needs, not_root

pytestmark = needs("root", not_root())


def findmnt(root: Path) -> list[str]:
    out = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True
    ).stdout
    real = os.path.realpath(root)
    return [m for m in out.split() if m == real or m.startswith(real + "/")]


def fstype(path: Path) -> str:
    return subprocess.run(
        ["findmnt", "-rn", "-o", "FSTYPE", "-M", str(path)], capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    left = findmnt(tmp_path)
    mounts.unmount_under(str(tmp_path))  # never leave a mount behind, even when the test failed
    assert left == [], f"left mounted: {left}"


class Cluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.tokens: list[dict[str, Any]] = []
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    async def get(self, gv: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.objects.get((plural, namespace or "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        return obj

    async def token(self, namespace: str, sa: str, request: dict[str, Any]) -> dict[str, Any]:
        self.tokens.append({"namespace": namespace, "sa": sa, **request})
        spec = request["spec"]
        return {"spec": spec, "status": {"token": f"token-{len(self.tokens)}-{sa}"}}

    def manager(self, root: Path, **kw: Any) -> VolumeManager:
        return VolumeManager(str(root), self.get, request_token=self.token, clock=lambda: self.now, **kw)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def pod(volumes: list[dict[str, Any]], mounts_: list[dict[str, Any]], uid: str = "uid1") -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": uid, "labels": {"app": "web"}},
        "spec": {
            "volumes": volumes,
            "serviceAccountName": "robot",
            "containers": [{"name": "app", "volumeMounts": mounts_}],
        },
    }


def vdir(root: Path, plugin: str, name: str, uid: str = "uid1") -> Path:
    return root / "pods" / uid / "volumes" / f"kubernetes.io~{plugin}" / name


def test_every_type_set_up_mounted_and_torn_down(root: Path) -> None:
    cl = Cluster()
    cl.objects[("configmaps", "ns", "cfg")] = {"data": {"k": "v"}}
    cl.objects[("secrets", "ns", "sec")] = {"data": {"password": b64("hunter2")}}
    host = root / "host"
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}},
        {"name": "hp", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o600}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {
            "name": "info",
            "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
        },
        {
            "name": "all",
            "projected": {
                "sources": [
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 1000}},
                ]
            },
        },
    ]
    ms = [{"name": v["name"], "mountPath": f"/m/{v['name']}"} for v in volumes]
    p = pod(volumes, ms)

    async def main() -> None:
        m = cl.manager(root / "data", ca_pem="CA PEM")
        await m.setup(p)
        await m.setup(p)  # idempotent: nothing mounted twice
        data = root / "data"
        assert host.is_dir()
        assert fstype(vdir(data, "empty-dir", "mem")) == "tmpfs"
        assert fstype(vdir(data, "secret", "sec")) == "tmpfs"
        assert fstype(vdir(data, "projected", "all")) == "tmpfs"
        assert fstype(vdir(data, "empty-dir", "scratch")) == ""  # on disk
        assert sorted(findmnt(root)) == sorted(
            str(vdir(data, *pv)) for pv in (("empty-dir", "mem"), ("secret", "sec"), ("projected", "all"))
        )
        assert (vdir(data, "configmap", "cfg") / "k").read_text() == "v"
        assert os.stat(vdir(data, "configmap", "cfg") / "k").st_mode & 0o777 == 0o600
        assert (vdir(data, "secret", "sec") / "password").read_text() == "hunter2"
        assert (vdir(data, "downward-api", "info") / "labels").read_text() == 'app="web"'
        assert (vdir(data, "projected", "all") / "ca.crt").read_text() == "CA PEM"
        assert (vdir(data, "projected", "all") / "token").read_text() == "token-1-robot"
        assert cl.tokens[0]["spec"]["expirationSeconds"] == 1000 and cl.tokens[0]["namespace"] == "ns"
        got = m.container_mounts(p, p["spec"]["containers"][0], [])
        assert [(x.container_path, x.host_path, x.readonly) for x in got] == [
            ("/m/scratch", str(vdir(data, "empty-dir", "scratch")), False),
            ("/m/mem", str(vdir(data, "empty-dir", "mem")), False),
            ("/m/hp", str(host), False),
            ("/m/cfg", str(vdir(data, "configmap", "cfg")), True),
            ("/m/sec", str(vdir(data, "secret", "sec")), True),
            ("/m/info", str(vdir(data, "downward-api", "info")), True),
            ("/m/all", str(vdir(data, "projected", "all")), True),
        ]
        (host / "keep").write_text("host data")
        await m.teardown("uid1")
        assert findmnt(root) == []
        assert not (data / "pods" / "uid1").exists()
        assert (host / "keep").read_text() == "host data"

    asyncio.run(main())


def test_errors_read_like_the_kubelets(root: Path) -> None:
    cl = Cluster()

    async def main() -> None:
        m = cl.manager(root)
        cases = [
            (
                {"name": "c", "configMap": {"name": "y"}},
                'MountVolume.SetUp failed for volume "c" : configmap "y" not found',
            ),
            (
                {"name": "s", "secret": {"secretName": "y"}},
                'MountVolume.SetUp failed for volume "s" : secret "y" not found',
            ),
            (
                {"name": "h", "hostPath": {"path": "/nonexistent-x", "type": "Directory"}},
                'MountVolume.SetUp failed for volume "h" : '
                "hostPath type check failed: /nonexistent-x is not a directory",
            ),
            (
                {"name": "v", "persistentVolumeClaim": {"claimName": "data"}},
                'MountVolume.SetUp failed for volume "v" : no CSI volume plugin on this node',
            ),
        ]
        for volume, message in cases:
            with pytest.raises(VolumeError) as err:
                await m.setup(pod([volume], []))
            assert err.value.message.startswith(message) and err.value.reason == "FailedMount"
        ok = pod([{"name": "c", "configMap": {"name": "y", "optional": True}}], [])
        await m.setup(ok)
        assert [e for e in os.listdir(vdir(root, "configmap", "c")) if not e.startswith("..")] == []
        await m.teardown("uid1")

    asyncio.run(main())


def test_subpath_bound_and_escape_refused(root: Path) -> None:
    cl = Cluster()
    cl.objects[("configmaps", "ns", "cfg")] = {"data": {"app.conf": "x=1"}}
    volumes = [{"name": "d", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}]
    good = [
        {"name": "d", "mountPath": "/logs", "subPathExpr": "logs/$(POD_NAME)"},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
    ]
    p = pod(volumes, good)

    async def main() -> None:
        m = cl.manager(root)
        await m.setup(p)
        got = m.container_mounts(p, p["spec"]["containers"][0], [("POD_NAME", "web")])
        sub = root / "pods" / "uid1" / "volume-subpaths"
        assert [x.host_path for x in got] == [str(sub / "d" / "app" / "0"), str(sub / "cfg" / "app" / "1")]
        assert all(x.propagation == api_pb2.PROPAGATION_PRIVATE for x in got)
        assert (vdir(root, "empty-dir", "d") / "logs" / "web").is_dir()  # made, as the kubelet does
        (sub / "d" / "app" / "0" / "written").write_text("through the bind")
        assert (vdir(root, "empty-dir", "d") / "logs" / "web" / "written").read_text() == "through the bind"
        assert (sub / "cfg" / "app" / "1").read_text() == "x=1"  # the file the key's link points to
        assert len(findmnt(root / "pods" / "uid1" / "volume-subpaths")) == 2
        assert (
            m.container_mounts(p, p["spec"]["containers"][0], [("POD_NAME", "web")]) == got
        )  # no second bind

        os.symlink("/", vdir(root, "empty-dir", "d") / "escape")
        os.symlink("/etc/passwd", vdir(root, "empty-dir", "d") / "passwd")
        for subpath in ("escape", "escape/etc", "passwd"):
            bad = {"name": "app", "volumeMounts": [{"name": "d", "mountPath": "/x", "subPath": subpath}]}
            with pytest.raises(VolumeError) as err:
                m.container_mounts(p, bad, [])
            assert err.value.reason == "Failed"
            assert err.value.message.startswith(
                'failed to prepare subPath for volumeMount "d" of container "app": '
            )
            assert "outside the volume" in err.value.message
        await m.teardown("uid1")

    asyncio.run(main())


def test_open_beneath_refuses_a_symlink_component(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "link")
    with pytest.raises(mounts.EscapeError, match="link is a symlink"):
        mounts.open_beneath(str(tmp_path), "link/x", create=True)
    fd = mounts.open_beneath(str(tmp_path), "real/new", create=True)
    os.close(fd)
    assert (tmp_path / "real" / "new").is_dir()


def test_refresh_rewrites_changed_content_and_renews_tokens(root: Path) -> None:
    cl = Cluster()
    cl.objects[("configmaps", "ns", "cfg")] = {"data": {"k": "v1"}}
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "audience": "x"}}]}},
    ]
    p = pod(volumes, [])

    async def main() -> None:
        m = cl.manager(root)
        await m.setup(p)
        cfg = vdir(root, "configmap", "cfg")
        before = os.readlink(cfg / "..data")
        await m.refresh(p)
        assert os.readlink(cfg / "..data") == before and len(cl.tokens) == 1  # nothing changed, token fresh
        cl.objects[("configmaps", "ns", "cfg")] = {"data": {"k": "v2", "new": "n"}}
        cl.now += timedelta(seconds=2879)  # just under 80% of 3600 s
        await m.refresh(p)
        assert (cfg / "k").read_text() == "v2" and (cfg / "new").read_text() == "n"
        assert len(cl.tokens) == 1
        cl.now += timedelta(seconds=2)
        await m.refresh(p)
        assert len(cl.tokens) == 2 and (vdir(root, "projected", "tok") / "t").read_text() == "token-2-robot"
        assert cl.tokens[1]["spec"]["audiences"] == ["x"]
        del cl.objects[("configmaps", "ns", "cfg")]
        await m.refresh(p)  # gone: the running pod keeps its last files
        assert (cfg / "k").read_text() == "v2"
        await m.teardown("uid1")

    asyncio.run(main())


def test_refresh_reads_at_most_once_per_period(root: Path) -> None:
    cl = Cluster()
    cl.objects[("configmaps", "ns", "cfg")] = {"data": {"k": "v1"}}
    p = pod([{"name": "cfg", "configMap": {"name": "cfg"}}], [])

    async def main() -> None:
        m = cl.manager(root, refresh_period=timedelta(seconds=5))
        await m.setup(p)
        await m.refresh(p)
        cl.objects[("configmaps", "ns", "cfg")] = {"data": {"k": "v2"}}
        cl.now += timedelta(seconds=4)
        await m.refresh(p)
        assert (vdir(root, "configmap", "cfg") / "k").read_text() == "v1"
        cl.now += timedelta(seconds=1)
        await m.refresh(p)
        assert (vdir(root, "configmap", "cfg") / "k").read_text() == "v2"
        await m.teardown("uid1")

    asyncio.run(main())


def test_restarted_agent_cleans_up_orphans(root: Path) -> None:
    cl = Cluster()
    volumes = [{"name": "mem", "emptyDir": {"medium": "Memory"}}, {"name": "d", "emptyDir": {}}]
    mounts_ = [{"name": "d", "mountPath": "/x", "subPath": "s"}]
    gone, live = pod(volumes, mounts_, uid="gone"), pod(volumes, mounts_, uid="live")
    logs = root / "pods" / "ns_web_gone"

    async def main() -> None:
        crashed = cl.manager(root)
        for p in (gone, live):
            await crashed.setup(p)
            crashed.container_mounts(p, p["spec"]["containers"][0], [])
        logs.mkdir()
        assert len(findmnt(root)) == 4
        restarted = cl.manager(root)
        assert await restarted.cleanup_orphans({"live"}) == ["gone"]
        assert not (root / "pods" / "gone").exists() and logs.is_dir()
        assert len(findmnt(root / "pods" / "live")) == 2
        await restarted.teardown("live")

    asyncio.run(main())


def test_without_root_memory_backed_volumes_are_on_disk_with_a_warning(root: Path) -> None:
    """An agent that cannot mount tmpfs keeps secrets, projected volumes and a medium Memory emptyDir
    in plain directories and says so once per volume (the test runs as root and plays the other case)."""
    cl = Cluster()
    cl.objects[("secrets", "ns", "s")] = {"data": {"password": b64("hunter2")}}
    volumes = [
        {"name": "mem", "emptyDir": {"medium": "Memory"}},
        {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "all", "projected": {"sources": [{"secret": {"name": "s"}}]}},
    ]
    p = pod(volumes, [{"name": v["name"], "mountPath": f"/m/{v['name']}"} for v in volumes])
    warnings: list[tuple[str, str]] = []

    async def main() -> None:
        m = cl.manager(root / "data", warn=lambda _pod, reason, message: warnings.append((reason, message)))
        m.privileged = False
        await m.setup(p)
        await m.setup(p)  # once per volume, not per sync
        data = root / "data"
        assert (vdir(data, "secret", "sec") / "password").read_text() == "hunter2"
        assert findmnt(root) == []
        await m.teardown("uid1")

    asyncio.run(main())
    assert [r for r, _ in warnings] == ["MemoryMediumUnsupported"] * 3
    text = "\n".join(msg for _, msg in warnings)
    assert 'emptyDir "mem" with medium Memory is on disk' in text
    assert 'secret volume "sec"' in text and 'projected volume "all"' in text
    assert "run the agent as root" in text
