"""Reading OCI image layout tarballs.

Role: ``read_layout(tarball, work_dir)`` extracts the layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``) into ``work_dir`` and returns one ``LayoutImage`` per image manifest the index
names (nested indexes pick the host's platform); ``layers.unpack_layers`` applies an image's layers.
``resolve_in`` resolves a path inside an unpacked root for read-only checks.

Invariants:
- Every blob is checked against its digest before use; a mismatch, a missing blob, an unsupported
  media type (zstd, foreign layers) or a malformed document raises ``LayoutError`` with the reason.
- The layout tarball itself yields only regular files and directories at clean relative paths under
  ``work_dir`` (a layout has nothing else; links and devices in it are ignored).
- ``resolve_in`` never answers a path outside its root: ``..`` stops at the root and absolute link
  targets are relative to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MEDIA_INDEX = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MEDIA_MANIFEST = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
LAYER_MEDIA = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


class LayoutError(ValueError):
    """The tarball is not an OCI image layout this importer can use; the message says why."""


@dataclass(frozen=True, slots=True)
class LayoutImage:
    """One image of a layout: where its blobs are, its names and its runtime config."""

    names: tuple[str, ...]  # references as annotated (not normalised)
    manifest_digest: str
    config_digest: str
    config: dict[str, Any]  # the image config's "config" object (Entrypoint, Cmd, Env, WorkingDir...)
    layers: tuple[tuple[str, str], ...]  # (blob path, media type), lowest first
    size: int  # config plus compressed layers, as registries count it


def _blob(work: Path, digest: str) -> Path:
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise LayoutError(f"unsupported digest {digest!r}")
    path = work / "blobs" / "sha256" / hexdigest
    if not path.is_file():
        raise LayoutError(f"blob {digest} is missing from the layout")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != hexdigest:
        raise LayoutError(f"blob {digest} does not match its digest")
    return path


def _json(work: Path, digest: str) -> dict[str, Any]:
    try:
        doc = json.loads(_blob(work, digest).read_bytes())
    except ValueError as e:
        raise LayoutError(f"blob {digest} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"blob {digest} is not a JSON object")
    return doc


def _extract_layout(tarball: str, work: Path) -> None:
    """Regular files and directories only, at clean relative paths (a layout has nothing else)."""
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for m in tar:
                rel = clean_name(m.name)
                if not rel:
                    continue
                if m.isdir():
                    (work / rel).mkdir(parents=True, exist_ok=True)
                elif m.isreg():
                    (work / rel).parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(m)
                    assert src is not None
                    with src, open(work / rel, "wb") as out:
                        shutil.copyfileobj(src, out)
    except (tarfile.TarError, OSError) as e:
        raise LayoutError(f"cannot read {tarball}: {e}") from None


def _platform_ok(desc: dict[str, Any]) -> bool:
    p = desc.get("platform")
    if not isinstance(p, dict):
        return True
    arch = _ARCH.get(platform.machine(), platform.machine())
    return bool(p.get("os", "linux") == "linux" and p.get("architecture", arch) == arch)


def _manifests(
    work: Path, index: dict[str, Any], names: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    for desc in index.get("manifests") or ():
        ann = desc.get("annotations") or {}
        own = names or _names(ann)
        media = desc.get("mediaType", "")
        if media in MEDIA_INDEX:
            out += _manifests(work, _json(work, desc["digest"]), own)[:1]
        elif media in MEDIA_MANIFEST and _platform_ok(desc):
            out.append((own, desc["digest"]))
        elif media not in MEDIA_MANIFEST:
            raise LayoutError(f"unsupported index entry media type {media!r}")
    return out


def _names(annotations: dict[str, str]) -> tuple[str, ...]:
    """containerd's full name wins; a ref.name without a repository (just a tag) names nothing alone."""
    full = annotations.get(NAME_ANNOTATION, "")
    if full:
        return (full,)
    ref = annotations.get(REF_ANNOTATION, "")
    if ref and ("/" in ref or ":" in ref or "." in ref):
        return (ref,)
    return ()


def read_layout(tarball: str, work_dir: str) -> list[LayoutImage]:
    """Extract ``tarball`` into ``work_dir`` (which must be empty) and describe its images."""
    work = Path(work_dir)
    _extract_layout(tarball, work)
    try:
        version = json.loads((work / "oci-layout").read_text()).get("imageLayoutVersion")
        index = json.loads((work / "index.json").read_text())
    except (OSError, ValueError, AttributeError) as e:
        raise LayoutError(f"{tarball} is not an OCI image layout (oci-layout/index.json: {e})") from None
    if version != "1.0.0":
        raise LayoutError(f"unsupported imageLayoutVersion {version!r}")
    images = []
    for names, mdigest in _manifests(work, index, ()):
        manifest = _json(work, mdigest)
        cdesc = manifest.get("config") or {}
        config = _json(work, cdesc.get("digest", ""))
        layers = []
        size = int(cdesc.get("size", 0))
        for ldesc in manifest.get("layers") or ():
            media = ldesc.get("mediaType", "")
            if media not in LAYER_MEDIA:
                raise LayoutError(f"unsupported layer media type {media!r}")
            layers.append((str(_blob(work, ldesc["digest"])), media))
            size += int(ldesc.get("size", 0))
        runtime = config.get("config") or {}
        images.append(LayoutImage(names, mdigest, cdesc["digest"], dict(runtime), tuple(layers), size))
    if not images:
        raise LayoutError(f"{tarball} holds no image for this platform")
    return images


# -- paths inside a root --------------------------------------------------------------------------

_MAX_HOPS = 40


def clean_name(name: str) -> str:
    """A tar entry name as a relative path without ``.``/``..``; '' for the root itself."""
    parts: list[str] = []
    for p in name.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/".join(parts)


def resolve_in(root: str, rel: str, follow_last: bool = True) -> str:
    """The host path of ``rel`` inside ``root``, following symlinks without ever leaving ``root``.

    For read-only checks of an unpacked root (``lstat`` per component); unpacking itself
    (``layers.py``) uses directory fds, which also holds when the tree changes underneath.
    """
    done: list[str] = []
    todo = [p for p in rel.split("/") if p]
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        if os.path.islink(here) and (todo or follow_last):
            hops += 1
            if hops > _MAX_HOPS:
                raise LayoutError(f"too many symlinks resolving {rel!r}")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return os.path.join(root, *done)
