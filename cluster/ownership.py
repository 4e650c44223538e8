"""Which data directory a Ray namespace's raykube cluster belongs to.

A raykube cluster is its data directory (store WAL, CA, kubeconfig, static pod folder) plus the
named actors in one Ray namespace. Actors are found by name, so ``raykube up --data-dir B`` in a
namespace where the cluster of data directory A runs would find A's actors and mix the two: B's
kubeconfig with A's API server, B's static pod folder with A's agent, and ``down --data-dir B``
stopping A. To prevent that, ``up`` records its data directory (and host) for the namespace in
Ray's key-value store, which lives exactly as long as the Ray cluster and its actors; ``up``,
``down`` and the other commands refuse a namespace recorded for another data directory, naming it.

The record is claimed atomically (put-if-absent), so two concurrent ``up`` calls with different data
directories cannot both win. A namespace with no record (a cluster started by an older raykube) is
claimed by the first ``up``. ``down`` deletes the record after stopping the actors.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from ray.experimental import internal_kv

from nodeagent.volumes.mounts import unmount_under

KV_NAMESPACE = "raykube"


@dataclass(frozen=True, slots=True)
class Owner:
    """The data directory (absolute, symlinks resolved) on the host that started a namespace's cluster."""

    data_dir: str
    host: str

    @staticmethod
    def of(data_dir: Path, host: str | None = None) -> Owner:
        return Owner(os.path.realpath(data_dir), host or socket.gethostname())

    def describe(self) -> str:
        return self.data_dir if self.host == socket.gethostname() else f"{self.data_dir} on host {self.host}"

    def encode(self) -> bytes:
        return json.dumps({"data_dir": self.data_dir, "host": self.host}, sort_keys=True).encode()

    @staticmethod
    def decode(raw: bytes) -> Owner:
        fields = json.loads(raw)
        return Owner(str(fields["data_dir"]), str(fields["host"]))


class NamespaceTaken(RuntimeError):
    """The Ray namespace runs the cluster of another data directory."""

    def __init__(self, namespace: str, owner: Owner, wanted: Owner) -> None:
        self.namespace, self.owner, self.wanted = namespace, owner, wanted
        super().__init__(
            f"the Ray namespace {namespace!r} runs the raykube cluster of {owner.describe()}, "
            f"not of {wanted.data_dir}"
        )


def _key(namespace: str) -> bytes:
    return f"owner/{namespace}".encode()


def owner(namespace: str) -> Owner | None:
    """The recorded owner of ``namespace``'s cluster, or None. Needs a connected Ray."""
    raw = internal_kv._internal_kv_get(_key(namespace), namespace=KV_NAMESPACE)
    return Owner.decode(raw) if raw else None


def check(namespace: str, data_dir: Path) -> Owner | None:
    """Raise :class:`NamespaceTaken` if ``namespace`` belongs to another data directory; return the
    recorded owner (None when there is none)."""
    found, wanted = owner(namespace), Owner.of(data_dir)
    if found is not None and found != wanted:
        raise NamespaceTaken(namespace, found, wanted)
    return found


def claim(namespace: str, data_dir: Path) -> None:
    """Record ``data_dir`` as the owner of ``namespace`` unless another owner is recorded (then raise
    :class:`NamespaceTaken`). Idempotent for the same data directory."""
    wanted = Owner.of(data_dir)
    # Put-if-absent: of two racing claims exactly one is stored; the loser sees the winner below.
    internal_kv._internal_kv_put(_key(namespace), wanted.encode(), overwrite=False, namespace=KV_NAMESPACE)
    check(namespace, data_dir)


def release(namespace: str, data_dir: Path) -> None:
    """Forget the owner of ``namespace`` if it is ``data_dir`` (after ``down`` stopped its actors)."""
    if owner(namespace) == Owner.of(data_dir):
        internal_kv._internal_kv_del(_key(namespace), namespace=KV_NAMESPACE)


def purge(data_dir: Path) -> str | None:
    """Delete the data directory (``raykube down --purge``). The pods of a node whose agent died (its
    Ray node left) still have their volumes mounted below it (tmpfs for tokens and Secrets): those
    come off first, else the mounts would outlive the tree. Returns what could not be unmounted."""
    problem = None
    try:
        unmount_under(str(data_dir))
    except OSError as err:
        problem = f"{err}: some of {data_dir} stays mounted"
    shutil.rmtree(data_dir, ignore_errors=True)
    return problem
