"""The process runtime's image store: records under ``<root>/images``, with root filesystems when an
OCI image layout was imported.

Two kinds of image:

* **Record images** (what PullImage makes of a name): the process runtime downloads nothing, so
  pulling ``busybox`` or ``ubuntu:22.04`` records the normalised reference with a stable id (sha256
  of the reference); containers of such an image run on the host's filesystem.
* **Imported images**: OCI image layout tarballs placed in ``<root>/images/import/*.tar`` (read when
  the store opens and again when a pull misses) or passed to ``import_layout``. Their layers are
  unpacked into ``<root>/images/rootfs/<config digest>/``, their id is the config digest (as
  containerd reports it), their tags come from the index annotations, and containers of them run
  chrooted into a copy-on-write view of that root filesystem.

Invariants: one JSON record per image id; a name resolves through ``refs/`` to an imported image
first, and only then to a record image; importing a name replaces the record image of that name
and moves the tag off any other imported image; all record and ref writes are atomic replaces; a
tarball already imported (same name, size and mtime) is not read again, so removing its image
sticks until the tarball changes; lookups accept the name as given, its normalised form
(``docker.io/library/busybox:latest``) or the id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cluster.machinery.files import private_dir, write_private
from nodeagent.runtimes.process.layers import add_mount_points, unpack_layers
from nodeagent.runtimes.process.oci_layout import LayoutError, LayoutImage, read_layout

log = logging.getLogger(__name__)

# Size reported for a record image: CRI requires > 0 and no bytes were stored.
RECORD_SIZE = 1
# Mount points and files the runtime binds over; created empty in every unpacked root filesystem.
ROOTFS_DIRS = ("proc", "dev", "sys", "etc", "tmp")
ROOTFS_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")

__all__ = ["ImageRecord", "ImageStore", "LayoutError", "image_id", "normalize"]


def normalize(ref: str) -> str:
    """Docker-style normalisation: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    ref = ref.strip()
    if ref.startswith("sha256:"):
        return ref
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if digest:
        return f"{name}@{digest}"
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def image_id(ref: str) -> str:
    return "sha256:" + hashlib.sha256(normalize(ref).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image. ``rootfs`` is empty for record images (run on the host filesystem)."""

    id: str
    repo_tags: tuple[str, ...]
    size: int = RECORD_SIZE
    rootfs: str = ""
    repo_digests: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value", as in the image config
    working_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "repoTags": list(self.repo_tags),
            "size": self.size,
            "rootfs": self.rootfs,
            "repoDigests": list(self.repo_digests),
            "config": {
                "Entrypoint": list(self.entrypoint),
                "Cmd": list(self.cmd),
                "Env": list(self.env),
                "WorkingDir": self.working_dir,
            },
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ImageRecord:
        cfg = data.get("config") or {}
        return ImageRecord(
            id=data["id"],
            repo_tags=tuple(data.get("repoTags") or ()),
            size=int(data.get("size", RECORD_SIZE)),
            rootfs=data.get("rootfs") or "",
            repo_digests=tuple(data.get("repoDigests") or ()),
            entrypoint=tuple(cfg.get("Entrypoint") or ()),
            cmd=tuple(cfg.get("Cmd") or ()),
            env=tuple(cfg.get("Env") or ()),
            working_dir=cfg.get("WorkingDir") or "",
        )


# ImageStore.list shadows the builtin inside the class body.
Records = list[ImageRecord]


def _write_json(path: Path, data: Any) -> None:
    write_private(path, json.dumps(data))


class ImageStore:
    """Images under ``root``; synchronous. Record operations are cheap; imports unpack layers."""

    def __init__(self, root: str | os.PathLike[str], *, scan: bool = True) -> None:
        self.root = Path(root)
        self.import_dir = self.root / "import"
        self.rootfs_dir = self.root / "rootfs"
        self.refs_dir = self.root / "refs"
        for d in (self.import_dir, self.rootfs_dir, self.refs_dir):
            private_dir(d)  # the root filesystems inside keep the images' own modes
        self._seen_file = self.root / "imported.json"
        if scan:
            self.scan_imports()

    def _path(self, iid: str) -> Path:
        return self.root / (iid.replace(":", "_") + ".json")

    def _ref_path(self, name: str) -> Path:
        return self.refs_dir / hashlib.sha256(normalize(name).encode()).hexdigest()

    def _read(self, iid: str) -> ImageRecord | None:
        try:
            return ImageRecord.from_json(json.loads(self._path(iid).read_text()))
        except (OSError, ValueError, KeyError):
            return None

    def _save(self, rec: ImageRecord) -> None:
        _write_json(self._path(rec.id), rec.to_json())

    # -- records ------------------------------------------------------------------------------

    def pull(self, ref: str) -> ImageRecord:
        """The imported image of that name if any (importing new tarballs first), else a record."""
        if not ref.strip():
            raise ValueError("image reference is empty")
        found = self.get(ref)
        if found is not None and found.rootfs:
            return found
        self.scan_imports()
        found = self.get(ref)
        if found is not None:
            return found
        rec = ImageRecord(image_id(ref), (normalize(ref),))
        self._save(rec)
        return rec

    def get(self, ref: str) -> ImageRecord | None:
        """The image for a name, normalised name or id; None when absent."""
        if not ref or not ref.strip():
            return None
        if ref.startswith("sha256:"):
            return self._read(ref)
        try:
            target = self._ref_path(ref).read_text().strip()
        except OSError:
            target = ""
        if target:
            rec = self._read(target)
            if rec is not None:
                return rec
        return self._read(image_id(ref))

    def list(self) -> Records:
        out = []
        for p in sorted(self.root.glob("*.json")):
            if p == self._seen_file:
                continue
            rec = self._read(p.stem.replace("_", ":", 1))
            if rec is not None:
                out.append(rec)
        return out

    def remove(self, ref: str) -> None:
        """Remove the image (all its tags, and its root filesystem). Idempotent.

        Containers already running from the image must be gone: their root is the removed directory.
        """
        rec = self.get(ref)
        if rec is None:
            return
        for name in (*rec.repo_tags, *rec.repo_digests):
            p = self._ref_path(name)
            try:
                if p.read_text().strip() == rec.id:
                    p.unlink()
            except OSError:
                pass
        self._path(rec.id).unlink(missing_ok=True)
        if rec.rootfs:
            shutil.rmtree(rec.rootfs, ignore_errors=True)

    # -- imports ------------------------------------------------------------------------------

    def _seen(self) -> dict[str, Any]:
        try:
            data = json.loads(self._seen_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def scan_imports(self) -> Records:
        """Import every ``import/*.tar`` not imported before (or changed since). Logs and skips bad ones."""
        seen = self._seen()
        out: Records = []
        for tarball in sorted(self.import_dir.glob("*.tar")):
            st = tarball.stat()
            key = [st.st_size, st.st_mtime_ns]
            if seen.get(tarball.name) == key:
                continue
            try:
                out += self.import_layout_all(str(tarball))
            except LayoutError as e:
                log.warning("not importing %s: %s", tarball, e)
            seen[tarball.name] = key
            _write_json(self._seen_file, seen)
        return out

    def import_layout(self, path: str, name: str = "") -> ImageRecord:
        """Import the OCI layout tarball at ``path``; returns its (first) image.

        ``name`` adds a tag (needed when the index annotations carry no repository). Raises
        ``LayoutError`` when the tarball cannot be used. Re-importing the same image only retags it.
        """
        images = self.import_layout_all(path, name)
        return images[0]

    def import_layout_all(self, path: str, name: str = "") -> Records:
        with tempfile.TemporaryDirectory(prefix="layout-", dir=self.root) as work:
            layout = read_layout(path, work)
            return [self._import(img, (name,) if name and i == 0 else ()) for i, img in enumerate(layout)]

    def _import(self, img: LayoutImage, extra: tuple[str, ...]) -> ImageRecord:
        hexid = img.config_digest.split(":", 1)[1]
        rootfs = self.rootfs_dir / hexid
        if not rootfs.is_dir():
            tmp = self.rootfs_dir / f".{hexid}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                unpack_layers(img, str(tmp))
                add_mount_points(str(tmp), ROOTFS_DIRS, ROOTFS_FILES)
                os.replace(tmp, rootfs)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        tags = tuple(dict.fromkeys(normalize(n) for n in (*img.names, *extra)))
        digests = tuple(dict.fromkeys(f"{t.rsplit(':', 1)[0]}@{img.manifest_digest}" for t in tags))
        old = self._read(img.config_digest)
        if old is not None:
            tags = tuple(dict.fromkeys((*old.repo_tags, *tags)))
            digests = tuple(dict.fromkeys((*old.repo_digests, *digests)))
        cfg = img.config
        rec = ImageRecord(
            id=img.config_digest,
            repo_tags=tags,
            size=max(img.size, 1),
            rootfs=str(rootfs),
            repo_digests=digests,
            entrypoint=tuple(cfg.get("Entrypoint") or ()),
            cmd=tuple(cfg.get("Cmd") or ()),
            env=tuple(cfg.get("Env") or ()),
            working_dir=cfg.get("WorkingDir") or "",
        )
        self._save(rec)
        for tag in (*tags, *digests):
            self._retag(tag, rec.id)
        return rec

    def _retag(self, name: str, iid: str) -> None:
        """Point ``name`` at ``iid``: drop its record image and take the tag off a previous owner."""
        p = self._ref_path(name)
        try:
            prev = p.read_text().strip()
        except OSError:
            prev = ""
        if prev and prev != iid:
            owner = self._read(prev)
            if owner is not None:
                self._save(
                    replace(
                        owner,
                        repo_tags=tuple(t for t in owner.repo_tags if t != name),
                        repo_digests=tuple(d for d in owner.repo_digests if d != name),
                    )
                )
        if "@" not in name:
            self._path(image_id(name)).unlink(missing_ok=True)
        write_private(p, iid)
