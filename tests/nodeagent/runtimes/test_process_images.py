"""The process runtime's image store with OCI layouts: import, unpack, tags, and containers in the root.

Store cases need only the static busybox (skip without it); container cases also need root, since the
busybox image's files are root-owned and chroot/overlay need privilege (skip with the reason
otherwise). One layout build per module keeps the file fast.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import tarfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nodeagent.cri import api_pb2 as pb
from nodeagent.images import BUSYBOX_IMAGE, PAUSE_IMAGE, Entry, write_images
from nodeagent.images.oci import layer_tar
from nodeagent.runtimes.process.images import ImageStore, LayoutError
from nodeagent.runtimes.process.isolation import Isolation, probe
from nodeagent.runtimes.process.oci_layout import resolve_in
from nodeagent.runtimes.process.runtime import FailedPreconditionError, ProcessRuntime
from tests.capabilities import needs, require

needs_busybox = needs(
    "busybox", None if os.access("/bin/busybox", os.X_OK) else "/bin/busybox missing (install busybox-static)"
)
needs_root = needs("root", None if os.geteuid() == 0 else "running in an image root needs root")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not os.access("/bin/busybox", os.X_OK):
        require("busybox", "/bin/busybox missing (install busybox-static)")
    out = tmp_path_factory.mktemp("layouts")
    return {name: path for name, (path, _img) in write_images(str(out)).items()}


# -- hand-made layouts (several layers, whiteouts) ------------------------------------------------


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def _raw_tar(members: list[tuple[str, bytes]]) -> bytes:
    """Tar with exact names (whiteout files), no parents added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_layout(path: Path, layers: list[bytes], annotations: dict[str, str], config: dict[str, Any]) -> None:
    blobs: dict[str, bytes] = {}
    ldescs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(blobs, gzip.compress(raw))}
        for raw in layers
    ]
    cfg = {"architecture": "amd64", "os": "linux", "config": config, "rootfs": {"type": "layers"}}
    cdesc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_blob(blobs, json.dumps(cfg).encode()),
    }
    manifest = {"schemaVersion": 2, "config": cdesc, "layers": ldescs}
    mdesc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(blobs, json.dumps(manifest).encode()),
        "annotations": annotations,
    }
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    files.append(("index.json", json.dumps({"schemaVersion": 2, "manifests": [mdesc]}).encode()))
    files += [(f"blobs/sha256/{d.split(':')[1]}", data) for d, data in blobs.items()]
    path.write_bytes(_raw_tar(files))


# -- store ----------------------------------------------------------------------------------------


@needs_busybox
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("busybox", id="short"),
        pytest.param("busybox:latest", id="tagged"),
        pytest.param("docker.io/library/busybox:latest", id="normalised"),
    ],
)
def test_import_dir_is_read_and_names_resolve(tmp_path: Path, layouts: dict[str, str], name: str) -> None:
    (tmp_path / "images" / "import").mkdir(parents=True)
    shutil.copy(layouts[BUSYBOX_IMAGE], tmp_path / "images" / "import" / "busybox.tar")
    store = ImageStore(tmp_path / "images")
    rec = store.get(name)
    assert rec is not None and rec.rootfs
    assert rec.repo_tags == (BUSYBOX_IMAGE,)
    assert os.path.isfile(os.path.join(rec.rootfs, "bin", "busybox"))
    assert os.path.islink(os.path.join(rec.rootfs, "bin", "ls"))
    assert rec.cmd == ("sh",) and rec.env[0].startswith("PATH=")
    assert store.pull(name) == rec  # PullImage finds the imported image, no record is made


@needs_busybox
def test_import_replaces_a_record_image_and_remove_sticks(tmp_path: Path, layouts: dict[str, str]) -> None:
    store = ImageStore(tmp_path / "images")
    assert store.pull("busybox").rootfs == ""  # a record: host filesystem
    shutil.copy(layouts[BUSYBOX_IMAGE], store.import_dir / "bb.tar")
    rec = store.pull("busybox")  # a miss on imports scans the import dir
    assert rec.rootfs and [r.id for r in store.list()] == [rec.id]
    store.remove("busybox")
    assert store.get("busybox") is None and not os.path.exists(rec.rootfs)
    assert ImageStore(tmp_path / "images").get(rec.id) is None  # the same tarball is not re-imported


