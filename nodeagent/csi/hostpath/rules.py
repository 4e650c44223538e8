"""The hostpath driver's decisions that need no filesystem: ids, sizes, topology, capabilities, tokens.

Everything here is a pure function of its arguments, so the CSI rules the driver follows (which
capacity a range gives, whether a topology requirement admits this node, which access modes a
node-local volume can honour, what a ListVolumes token means) are tested as tables without mounts.
Failures are ``CSIError`` with the status code the CSI spec gives for the case.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import grpc

from nodeagent.csi.errors import CSIError

DRIVER_NAME = "hostpath.csi.raykube.io"
TOPOLOGY_NODE_KEY = "topology.hostpath.csi.raykube.io/node"
# Copied from the node's labels into the topology when present, so zone-aware scheduling works.
TOPOLOGY_LABEL_KEYS = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region")
# The volume context key that tells the CO (and a reader of the PV) whether the size is a limit.
CONTEXT_CAPACITY_ENFORCED = "capacity_enforced"

MIB = 1 << 20
GIB = 1 << 30
DEFAULT_CAPACITY = GIB
# ext4 with a journal needs a few MiB of its own; smaller requests are rounded up to this.
MIN_IMAGE_BYTES = 16 * MIB
BLOCK = 4096

# CSI VolumeCapability.AccessMode.Mode values (csi.proto): a node-local volume serves one node only.
SINGLE_NODE_WRITER = 1
SINGLE_NODE_READER_ONLY = 2
MULTI_NODE_READER_ONLY = 3
SINGLE_NODE_SINGLE_WRITER = 6
SINGLE_NODE_MULTI_WRITER = 7
SUPPORTED_MODES = frozenset(
    {SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER}
)
READONLY_MODES = frozenset({SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY})

_VOLUME_ID = re.compile(r"^hp-[0-9a-f]{24}$")


def volume_id_for(node_name: str, name: str) -> str:
    """The id of the volume called ``name`` on ``node_name``: derived, not random, so a CreateVolume
    retried after a crash between creating and recording finds the same directory."""
    digest = hashlib.sha256(f"{node_name}/{name}".encode()).hexdigest()
    return f"hp-{digest[:24]}"


def valid_volume_id(volume_id: str) -> bool:
    """Whether ``volume_id`` has this driver's shape (it is also a path component, so this guards
    against ``..`` and slashes in ids a CO passes back)."""
    return bool(_VOLUME_ID.match(volume_id))


def choose_capacity(required: int, limit: int, *, default: int, minimum: int) -> int:
    """The size in bytes of a new volume for a CSI CapacityRange (0 = unset), rounded up to whole
    4 KiB blocks and to ``minimum``.

    Raises OUT_OF_RANGE when no size fits (a limit below the minimum) and INVALID_ARGUMENT for a
    range that contradicts itself, as the spec's CreateVolume error table says.
    """
    if required < 0 or limit < 0:
        raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "capacity_range: bytes must not be negative")
    if limit and required > limit:
        raise CSIError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"capacity_range: required_bytes {required} is above limit_bytes {limit}; "
            "ask for a range that can be met",
        )
    size = required or (min(default, limit) if limit else default)
    size = max(size, minimum)
    size = -(-size // BLOCK) * BLOCK
    if limit and size > limit:
        raise CSIError(
            grpc.StatusCode.OUT_OF_RANGE,
            f"capacity_range: the smallest volume this driver makes is {size} bytes, "
            f"above limit_bytes {limit}",
        )
    return size


def capacity_fits(capacity: int, required: int, limit: int) -> bool:
    """Whether an existing volume of ``capacity`` bytes satisfies a CapacityRange (idempotent create)."""
    return capacity >= required and (not limit or capacity <= limit)


def node_segments(node_name: str, node_labels: Mapping[str, str]) -> dict[str, str]:
    """The topology segments of this node: the driver's node key, plus zone and region when labelled."""
    segments = {TOPOLOGY_NODE_KEY: node_name}
    for key in TOPOLOGY_LABEL_KEYS:
        if node_labels.get(key):
            segments[key] = node_labels[key]
    return segments


def topology_admits(topology: Mapping[str, str], segments: Mapping[str, str]) -> bool:
    """Whether a CSI Topology (segment map) includes this node: every key it names must match.

    A key this node does not have excludes it (a zone requirement excludes an unlabelled node).
    """
    return all(segments.get(key) == value for key, value in topology.items())


def check_accessibility(
    requisite: Sequence[Mapping[str, str]],
    preferred: Sequence[Mapping[str, str]],
    segments: Mapping[str, str],
) -> None:
    """Refuse a CreateVolume whose accessibility requirements exclude this node.

    Volumes are made on the node whose plugin is called, so only ``requisite`` can rule it out:
    ``preferred`` is an ordering the spec lets a plugin fall back from when no requisite is given.
    RESOURCE_EXHAUSTED is the spec's code for "cannot be provisioned in that topology".
    """
    if requisite:
        for pref in preferred:
            if not any(dict(pref) == dict(req) for req in requisite):
                raise CSIError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"accessibility_requirements: preferred topology {dict(pref)} "
                    "is not in the requisite list",
                )
        if not any(topology_admits(req, segments) for req in requisite):
            raise CSIError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "accessibility_requirements: this driver makes volumes only on node "
                f"{segments[TOPOLOGY_NODE_KEY]!r} "
                f"({segments}), which no requisite topology admits; call the plugin of a node that matches",
            )


def capability_problem(
    *, is_block: bool, is_mount: bool, fs_type: str, mode: int, volume_fs: str
) -> str | None:
    """Why one VolumeCapability cannot be served, or None. A hostpath volume is a mounted
    filesystem on one node: no raw block, no multi-node modes, and its filesystem is what it is
    (``volume_fs``: ext4 for a loop filesystem, the node's own for a plain directory)."""
    if is_block:
        return "block volumes are not supported (hostpath serves mounted filesystems only)"
    if not is_mount:
        return "volume capability names no access type; give mount {}"
    if fs_type and fs_type != volume_fs:
        return (
            f"fs_type {fs_type!r} is not available: this node's hostpath volumes are "
            f"{volume_fs or 'of an unknown type'}; leave fs_type empty"
        )
    if mode not in SUPPORTED_MODES:
        return (
            f"access mode {mode} is not supported: hostpath volumes live on one node, "
            "so only SINGLE_NODE_* modes (ReadWriteOnce, ReadWriteOncePod) work"
        )
    return None


def page(ids: Sequence[str], starting_token: str, max_entries: int) -> tuple[list[str], str]:
    """One ListVolumes page of the sorted ``ids`` and the next token ("" at the end).

    The token is the id the next page starts at, so deleting volumes between pages neither repeats
    nor skips the ones that remain. A token that is not one of ours is ABORTED, as the spec says.
    """
    if max_entries < 0:
        raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "max_entries must not be negative")
    if starting_token and not valid_volume_id(starting_token):
        raise CSIError(
            grpc.StatusCode.ABORTED,
            f"starting_token {starting_token!r} was not issued by this driver; list again from the start",
        )
    ordered = sorted(ids)
    rest = [i for i in ordered if i >= starting_token] if starting_token else ordered
    if max_entries and len(rest) > max_entries:
        return rest[:max_entries], rest[max_entries]
    return rest, ""
