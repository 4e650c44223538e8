"""The OCI layout writer and the busybox/pause images: layout validity, digests, determinism."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from typing import Any

import pytest

from nodeagent.images import BUSYBOX_IMAGE, PAUSE_IMAGE, Entry, ImageSpec, build, layout_tar, write_images
from nodeagent.images.busybox import busybox_spec, pause_spec
from tests.capabilities import needs

FAKE_BINARY = b"\x7fELF fake busybox"
FAKE_APPLETS = ("cat", "echo", "sh", "sleep")


def _read_layout(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _json(files: dict[str, bytes], digest: str) -> Any:
    return json.loads(files["blobs/sha256/" + digest.split(":", 1)[1]])


def _layer_members(spec: ImageSpec) -> dict[str, tarfile.TarInfo]:
    image = build(spec)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(image.layer.data))) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def test_layout_is_valid_oci() -> None:
    files = _read_layout(layout_tar(build(busybox_spec(FAKE_BINARY, FAKE_APPLETS))))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], name
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    (desc,) = index["manifests"]
    assert desc["annotations"] == {
        "io.containerd.image.name": BUSYBOX_IMAGE,
        "org.opencontainers.image.ref.name": "latest",
    }
    manifest = _json(files, desc["digest"])
    assert desc["size"] == len(files["blobs/sha256/" + desc["digest"][7:]])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    layer_bytes = files["blobs/sha256/" + layer["digest"][7:]]
    assert layer["size"] == len(layer_bytes)
    config = _json(files, manifest["config"]["digest"])
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(layer_bytes)).hexdigest()],
    }
    assert (config["os"], config["architecture"]) == ("linux", "amd64")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            ImageSpec("x/a:1", (), cmd=("sh",), env=("PATH=/bin",)),
            {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            id="cmd-and-env",
        ),
        pytest.param(
            ImageSpec("x/a:1", (), entrypoint=("/bin/true",), working_dir="/w"),
            {"Entrypoint": ["/bin/true"], "WorkingDir": "/w"},
            id="entrypoint-and-workdir",
        ),
        pytest.param(ImageSpec("x/a:1", ()), {}, id="empty"),
    ],
)
def test_runtime_config(spec: ImageSpec, expected: dict[str, Any]) -> None:
    image = build(spec)
    assert json.loads(image.config.data)["config"] == expected


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        pytest.param("docker.io/library/busybox:latest", "latest", id="tagged"),
        pytest.param("registry.k8s.io/pause:3.9", "3.9", id="version-tag"),
        pytest.param("localhost:5000/img", "latest", id="registry-port-no-tag"),
    ],
)
def test_ref_name_annotation(name: str, tag: str) -> None:
    (desc,) = json.loads(build(ImageSpec(name, ())).index)["manifests"]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == tag
    assert desc["annotations"]["io.containerd.image.name"] == name


def test_build_is_deterministic_and_order_independent() -> None:
    spec = busybox_spec(FAKE_BINARY, FAKE_APPLETS)
    shuffled = ImageSpec(spec.name, tuple(reversed(spec.entries)), cmd=spec.cmd, env=spec.env)
    a, b, c = build(spec), build(spec), build(shuffled)
    assert layout_tar(a) == layout_tar(b) == layout_tar(c)
    assert a.digest == c.digest


def test_content_changes_change_the_digest() -> None:
    a = build(busybox_spec(FAKE_BINARY, FAKE_APPLETS))
    b = build(busybox_spec(FAKE_BINARY + b"!", FAKE_APPLETS))
    c = build(busybox_spec(FAKE_BINARY, (*FAKE_APPLETS, "wget")))
    assert len({a.digest, b.digest, c.digest}) == 3


def test_layer_headers_are_normalised() -> None:
    members = _layer_members(
        ImageSpec("x/a:1", (Entry("usr/local/bin/tool", "file", 0o755, b"x"), Entry("tmp", "dir", 0o1777)))
    )
    assert sorted(members) == ["tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/tool"]
    for m in members.values():
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (946684800, 0, 0, "", "")
    assert members["tmp"].mode == 0o1777
    assert members["usr/local"].isdir() and members["usr/local"].mode == 0o755


@pytest.mark.parametrize(
    ("path", "check"),
    [
        pytest.param("bin/busybox", lambda m: m.isfile() and m.mode == 0o755, id="busybox-binary"),
        pytest.param("bin/sh", lambda m: m.issym() and m.linkname == "busybox", id="applet-symlink"),
        pytest.param("etc/passwd", lambda m: m.isfile(), id="passwd"),
        pytest.param("etc/group", lambda m: m.isfile(), id="group"),
        pytest.param("tmp", lambda m: m.isdir() and m.mode == 0o1777, id="tmp-sticky"),
        pytest.param("root", lambda m: m.isdir(), id="root-home"),
    ],
)
def test_busybox_rootfs(path: str, check: Any) -> None:
    members = _layer_members(busybox_spec(FAKE_BINARY, FAKE_APPLETS))
    assert check(members[path])


def test_busybox_rootfs_leaves_hosts_to_the_runtime() -> None:
    members = _layer_members(busybox_spec(FAKE_BINARY, FAKE_APPLETS))
    assert "etc/hosts" not in members and "etc/resolv.conf" not in members


def test_pause_image_runs_a_reaping_shell() -> None:
    config = json.loads(build(pause_spec(FAKE_BINARY, FAKE_APPLETS)).config.data)["config"]
    assert config["Entrypoint"][:2] == ["/bin/sh", "-c"]
    assert "trap" in config["Entrypoint"][2] and "wait" in config["Entrypoint"][2]
    assert build(pause_spec(FAKE_BINARY, FAKE_APPLETS)).name == PAUSE_IMAGE


@needs("busybox", None if os.access("/bin/busybox", os.X_OK) else "needs /bin/busybox (busybox-static)")
def test_write_images_from_host_busybox_is_stable(tmp_path: Any) -> None:
    first = write_images(str(tmp_path / "a"))
    second = write_images(str(tmp_path / "b"))
    assert set(first) == {BUSYBOX_IMAGE, PAUSE_IMAGE}
    for name in first:
        assert first[name][1].digest == second[name][1].digest
        with open(first[name][0], "rb") as f1, open(second[name][0], "rb") as f2:
            assert f1.read() == f2.read()
    members = _layer_members(
        busybox_spec(open("/bin/busybox", "rb").read(), ["sh"])  # noqa: SIM115
    )
    assert members["bin/busybox"].size == os.path.getsize("/bin/busybox")