@needs_busybox
def test_runtime_image_rpcs(tmp_path: Path, layouts: dict[str, str]) -> None:
    rt = ProcessRuntime(str(tmp_path / "root"), isolation=Isolation("plain"))
    iid = rt.import_layout(layouts[PAUSE_IMAGE])
    st = rt.image_status(
        pb.ImageStatusRequest(image=pb.ImageSpec(image="registry.k8s.io/pause:3.9"), verbose=True)
    )
    assert st.image.id == iid and st.image.size > 1000 and st.image.repo_tags == [PAUSE_IMAGE]
    assert st.image.repo_digests[0].startswith("registry.k8s.io/pause@sha256:")
    spec = json.loads(st.info["info"])["imageSpec"]["config"]
    assert spec["Entrypoint"][:2] == ["/bin/sh", "-c"] and spec["WorkingDir"] == "/"
    assert [i.id for i in rt.list_images(pb.ListImagesRequest()).images] == [iid]
    assert rt.pull_image(pb.PullImageRequest(image=pb.ImageSpec(image=PAUSE_IMAGE))).image_ref == iid
    rt.remove_image(pb.RemoveImageRequest(image=pb.ImageSpec(image=iid)))
    assert not rt.image_status(pb.ImageStatusRequest(image=pb.ImageSpec(image=PAUSE_IMAGE))).HasField("image")
    assert not os.listdir(rt.images.rootfs_dir)


def test_layers_apply_in_order_with_whiteouts(tmp_path: Path) -> None:
    lower = layer_tar(
        [
            Entry("etc/keep", "file", 0o644, b"lower"),
            Entry("etc/gone", "file", 0o644, b"x"),
            Entry("opq/old", "file", 0o644, b"x"),
            Entry("link", "symlink", target="/etc"),
        ]
    )
    upper = _raw_tar(
        [("etc/.wh.gone", b""), ("opq/.wh..wh..opq", b""), ("opq/new", b"n"), ("link/via", b"v")]
    )
    make_layout(tmp_path / "l.tar", [lower, upper], {"io.containerd.image.name": "example.com/t:1"}, {})
    rec = ImageStore(tmp_path / "images").import_layout(str(tmp_path / "l.tar"))
    root = Path(rec.rootfs)
    assert rec.repo_tags == ("example.com/t:1",)
    assert (root / "etc/keep").read_bytes() == b"lower"
    assert not (root / "etc/gone").exists()
    assert sorted(os.listdir(root / "opq")) == ["new"]
    assert (root / "etc/via").read_bytes() == b"v"  # through the symlink, but inside the root


@pytest.mark.parametrize(
    "rel,expected",
    [
        pytest.param("a/../../x", "x", id="dotdot-stops-at-root"),
        pytest.param("abs/f", "etc/f", id="absolute-link-is-rooted"),
        pytest.param("up/f", "f", id="relative-link-cannot-escape"),
    ],
)
def test_resolve_in_never_leaves_the_root(tmp_path: Path, rel: str, expected: str) -> None:
    (tmp_path / "a").mkdir()
    os.symlink("/etc", tmp_path / "abs")
    os.symlink("../../..", tmp_path / "up")
    assert resolve_in(str(tmp_path), rel) == str(tmp_path / expected)


@pytest.mark.parametrize(
    "files,message",
    [
        pytest.param([("index.json", b"{}")], "not an OCI image layout", id="no-oci-layout"),
        pytest.param(
            [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", b'{"manifests":[]}')],
            "no image",
            id="empty-index",
        ),
    ],
)
def test_bad_layouts_are_rejected(tmp_path: Path, files: list[tuple[str, bytes]], message: str) -> None:
    (tmp_path / "bad.tar").write_bytes(_raw_tar(files))
    with pytest.raises(LayoutError, match=message):
        ImageStore(tmp_path / "images").import_layout(str(tmp_path / "bad.tar"))


def test_corrupt_blob_is_rejected(tmp_path: Path) -> None:
    make_layout(
        tmp_path / "l.tar",
        [layer_tar([Entry("f", "file", 0o644, b"1")])],
        {"io.containerd.image.name": "x.io/a:1"},
        {},
    )
    data = (tmp_path / "l.tar").read_bytes().replace(b'"os": "linux"', b'"os": "LINUX"')
    (tmp_path / "l.tar").write_bytes(data)
    with pytest.raises(LayoutError, match="does not match its digest"):
        ImageStore(tmp_path / "images").import_layout(str(tmp_path / "l.tar"))


# -- containers in the root -----------------------------------------------------------------------


def _modes() -> list[Any]:
    out = []
    for mode in ("root", "userns"):
        iso = probe(mode)  # type: ignore[arg-type]
        missing = None if iso.mode == mode else f"{mode} namespaces unavailable: {iso.reason}"
        marks = [needs("isolation", missing)]
        out.append(pytest.param(Isolation(mode), id=mode, marks=marks))  # type: ignore[arg-type]
    out.append(pytest.param(Isolation("plain"), id="plain"))
    return out


def _runtime(tmp: Path, iso: Isolation) -> ProcessRuntime:
    ids = (f"{n:064x}" for n in itertools.count(1))
    return ProcessRuntime(str(tmp / "root"), isolation=iso, new_id=lambda: next(ids))


async def _pod(rt: ProcessRuntime, tmp: Path) -> str:
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web-0", uid="u", namespace="ns"),
        hostname="web-0",
        log_directory=str(tmp / "logs"),
    )
    return (await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=cfg))).pod_sandbox_id


