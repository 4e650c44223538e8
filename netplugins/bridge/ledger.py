"""The plugin's record of its attachments, on disk under ``<root_dir>/attachments``.

One JSON file per attachment (container id, ifname) with the netns path, the pod, the runtime
configuration (port mappings) and ADD's result. An entry is written *before* the reference plugins
run (result ``None``: an ADD in progress or interrupted) and removed only after a successful DEL, so
every attachment that may hold an address, a veth or a port rule of ours is in the ledger: DEL works
without a prevResult and GC knows what exists, also after a crash.

Invariants: writes are atomic (temporary file + rename), so an entry is either the old or the new
one; ``get`` of an unreadable entry returns it without netns or result (DEL still runs by id).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cluster.machinery.files import write_private
from netplugins.cni.types import Attachment, Result


@dataclass(frozen=True, slots=True)
class Entry:
    container_id: str
    ifname: str
    netns: str = ""
    pod: str = ""
    runtime_config: dict[str, Any] = field(default_factory=dict)
    result: Result | None = None

    @property
    def attachment(self) -> Attachment:
        return Attachment(self.container_id, self.ifname)

    def to_json(self) -> dict[str, Any]:
        return {
            "containerID": self.container_id,
            "ifname": self.ifname,
            "netns": self.netns,
            "pod": self.pod,
            "runtimeConfig": self.runtime_config,
            "result": None if self.result is None else self.result.to_json(),
        }

    @staticmethod
    def from_json(o: dict[str, Any]) -> Entry:
        result = o.get("result")
        return Entry(
            container_id=str(o["containerID"]),
            ifname=str(o.get("ifname") or "eth0"),
            netns=str(o.get("netns") or ""),
            pod=str(o.get("pod") or ""),
            runtime_config=dict(o.get("runtimeConfig") or {}),
            result=Result.from_json(result) if isinstance(result, dict) else None,
        )


def _file_name(a: Attachment) -> str:
    # Container ids are the runtime's; hash them so any id makes a safe, fixed-length file name.
    return hashlib.sha256(f"{a.container_id}\0{a.ifname}".encode()).hexdigest()[:32] + ".json"


class Ledger:
    def __init__(self, root_dir: str) -> None:
        self.dir = os.path.join(root_dir, "attachments")

    def put(self, entry: Entry) -> None:
        """Write the entry durably (fsynced, atomic) and privately (0600 in a 0700 directory)."""
        write_private(os.path.join(self.dir, _file_name(entry.attachment)), json.dumps(entry.to_json()))

    def get(self, a: Attachment) -> Entry | None:
        try:
            with open(os.path.join(self.dir, _file_name(a))) as f:
                return Entry.from_json(json.load(f))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError):
            return Entry(a.container_id, a.ifname)

    def remove(self, a: Attachment) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.dir, _file_name(a)))

    def entries(self) -> list[Entry]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.dir, name)) as f:
                    out.append(Entry.from_json(json.load(f)))
            except (OSError, ValueError, KeyError):
                continue
        return out
