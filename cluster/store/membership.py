"""May a replica whose data directory holds no log start, and how: the empty-start rule and its markers.

A Raft member's promises live in its log and hard state: the term it voted in, for whom, and the
entries it acknowledged. A member that lost them and comes back as a fresh voter can grant a second
vote in a term it already voted in, or elect a candidate that lacks entries this member had
acknowledged, so a write acknowledged by a quorum can be lost. etcd therefore refuses to start a
member with an empty data directory in an existing cluster (``--initial-cluster-state=existing``):
the operator removes it and adds a new member, which joins with no promises made.

Same rule here. An empty data directory may only

* ``BOOTSTRAP``: when the creator says this is the first start of a new cluster (no cluster marker
  in the cluster's store directory, and not a Ray restart of the actor), or
* ``JOIN``: as a new member id that a membership change adds (it has never voted);

otherwise (Ray restarted the actor, possibly on a node without its disk; or the replica's own
marker says it had a log that is now gone) it ``REFUSE``s: it neither votes nor campaigns nor
serves, and its status says it awaits replacement through a membership change.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any

from cluster.machinery.files import private_dir

MEMBER_MARKER = "member.json"  # in each replica's data directory, once it holds a log
CLUSTER_MARKER = "cluster.json"  # in the cluster's store directory, once the cluster was created


class EmptyStart(enum.Enum):
    """What a replica does when its data directory holds no log."""

    BOOTSTRAP = "bootstrap"
    JOIN = "join"
    REFUSE = "refuse"


def empty_start_rule(*, initial: bool, join: bool, reconstructed: bool) -> EmptyStart:
    """The rule for an actor's constructor arguments. A Ray restart reuses the arguments of the
    first start, so ``reconstructed`` overrides them: a restarted replica found its disk empty."""
    if reconstructed:
        return EmptyStart.REFUSE
    if join:
        return EmptyStart.JOIN
    return EmptyStart.BOOTSTRAP if initial else EmptyStart.REFUSE


def write_marker(directory: Path, name: str, payload: dict[str, Any]) -> None:
    """Write ``directory/name`` atomically and durably, mode 0600 (tmp file, fsync, rename, dir fsync)."""
    private_dir(directory)
    path = directory / name
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(payload, sort_keys=True).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_marker(directory: Path, name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / name).read_text())
    except FileNotFoundError:
        return None
    return data


def cluster_created(store_dir: Path) -> bool:
    """Has a cluster already been created with this store directory? (``raykube up`` asks before
    creating replicas: on an existing cluster an empty replica directory must not bootstrap.)"""
    if read_marker(store_dir, CLUSTER_MARKER) is not None:
        return True
    # Directories written before the marker existed: any replica's log on this disk says so too.
    return any(any(wal.iterdir()) for wal in store_dir.glob("replica-*/wal") if wal.is_dir())


def record_cluster(store_dir: Path, voters: list[int]) -> None:
    """Mark the store directory as holding a created cluster (after its replicas started, so their
    logs already say so: the marker itself is what is asked about, and it also records the voters)."""
    if read_marker(store_dir, CLUSTER_MARKER) is None:
        write_marker(store_dir, CLUSTER_MARKER, {"voters": voters})


def recorded_members(store_dir: Path) -> tuple[list[int], int] | None:
    """The voters the cluster marker records and the highest replica id ever used (ids are never
    reused), or None before the cluster was created. ``raykube up`` recreates exactly these ids."""
    marker = read_marker(store_dir, CLUSTER_MARKER)
    if marker is None or not marker.get("voters"):
        return None
    voters = sorted(int(v) for v in marker["voters"])
    return voters, max(int(marker.get("max_id", 0)), *voters)


def record_members(store_dir: Path, voters: list[int], max_id: int) -> None:
    """Rewrite the cluster marker after a membership change, so that the next ``raykube up`` finds
    (or recreates) the current members and not removed ones. Only where the cluster was created: a
    node that never held the marker must not start to look like one that did."""
    if cluster_created(store_dir):
        write_marker(store_dir, CLUSTER_MARKER, {"voters": sorted(voters), "max_id": max(max_id, *voters)})


HOMES_MARKER = "homes.json"  # in the cluster's store directory: the host each replica's disk is on


def record_homes(store_dir: Path, homes: dict[int, tuple[str, str]]) -> None:
    """Remember the host (IP, host name) each replica ran on: its data directory is on that host's
    disk, so after a restart of the whole Ray cluster (new Ray node ids) it must go back there."""
    if homes and homes != recorded_homes(store_dir):
        payload = {str(rid): {"ip": ip, "hostname": host} for rid, (ip, host) in sorted(homes.items())}
        write_marker(store_dir, HOMES_MARKER, payload)


def recorded_homes(store_dir: Path) -> dict[int, tuple[str, str]]:
    marker = read_marker(store_dir, HOMES_MARKER) or {}
    return {int(rid): (str(h.get("ip", "")), str(h.get("hostname", ""))) for rid, h in marker.items()}


def home_placement(
    voters: list[int], homes: dict[int, tuple[str, str]], nodes: list[tuple[str, str, str]]
) -> dict[int, str] | None:
    """Replica id -> the Ray node id of its home, for every voter, or None when that cannot be told
    for all of them: a voter without a recorded home, a home no alive node or several alive nodes
    answer to (``ray.cluster_utils`` clusters: every node has the same IP and host name), or two
    voters with one home. ``nodes`` are the alive nodes as (node id, IP, host name). With None the
    caller spreads the replicas with a placement group; a replica that lands away from its disk
    then refuses with an empty log and the store keeper replaces it."""
    by_home: dict[tuple[str, str], list[str]] = {}
    for node_id, ip, host in nodes:
        by_home.setdefault((ip, host), []).append(node_id)
    placed: dict[int, str] = {}
    for rid in voters:
        candidates = by_home.get(homes.get(rid, ("", "")), [])
        if len(candidates) != 1 or candidates[0] in placed.values():
            return None
        placed[rid] = candidates[0]
    return placed