async def _run_to_exit(rt: ProcessRuntime, sid: str, name: str, image: str, **kw: Any) -> tuple[int, str]:
    cfg = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        log_path=f"{name}.log",
        **kw,
    )
    cid = rt.create_container(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg)).container_id
    await rt.start_container(pb.StartContainerRequest(container_id=cid))
    await rt.containers[cid].exited.wait()
    st = rt.container_status(pb.ContainerStatusRequest(container_id=cid)).status
    return st.exit_code, Path(st.log_path).read_text()


def _drive(rt: ProcessRuntime, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        try:
            await body()
        finally:
            await rt.shutdown()

    asyncio.run(main())


CASES = [
    pytest.param(["cat", "/etc/os-release"], 1, "", id="host-os-release-not-visible"),
    pytest.param(["ls", "/bin/busybox"], 0, "/bin/busybox", id="image-busybox-visible"),
    pytest.param(["ls", "/usr/bin/python3"], 1, "", id="host-python-not-visible"),
]


@needs_root
@pytest.mark.parametrize("iso", _modes())
def test_container_runs_in_the_image_root(tmp_path: Path, layouts: dict[str, str], iso: Isolation) -> None:
    rt = _runtime(tmp_path, iso)
    rt.import_layout(layouts[BUSYBOX_IMAGE])

    async def body() -> None:
        sid = await _pod(rt, tmp_path)
        for i, case in enumerate(CASES):
            argv, code, out = case.values
            got_code, log = await _run_to_exit(rt, sid, f"c{i}", "busybox", command=argv)
            assert got_code == code, (case.id, log)
            assert out in log
        if iso.namespaced:  # CRI's /etc files, HOSTNAME, /proc of the container, and a private layer
            script = "cat /etc/hostname; grep web-0 /etc/hosts; echo h=$HOSTNAME; ls /proc/1/exe; echo w > /w"
            code, log = await _run_to_exit(rt, sid, "files", "busybox", command=["sh", "-c", script])
            assert code == 0, log
            assert "web-0\n" in log and "127.0.0.1\tweb-0" in log and "h=web-0" in log
            code, log = await _run_to_exit(rt, sid, "private", "busybox", command=["ls", "/w"])
            assert code == 1, log
        # Image defaults: no command and no args runs Entrypoint+Cmd (busybox: `sh`, exits on no stdin).
        code, _log = await _run_to_exit(rt, sid, "default", "busybox")
        assert code == 0

    _drive(rt, body)


@needs_root
@pytest.mark.parametrize("iso", _modes())
def test_exec_sync_enters_the_same_root(tmp_path: Path, layouts: dict[str, str], iso: Isolation) -> None:
    rt = _runtime(tmp_path, iso)
    rt.import_layout(layouts[BUSYBOX_IMAGE])

    async def body() -> None:
        sid = await _pod(rt, tmp_path)
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="s"),
            image=pb.ImageSpec(image="busybox"),
            command=["sleep", "1000"],
            working_dir="/tmp",
        )
        cid = rt.create_container(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg)).container_id
        await rt.start_container(pb.StartContainerRequest(container_id=cid))
        for cmd, code, out in (
            (["pwd"], 0, b"/tmp\n"),
            (["ls", "/bin/busybox"], 0, b"/bin/busybox\n"),
            (["ls", "/usr/bin/python3"], 1, b""),
        ):
            r = await rt.exec_sync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=10))
            assert (r.exit_code, r.stdout) == (code, out), (cmd, r.stderr)
        await rt.remove_container(pb.RemoveContainerRequest(container_id=cid))
        assert not (tmp_path / "root" / "containers" / cid).exists()

    _drive(rt, body)


@needs_root
def test_unknown_image_still_runs_on_the_host(tmp_path: Path, layouts: dict[str, str]) -> None:
    rt = _runtime(tmp_path, probe())
    rt.import_layout(layouts[BUSYBOX_IMAGE])
    rt.pull_image(pb.PullImageRequest(image=pb.ImageSpec(image="ubuntu:22.04")))

    async def body() -> None:
        sid = await _pod(rt, tmp_path)
        code, log = await _run_to_exit(rt, sid, "host", "ubuntu:22.04", command=["ls", "/usr/bin/python3"])
        assert code == 0 and "/usr/bin/python3" in log

    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 on this host to look for")
    _drive(rt, body)


@needs_busybox
@pytest.mark.skipif(os.geteuid() == 0, reason="checks the refusal for non-root users")
def test_plain_mode_without_root_refuses_image_roots(tmp_path: Path, layouts: dict[str, str]) -> None:
    rt = _runtime(tmp_path, Isolation("plain", "forced"))
    rt.import_layout(layouts[BUSYBOX_IMAGE])

    async def body() -> None:
        sid = await _pod(rt, tmp_path)
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image="busybox"))
        with pytest.raises(FailedPreconditionError, match="needs root or mount namespaces"):
            rt.create_container(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg))

    _drive(rt, body)
