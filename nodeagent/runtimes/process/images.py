"""The process runtime's image store: image names recorded as JSON files under ``<root>/images``.

The process runtime runs commands on the host's filesystem, so "pulling" ``busybox`` or
``ubuntu:22.04`` downloads nothing: it records the normalised reference with a stable id (sha256 of
the reference) so that ImageStatus, ListImages and CreateContainer behave as with containerd
(a container's image must have been pulled first). Records survive a runtime restart.

Invariants: one file per image id; all mutations are atomic file replaces; lookups accept the name
as given, its normalised form (``docker.io/library/busybox:latest``) or the id.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# Size reported for a record image: CRI requires > 0 and no bytes were stored.
RECORD_SIZE = 1


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
    id: str
    repo_tags: tuple[str, ...]
    size: int = RECORD_SIZE


class ImageStore:
    """Image records under ``root``; all methods are synchronous and cheap."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, iid: str) -> Path:
        return self.root / (iid.replace(":", "_") + ".json")

    def pull(self, ref: str) -> ImageRecord:
        """Record ``ref`` (idempotent) and return it."""
        if not ref.strip():
            raise ValueError("image reference is empty")
        iid = image_id(ref)
        rec = ImageRecord(iid, (normalize(ref),))
        tmp = self._path(iid).with_suffix(".tmp")
        tmp.write_text(json.dumps({"id": rec.id, "repoTags": list(rec.repo_tags), "size": rec.size}))
        os.replace(tmp, self._path(iid))
        return rec

    def get(self, ref: str) -> ImageRecord | None:
        """The record for a name, normalised name or id; None when absent."""
        if not ref:
            return None
        iid = ref if ref.startswith("sha256:") else image_id(ref)
        try:
            data = json.loads(self._path(iid).read_text())
        except (OSError, ValueError):
            return None
        return ImageRecord(data["id"], tuple(data["repoTags"]), int(data.get("size", RECORD_SIZE)))

    def list(self) -> list[ImageRecord]:
        out = []
        for p in sorted(self.root.glob("*.json")):
            rec = self.get(p.stem.replace("_", ":", 1))
            if rec is not None:
                out.append(rec)
        return out

    def remove(self, ref: str) -> None:
        """Idempotent: removing an absent image is not an error."""
        rec = self.get(ref)
        if rec is not None:
            self._path(rec.id).unlink(missing_ok=True)
