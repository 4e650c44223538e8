"""The hostpath driver's pure parts: sizes, topology, capabilities, list tokens, ids, records and
mountinfo parsing. No mounts, no sockets."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from nodeagent.csi.errors import CSIError
from nodeagent.csi.hostpath import rules
from nodeagent.csi.hostpath.records import Publication, RecordStore, VolumeRecord

MIB = rules.MIB
GIB = rules.GIB


@pytest.mark.parametrize(
    ("required", "limit", "minimum", "want"),
    [
        pytest.param(0, 0, 16 * MIB, GIB, id="unset-is-default"),
        pytest.param(0, 100 * MIB, 16 * MIB, 100 * MIB, id="default-capped-by-limit"),
        pytest.param(MIB, 0, 16 * MIB, 16 * MIB, id="rounded-up-to-minimum"),
        pytest.param(20 * MIB + 1, 0, 16 * MIB, 20 * MIB + 4096, id="whole-blocks"),
        pytest.param(20 * MIB, 20 * MIB, 16 * MIB, 20 * MIB, id="exact-range"),
        pytest.param(5000, 0, 4096, 8192, id="plain-directory-minimum"),
    ],
)
def test_choose_capacity(required: int, limit: int, minimum: int, want: int) -> None:
    assert rules.choose_capacity(required, limit, default=GIB, minimum=minimum) == want


@pytest.mark.parametrize(
    ("required", "limit", "code"),
    [
        pytest.param(2 * MIB, MIB, grpc.StatusCode.INVALID_ARGUMENT, id="limit-below-required"),
        pytest.param(0, MIB, grpc.StatusCode.OUT_OF_RANGE, id="limit-below-minimum"),
        pytest.param(-1, 0, grpc.StatusCode.INVALID_ARGUMENT, id="negative"),
    ],
)
def test_choose_capacity_refuses(required: int, limit: int, code: grpc.StatusCode) -> None:
    with pytest.raises(CSIError) as err:
        rules.choose_capacity(required, limit, default=GIB, minimum=16 * MIB)
    assert err.value.code == code


@pytest.mark.parametrize(
    ("capacity", "required", "limit", "fits"),
    [(GIB, GIB, 0, True), (GIB, 0, 0, True), (GIB, 2 * GIB, 0, False), (2 * GIB, GIB, GIB, False)],
)
def test_capacity_fits(capacity: int, required: int, limit: int, fits: bool) -> None:
    assert rules.capacity_fits(capacity, required, limit) is fits


HERE = rules.node_segments("n1", {"topology.kubernetes.io/zone": "z1", "unrelated": "x"})


def test_node_segments_copy_zone_and_region_only() -> None:
    assert HERE == {rules.TOPOLOGY_NODE_KEY: "n1", "topology.kubernetes.io/zone": "z1"}
    assert rules.node_segments("n2", {}) == {rules.TOPOLOGY_NODE_KEY: "n2"}


@pytest.mark.parametrize(
    ("requisite", "preferred", "code"),
    [
        pytest.param([], [], None, id="none"),
        pytest.param([{rules.TOPOLOGY_NODE_KEY: "n1"}], [], None, id="this-node"),
        pytest.param([{"topology.kubernetes.io/zone": "z1"}], [], None, id="this-zone"),
        pytest.param(
            [{rules.TOPOLOGY_NODE_KEY: "n2"}, {"topology.kubernetes.io/zone": "z1"}], [], None, id="any-one"
        ),
        pytest.param([], [{rules.TOPOLOGY_NODE_KEY: "n2"}], None, id="preferred-only-is-a-preference"),
        pytest.param(
            [{rules.TOPOLOGY_NODE_KEY: "n2"}], [], grpc.StatusCode.RESOURCE_EXHAUSTED, id="other-node"
        ),
        pytest.param(
            [{"topology.kubernetes.io/region": "r1"}],
            [],
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            id="unlabelled-key",
        ),
        pytest.param(
            [{rules.TOPOLOGY_NODE_KEY: "n1"}],
            [{rules.TOPOLOGY_NODE_KEY: "n3"}],
            grpc.StatusCode.INVALID_ARGUMENT,
            id="preferred-outside-requisite",
        ),
    ],
)
def test_check_accessibility(
    requisite: list[dict[str, str]], preferred: list[dict[str, str]], code: grpc.StatusCode | None
) -> None:
    if code is None:
        rules.check_accessibility(requisite, preferred, HERE)
        return
    with pytest.raises(CSIError) as err:
        rules.check_accessibility(requisite, preferred, HERE)
    assert err.value.code == code


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        pytest.param({"mode": rules.SINGLE_NODE_WRITER}, None, id="rwo"),
        pytest.param({"mode": rules.SINGLE_NODE_SINGLE_WRITER}, None, id="rwop"),
        pytest.param({"mode": rules.SINGLE_NODE_WRITER, "fs_type": "ext4"}, None, id="ext4-on-loop"),
        pytest.param({"mode": 5}, "only SINGLE_NODE_", id="rwx"),
        pytest.param({"mode": rules.MULTI_NODE_READER_ONLY}, "only SINGLE_NODE_", id="rox"),
        pytest.param({"mode": 1, "is_block": True}, "block volumes", id="block"),
        pytest.param({"mode": 1, "is_mount": False}, "no access type", id="no-access-type"),
        pytest.param({"mode": 1, "fs_type": "xfs"}, "leave fs_type empty", id="xfs"),
        pytest.param(
            {"mode": 1, "fs_type": "ext4", "volume_fs": "xfs"}, "volumes are xfs", id="ext4-on-xfs-host"
        ),
        pytest.param({"mode": 1, "fs_type": "xfs", "volume_fs": "xfs"}, None, id="plain-on-xfs-host"),
    ],
)
def test_capability_problem(kwargs: dict[str, object], problem: str | None) -> None:
    args: dict[str, object] = {
        "is_block": False,
        "is_mount": True,
        "fs_type": "",
        "volume_fs": "ext4",
        **kwargs,
    }
    got = rules.capability_problem(**args)  # type: ignore[arg-type]
    assert (got is None) if problem is None else (got is not None and problem in got), got


IDS = [rules.volume_id_for("n1", f"pvc-{i}") for i in range(5)]


def test_pages_cover_everything_once_even_when_volumes_go() -> None:
    first, token = rules.page(IDS, "", 2)
    assert first == sorted(IDS)[:2] and token == sorted(IDS)[2]
    remaining = [i for i in IDS if i != token]  # the volume the token names is deleted meanwhile
    second, token2 = rules.page(remaining, token, 2)
    assert second == sorted(IDS)[3:5] and token2 == ""
    assert rules.page(IDS, "", 0) == (sorted(IDS), "")


@pytest.mark.parametrize(
    ("token", "max_entries", "code"),
    [("nonsense", 1, grpc.StatusCode.ABORTED), ("hp-../../etc", 1, grpc.StatusCode.ABORTED), ("", -1, None)],
)
def test_page_refuses(token: str, max_entries: int, code: grpc.StatusCode | None) -> None:
    with pytest.raises(CSIError) as err:
        rules.page(IDS, token, max_entries)
    assert err.value.code == (code or grpc.StatusCode.INVALID_ARGUMENT)


def test_volume_ids_are_stable_per_node_and_name() -> None:
    a = rules.volume_id_for("n1", "pvc-a")
    assert a == rules.volume_id_for("n1", "pvc-a") and rules.valid_volume_id(a)
    assert a != rules.volume_id_for("n2", "pvc-a") != rules.volume_id_for("n1", "pvc-b")
    assert not rules.valid_volume_id("../x") and not rules.valid_volume_id("")


def test_records_round_trip_and_a_corrupt_one_is_left_alone(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records")
    rec = VolumeRecord("hp-" + "a" * 24, "pvc-a", GIB, True, GIB, {"k": "v"})
    rec = rec.with_staged("/s").with_publication(Publication("/t", "/s", True))
    store.save(rec)
    (tmp_path / "records" / "hp-broken.json").write_text("{not json")
    assert store.load_all() == {rec.volume_id: rec}
    assert (tmp_path / "records" / "hp-broken.json").exists()
    doc = json.loads((tmp_path / "records" / f"{rec.volume_id}.json").read_text())
    assert doc["published"] == [{"target": "/t", "staging": "/s", "readonly": True}]
    assert (tmp_path / "records" / f"{rec.volume_id}.json").stat().st_mode & 0o777 == 0o600
    rec = rec.without_publication("/t").without_staged("/s")
    assert not rec.in_use
    store.delete(rec.volume_id)
    store.delete(rec.volume_id)
    assert store.load_all() == {}


def test_publication_replaces_one_at_the_same_target() -> None:
    rec = VolumeRecord("hp-" + "b" * 24, "pvc-b", GIB, False)
    rec = rec.with_publication(Publication("/t", "/s", False)).with_publication(Publication("/t", "/s", True))
    assert rec.published == (Publication("/t", "/s", True),)
    assert rec.with_staged("/s").with_staged("/s").staged == ("/s",)
