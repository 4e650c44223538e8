"""CRI ``ContainerConfig.mounts`` in the process runtime: bind mounts in the container's own mount
namespace, for containers in an image root (mount points made in the container's layer) and on the
host's filesystem (existing paths only), read-only when asked, shared between the containers of a pod,
seen by exec, reported in ContainerStatus, and never visible in the host's mount namespace."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nodeagent.cri import api_pb2 as pb
from nodeagent.images import BUSYBOX_IMAGE
from nodeagent.runtimes.process import mounts, rootfs
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.runtime import FailedPreconditionError, ProcessRuntime
from tests.nodeagent.runtimes.test_process_images import _modes, layouts, needs_root
from tests.nodeagent.runtimes.test_process_runtime import MODES, container, make_runtime, run, sandbox, start

__all__ = ["layouts"]  # the module fixture, used by name
IMAGE_MODES = [p for p in _modes() if p.id != "plain"]
HOST_MODES = [p for p in MODES if p.id != "plain"]


def mount(host: Path | str, path: str, readonly: bool = False, **kw: Any) -> pb.Mount:
    return pb.Mount(host_path=str(host), container_path=path, readonly=readonly, **kw)


def host_mounts_under(path: Path) -> list[str]:
    """Mount points in the host's (this test's) mount namespace at or below ``path``."""
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True)
    return [t for t in out.stdout.splitlines() if t == str(path) or t.startswith(f"{path}/")]


# -- pure parts -----------------------------------------------------------------------------------


def test_spec_orders_shallowest_first_and_maps_propagation() -> None:
    ms = [
        mount("/h/b", "/data/sub", True),
        mount("/h/a", "/data", propagation=pb.PROPAGATION_HOST_TO_CONTAINER),
        mount("/h/c", "/x"),
    ]
    assert json.loads(mounts.spec(ms)) == [
        ["/h/a", "/data", False, "slave"],
        ["/h/c", "/x", False, "private"],
        ["/h/b", "/data/sub", True, "private"],
    ]
    assert mounts.needs_slave(ms) and not mounts.needs_slave(ms[:1])


def test_argv_builders_carry_the_helper() -> None:
    spec = mounts.spec([mount("/h", "/data")])
    helper = mounts.bind_argv("/py", "/s/merged", True, spec)
    assert helper == ["/py", "-I", "-S", "-c", mounts.BIND_SCRIPT, "/s/merged", "1", spec]
    argv = rootfs.enter_argv(True, "/img", "/s", "/w", ["sleep", "1"], 7, mounts_spec=spec, python="/py")
    assert argv[4:9] == ["/img", "/s", "/w", "7", str(len(helper))]
    assert argv[9 : 9 + len(helper)] == helper and argv[-2:] == ["sleep", "1"]
    assert rootfs.enter_argv(True, "/img", "/s", "/w", ["true"], 7)[4:10] == [
        "/img",
        "/s",
        "/w",
        "7",
        "0",
        "true",
    ]
    argv = rootfs.bind_resolv_argv("", ["sleep", "1"], 7, mounts_spec=spec, python="/py")
    host_helper = mounts.bind_argv("/py", "/", False, spec)
    assert argv[4:7] == ["", "7", str(len(host_helper))] and argv[7:-2] == host_helper
    slave = Isolation("root").container_argv(5, ["c"], slave_mounts=True)
    assert slave[slave.index("--mount") : slave.index("--mount") + 3] == ["--mount", "--propagation", "slave"]
    assert "--propagation" not in Isolation("root").container_argv(5, ["c"])


def test_check_refuses_what_the_runtime_cannot_do(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(mounts.MountError, match=r"^mounts need mount namespaces: isolation mode plain: "):
        mounts.check([mount(tmp_path / "dir", "/data")], Isolation("plain", "forced"), "")
    mounts.check([], Isolation("plain"), "")  # no mounts: nothing to refuse
    root = Isolation("root")
    with pytest.raises(mounts.MountError, match=r"Bidirectional \(for /data\) is not supported"):
        mounts.check([mount(tmp_path / "dir", "/data", propagation=pb.PROPAGATION_BIDIRECTIONAL)], root, "")
    missing = tmp_path / "nowhere" / "data"
    with pytest.raises(
        mounts.MountError, match=f"mount target {missing} does not exist on the host's.*image"
    ):
        mounts.check([mount(tmp_path / "dir", str(missing))], root, "")
    with pytest.raises(mounts.MountError, match="the container path is not a directory"):
        mounts.check([mount(tmp_path / "dir", str(tmp_path / "file"))], root, "")
    with pytest.raises(mounts.MountError, match="is not absolute"):
        mounts.check([mount(tmp_path / "dir", "data")], root, "")
    mounts.check([mount(tmp_path / "dir", str(tmp_path / "dir"))], root, "")
    # In an image root: a missing path is fine (made in the container's layer); a file in the image
    # under a directory volume is not, even through a symlink in the image.
    img = tmp_path / "img"
    (img / "etc").mkdir(parents=True)
    (img / "etc" / "motd").write_text("hi")
    (img / "link").symlink_to("/etc")
    mounts.check([mount(tmp_path / "dir", "/data/deep")], root, str(img))
    with pytest.raises(mounts.MountError, match="/link/motd: the container path is not a directory"):
        mounts.check([mount(tmp_path / "dir", "/link/motd")], root, str(img))
    mounts.check([mount(tmp_path / "file", "/link/motd")], root, str(img))


def test_the_kubelet_managed_token_directory_is_made_on_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pod mounts its ServiceAccount token under /var/run/secrets/kubernetes.io/: that one
    tree is made (empty) on the host for containers on the host's filesystem; a path that climbs
    out of it with ".." is not, and stays refused."""
    managed = tmp_path / "run" / "secrets" / "kubernetes.io"
    monkeypatch.setattr(mounts, "KUBELET_MANAGED_DIR", f"{managed}/")
    (tmp_path / "vol").mkdir()
    root = Isolation("root")
    mounts.check([mount(tmp_path / "vol", f"{managed}/serviceaccount")], root, "")
    assert (managed / "serviceaccount").is_dir() and not any((managed / "serviceaccount").iterdir())
    escape = f"{managed}/../../elsewhere"
    with pytest.raises(mounts.MountError, match="does not exist on the host's filesystem"):
        mounts.check([mount(tmp_path / "vol", escape)], root, "")
    assert not (tmp_path / "run" / "elsewhere").exists()


