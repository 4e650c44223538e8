"""What the hostpath driver remembers about its volumes, one JSON file per volume.

A record is written atomically (temporary file, fsync, rename) after every change, before the RPC
answers, so an actor that restarts (or a node agent that comes back after a crash) knows its
volumes, where each is staged and published, and can unmount all of them on ``stop``. The files
live under ``<root>/records/``, outside the volumes' data, so no pod can see or change them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cluster.machinery.files import private_dir, write_private

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Publication:
    """One NodePublishVolume: a bind mount of ``staging`` at ``target``."""

    target: str
    staging: str
    readonly: bool


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """One volume. ``enforced``: its data is an ext4 image of ``capacity_bytes`` (else a plain
    directory). ``fs_bytes``: the size its filesystem was last grown to; below ``capacity_bytes``
    after an expansion the mounted filesystem could not take yet."""

    volume_id: str
    name: str
    capacity_bytes: int
    enforced: bool
    fs_bytes: int = 0
    parameters: dict[str, str] = field(default_factory=dict)
    staged: tuple[str, ...] = ()
    published: tuple[Publication, ...] = ()

    def publication(self, target: str) -> Publication | None:
        return next((p for p in self.published if p.target == target), None)

    def with_staged(self, path: str) -> VolumeRecord:
        return self if path in self.staged else replace(self, staged=(*self.staged, path))

    def without_staged(self, path: str) -> VolumeRecord:
        return replace(self, staged=tuple(p for p in self.staged if p != path))

    def with_publication(self, pub: Publication) -> VolumeRecord:
        return replace(self, published=(*(p for p in self.published if p.target != pub.target), pub))

    def without_publication(self, target: str) -> VolumeRecord:
        return replace(self, published=tuple(p for p in self.published if p.target != target))

    @property
    def in_use(self) -> bool:
        return bool(self.staged or self.published)

    def to_json(self) -> dict[str, Any]:
        return {
            "volumeId": self.volume_id,
            "name": self.name,
            "capacityBytes": self.capacity_bytes,
            "enforced": self.enforced,
            "fsBytes": self.fs_bytes,
            "parameters": dict(self.parameters),
            "staged": list(self.staged),
            "published": [
                {"target": p.target, "staging": p.staging, "readonly": p.readonly} for p in self.published
            ],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VolumeRecord:
        return cls(
            volume_id=str(doc["volumeId"]),
            name=str(doc["name"]),
            capacity_bytes=int(doc["capacityBytes"]),
            enforced=bool(doc["enforced"]),
            fs_bytes=int(doc.get("fsBytes", 0)),
            parameters={str(k): str(v) for k, v in doc.get("parameters", {}).items()},
            staged=tuple(str(p) for p in doc.get("staged", ())),
            published=tuple(
                Publication(str(p["target"]), str(p["staging"]), bool(p["readonly"]))
                for p in doc.get("published", ())
            ),
        )


class RecordStore:
    """The records directory. Not safe for concurrent writers of one volume: the plugin holds its
    lock around every change."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, volume_id: str) -> Path:
        return self.directory / f"{volume_id}.json"

    def load_all(self) -> dict[str, VolumeRecord]:
        """Every readable record by volume id. A record that cannot be parsed is logged and left in
        place (it names a volume whose data may still be there) rather than silently dropped."""
        private_dir(self.directory)
        records: dict[str, VolumeRecord] = {}
        for path in sorted(self.directory.glob("*.json")):
            try:
                rec = VolumeRecord.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.error("hostpath: cannot read volume record %s (%s); fix or remove it by hand", path, err)
                continue
            records[rec.volume_id] = rec
        return records

    def save(self, rec: VolumeRecord) -> None:
        write_private(self._path(rec.volume_id), json.dumps(rec.to_json(), indent=1, sort_keys=True) + "\n")

    def delete(self, volume_id: str) -> None:
        self._path(volume_id).unlink(missing_ok=True)
