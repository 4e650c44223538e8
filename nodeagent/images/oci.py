"""A small, deterministic OCI image-layout writer (stdlib only).

Role: turn an `ImageSpec` (a list of filesystem entries plus the runtime config: Entrypoint, Cmd, Env,
WorkingDir) into an OCI image layout tarball (`oci-layout`, `index.json`, `blobs/sha256/...`) that
`ctr images import` and the `process` runtime's image store can read.

Invariants:
- The output is a pure function of the spec: every tar header has a fixed mtime (`EPOCH`), uid/gid 0,
  empty user/group names, and entries are written in path order; gzip headers carry mtime 0 and no file
  name. So the same spec on the same zlib gives byte-identical blobs and the same manifest digest.
- Exactly one gzip layer. `rootfs.diff_ids` holds the digest of the uncompressed layer tar, the manifest
  holds the digest of the compressed one, as the image spec requires.
- `index.json` names the image twice: `io.containerd.image.name` (the full reference, which containerd
  uses on import) and `org.opencontainers.image.ref.name` (the tag, as the layout spec suggests).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cluster.machinery.files import open_private

# 2000-01-01T00:00:00Z; a fixed, non-zero time so tools that treat 0 as "unset" still show a date.
EPOCH = 946684800
CREATED = "2000-01-01T00:00:00Z"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

EntryKind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One filesystem entry of the layer. `path` is relative to / without a leading slash."""

    path: str
    kind: EntryKind
    mode: int = 0o755
    data: bytes = b""
    target: str = ""  # symlink target


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What to build. `name` is the full reference, e.g. `docker.io/library/busybox:latest`."""

    name: str
    entries: tuple[Entry, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    architecture: str = "amd64"
    os: str = "linux"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}
        if annotations:
            d["annotations"] = annotations
        return d


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """The blobs of one image and its layout files. `manifest.digest` is the image id containerd reports."""

    name: str
    layer: Blob
    config: Blob
    manifest: Blob
    index: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return self.manifest.digest


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _tarinfo(name: str, kind: EntryKind, mode: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = EPOCH
    ti.mode = mode
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}[kind]
    return ti


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """Add missing parent directories (mode 0755) so extractors never invent them with odd modes."""
    by_path = {e.path.strip("/"): e for e in entries}
    for path in list(by_path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            by_path.setdefault(parent, Entry(parent, "dir", 0o755))
    return [by_path[p] for p in sorted(by_path)]


def layer_tar(entries: Sequence[Entry]) -> bytes:
    """The uncompressed layer: a PAX tar of `entries` (plus parents) in path order, fully deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in _with_parents(entries):
            path = e.path.strip("/")
            ti = _tarinfo(path + ("/" if e.kind == "dir" else ""), e.kind, e.mode)
            if e.kind == "file":
                ti.size = len(e.data)
                tar.addfile(ti, io.BytesIO(e.data))
            else:
                if e.kind == "symlink":
                    ti.linkname = e.target
                tar.addfile(ti)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def build(spec: ImageSpec) -> BuiltImage:
    """Build the blobs of `spec` in memory (a busybox image is ~2 MB)."""
    raw = layer_tar(spec.entries)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer = Blob(MEDIA_LAYER_GZIP, _gzip(raw))
    runtime: dict[str, Any] = {}
    if spec.entrypoint:
        runtime["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd:
        runtime["Cmd"] = list(spec.cmd)
    if spec.env:
        runtime["Env"] = list(spec.env)
    if spec.working_dir:
        runtime["WorkingDir"] = spec.working_dir
    if spec.labels:
        runtime["Labels"] = dict(spec.labels)
    config = Blob(
        MEDIA_CONFIG,
        _canonical_json(
            {
                "architecture": spec.architecture,
                "os": spec.os,
                "created": CREATED,
                "config": runtime,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": CREATED, "created_by": "raykube nodeagent.images"}],
            }
        ),
    )
    manifest = Blob(
        MEDIA_MANIFEST,
        _canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }
        ),
    )
    tag = spec.name.rsplit(":", 1)[1] if ":" in spec.name.rsplit("/", 1)[-1] else "latest"
    index = _canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                manifest.descriptor(
                    {"io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag}
                )
            ],
        }
    )
    return BuiltImage(spec.name, layer, config, manifest, index, diff_id)


def layout_tar(image: BuiltImage) -> bytes:
    """The OCI image layout of `image` as one (uncompressed) tarball, deterministic like the blobs."""
    files: list[tuple[str, bytes]] = [
        ("oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"})),
        ("index.json", image.index),
    ]
    for blob in (image.layer, image.config, image.manifest):
        files.append(("blobs/sha256/" + blob.digest.split(":", 1)[1], blob.data))
    entries = [Entry(path, "file", 0o644, data) for path, data in files]
    return layer_tar(entries)


def write_layout_tar(spec: ImageSpec, path: str) -> BuiltImage:
    """Build `spec` and write its layout tarball to `path` (replaced atomically). Returns the image."""
    image = build(spec)
    tmp = f"{path}.tmp.{os.getpid()}"
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as f:
        f.write(layout_tar(image))
    os.replace(tmp, path)
    return image