def test_plain_mode_refuses_a_container_with_mounts(tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()

    async def body(rt: ProcessRuntime) -> None:
        cfg = container("c", ["sleep", "60"], mounts=[mount(tmp_path / "vol", str(tmp_path / "vol"))])
        with pytest.raises(
            FailedPreconditionError, match="mounts need mount namespaces: isolation mode plain"
        ):
            await start(rt, sandbox(tmp_path), cfg)

    run(make_runtime(tmp_path, Isolation("plain", "forced by configuration")), body)


# -- real containers ------------------------------------------------------------------------------


async def exec_out(rt: ProcessRuntime, cid: str, script: str) -> tuple[int, str]:
    r = await rt.exec_sync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=20))
    return r.exit_code, (r.stdout + r.stderr).decode()


async def create_start(rt: ProcessRuntime, sid: str, cfg: pb.ContainerConfig) -> str:
    cid = rt.create_container(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg)).container_id
    await rt.start_container(pb.StartContainerRequest(container_id=cid))
    return cid


@needs_root
@pytest.mark.parametrize("iso", IMAGE_MODES)
def test_image_root_containers_get_their_mounts(
    tmp_path: Path, layouts: dict[str, str], iso: Isolation
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    conf = tmp_path / "app.conf"
    conf.write_text("key=1\n")
    # A symlink in the volume that points out of it: a later mount through it lands in the container's
    # root, never on the host.
    (shared / "esc").symlink_to(str(tmp_path / "hostside"))
    before = host_mounts_under(tmp_path)
    rt = make_runtime(tmp_path, iso)
    rt.import_layout(layouts[BUSYBOX_IMAGE])

    async def body(rt: ProcessRuntime) -> None:
        sid = (
            await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=sandbox(tmp_path, "web-0")))
        ).pod_sandbox_id
        writer = container(
            "writer",
            ["sh", "-c", "echo hello > /data/x && sleep 60"],
            mounts=[
                mount(shared, "/data"),
                mount(conf, "/etc/app/app.conf", readonly=True),
                mount(tmp_path / "inner", "/data/esc/inner"),
            ],
        )
        (tmp_path / "inner").mkdir()
        reader = container("reader", ["sleep", "60"], mounts=[mount(shared, "/mnt/ro/deep", readonly=True)])
        wid = await create_start(rt, sid, writer)
        rid = await create_start(rt, sid, reader)
        code, out = await exec_out(
            rt,
            rid,
            "for i in $(seq 50); do [ -s /mnt/ro/deep/x ] && break; sleep 0.1; done; cat /mnt/ro/deep/x",
        )
        assert (code, out) == (0, "hello\n")
        code, out = await exec_out(rt, rid, "echo no > /mnt/ro/deep/y")
        assert code != 0 and "Read-only file system" in out, out
        assert not (shared / "y").exists()
        code, out = await exec_out(rt, wid, "cat /etc/app/app.conf; echo more >> /etc/app/app.conf")
        assert code != 0 and out.startswith("key=1\n") and "Read-only" in out, out
        code, out = await exec_out(rt, wid, "touch /data/esc/inner/seen && ls /data/esc/inner")
        assert (code, out) == (0, "seen\n"), out
        assert (tmp_path / "inner" / "seen").exists() and not (tmp_path / "hostside").exists()
        assert (shared / "x").read_text() == "hello\n"
        st = rt.container_status(pb.ContainerStatusRequest(container_id=rid)).status
        assert [(m.host_path, m.container_path, m.readonly) for m in st.mounts] == [
            (str(shared), "/mnt/ro/deep", True)
        ]
        assert host_mounts_under(tmp_path) == before  # nothing leaked into the host's namespace

    run(rt, body)
    assert host_mounts_under(tmp_path) == before


@pytest.mark.parametrize("iso", HOST_MODES)
def test_host_filesystem_containers_bind_over_existing_paths(tmp_path: Path, iso: Isolation) -> None:
    vol, target = tmp_path / "vol", tmp_path / "target"
    vol.mkdir()
    target.mkdir()
    (vol / "f").write_text("from the volume\n")
    before = host_mounts_under(tmp_path)

    async def body(rt: ProcessRuntime) -> None:
        cfg = container("c", ["sleep", "60"], mounts=[mount(vol, str(target), readonly=True)])
        sid, cid = await start(rt, sandbox(tmp_path), cfg)
        code, out = await exec_out(rt, cid, f"cat {target}/f; touch {target}/g")
        assert code != 0 and out.startswith("from the volume\n") and "Read-only" in out, out
        assert list(target.iterdir()) == []  # the host's directory is untouched
        assert host_mounts_under(tmp_path) == before
        missing = container("m", ["sleep", "60"], mounts=[mount(vol, str(tmp_path / "not-there"))])
        with pytest.raises(FailedPreconditionError, match=r"does not exist on the host's filesystem.*image"):
            rt.create_container(pb.CreateContainerRequest(pod_sandbox_id=sid, config=missing))
        assert not (tmp_path / "not-there").exists()

    run(make_runtime(tmp_path, iso), body)
    assert host_mounts_under(tmp_path) == before


@needs_root
def test_host_to_container_mounts_see_later_host_mounts(tmp_path: Path, layouts: dict[str, str]) -> None:
    """HostToContainer (rslave): a mount the host makes below the volume after the container started
    appears in the container; a private mount of the same directory does not see it."""
    vol = tmp_path / "vol"
    vol.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(vol)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(vol)], check=True)
        (vol / "later").mkdir()
        rt = make_runtime(tmp_path, Isolation("root"))
        rt.import_layout(layouts[BUSYBOX_IMAGE])

        async def body(rt: ProcessRuntime) -> None:
            sc = sandbox(tmp_path, "prop")
            sid = (await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=sc))).pod_sandbox_id
            slave = mount(vol, "/data", propagation=pb.PROPAGATION_HOST_TO_CONTAINER)
            slave_id = await create_start(rt, sid, container("slave", ["sleep", "60"], mounts=[slave]))
            priv = await create_start(
                rt, sid, container("private", ["sleep", "60"], mounts=[mount(vol, "/data")])
            )
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(vol / "later")], check=True)
            (vol / "later" / "seen").write_text("yes\n")
            assert await exec_out(rt, slave_id, "cat /data/later/seen") == (0, "yes\n")
            code, _ = await exec_out(rt, priv, "cat /data/later/seen")
            assert code != 0

        run(rt, body)
    finally:
        subprocess.run(["umount", "-R", str(vol)], check=False)
