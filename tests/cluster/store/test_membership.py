"""The empty-data-directory rule: who may bootstrap, who awaits replacement, and the markers."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from cluster.store.membership import (
    MEMBER_MARKER,
    EmptyStart,
    cluster_created,
    empty_start_rule,
    home_placement,
    read_marker,
    record_cluster,
    record_homes,
    recorded_homes,
)
from cluster.store.raft.types import Message
from cluster.store.replica import NotServing, Replica


class NoTransport:
    def send(self, to: int, messages: list[Message]) -> None:
        pass


@pytest.mark.parametrize(
    ("initial", "join", "reconstructed", "rule"),
    [
        pytest.param(True, False, False, EmptyStart.BOOTSTRAP, id="first-start-of-a-new-cluster"),
        pytest.param(False, False, False, EmptyStart.REFUSE, id="up-on-an-existing-cluster"),
        pytest.param(False, True, False, EmptyStart.JOIN, id="new-member-added-by-a-membership-change"),
        pytest.param(True, False, True, EmptyStart.REFUSE, id="ray-restart-reuses-first-start-arguments"),
        pytest.param(False, True, True, EmptyStart.REFUSE, id="restarted-joiner-may-have-voted"),
    ],
)
def test_empty_start_rule(initial: bool, join: bool, reconstructed: bool, rule: EmptyStart) -> None:
    assert empty_start_rule(initial=initial, join=join, reconstructed=reconstructed) == rule


def test_cluster_marker_and_logs_written_before_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert not cluster_created(store)
    (store / "replica-1" / "wal").mkdir(parents=True)
    assert not cluster_created(store), "an empty wal directory is no cluster"
    (store / "replica-1" / "wal" / "0000000000000001.wal").write_bytes(b"x")
    assert cluster_created(store), "a replica log from before the marker existed"
    other = tmp_path / "other"
    record_cluster(other, [1, 2, 3])
    assert cluster_created(other)
    assert (other / "cluster.json").stat().st_mode & 0o777 == 0o600


async def _replica(path: Path, empty: EmptyStart) -> Replica:
    return Replica(1, [1], path, NoTransport(), empty_start=empty)


@pytest.mark.parametrize(
    ("empty", "lose_log", "awaiting"),
    [
        pytest.param(EmptyStart.BOOTSTRAP, False, False, id="bootstrap-writes-the-member-marker"),
        pytest.param(EmptyStart.REFUSE, False, True, id="refuse-awaits-replacement"),
        pytest.param(EmptyStart.BOOTSTRAP, True, True, id="marker-outlived-its-log"),
    ],
)
def test_replica_start_on_an_empty_log(
    tmp_path: Path, empty: EmptyStart, lose_log: bool, awaiting: bool
) -> None:
    async def scenario() -> None:
        path = tmp_path / "r1"
        if lose_log:
            first = await _replica(path, EmptyStart.BOOTSTRAP)
            await first.close()
            shutil.rmtree(path / "wal")  # the log is gone, the member marker is not
        r = await _replica(path, empty)
        try:
            assert (r.awaiting is not None) == awaiting, r.status()
            if awaiting:
                assert r.status()["state"].startswith("awaiting replacement")
                assert r.status()["term"] == 0
                with pytest.raises(NotServing):
                    await r.propose([])
            else:
                assert read_marker(path, MEMBER_MARKER) == {"id": 1, "voters": [1]}
                assert r.status()["state"] == "ok"
        finally:
            await r.close()

    asyncio.run(scenario())


NODES = [("n1", "10.0.0.1", "a"), ("n2", "10.0.0.2", "b"), ("n3", "10.0.0.3", "c")]
HOMES = {1: ("10.0.0.2", "b"), 2: ("10.0.0.3", "c"), 3: ("10.0.0.1", "a")}
SAME_HOST = [(f"n{i}", "127.0.0.1", "vm") for i in (1, 2, 3)]


def test_replicas_go_back_to_the_hosts_of_their_disks_after_a_restart() -> None:
    assert home_placement([1, 2, 3], HOMES, NODES) == {1: "n2", 2: "n3", 3: "n1"}


@pytest.mark.parametrize(
    ("voters", "homes", "nodes", "why"),
    [
        ([1, 2, 3, 4], HOMES, NODES, "a voter without a home"),
        ([1, 2, 3], HOMES, NODES[:2], "a home no alive node answers to"),
        ([1, 2, 3], {**HOMES, 3: ("10.0.0.3", "c")}, NODES, "two voters with one home"),
        ([1, 2, 3], {i: ("127.0.0.1", "vm") for i in (1, 2, 3)}, SAME_HOST, "one host (ray.cluster_utils)"),
    ],
)  # fmt: skip
def test_no_home_placement_unless_every_voter_has_exactly_one_home(
    voters: list[int], homes: dict[int, tuple[str, str]], nodes: list[tuple[str, str, str]], why: str
) -> None:
    assert home_placement(voters, homes, nodes) is None, why


def test_homes_are_recorded_privately_and_read_back(tmp_path: Path) -> None:
    assert recorded_homes(tmp_path) == {}
    record_homes(tmp_path, HOMES)
    assert recorded_homes(tmp_path) == HOMES
    assert (tmp_path / "homes.json").stat().st_mode & 0o777 == 0o600


def test_the_cluster_marker_is_written_after_the_replicas_logs_exist(tmp_path: Path) -> None:
    """``up`` records the cluster once its replicas started, when their logs already exist; the
    marker (which also holds the voters a restart recreates) must be written all the same."""
    wal = tmp_path / "replica-1" / "wal"
    wal.mkdir(parents=True)
    (wal / "0000.wal").write_bytes(b"x")
    assert cluster_created(tmp_path) and read_marker(tmp_path, "cluster.json") is None
    record_cluster(tmp_path, [1, 2, 3])
    assert read_marker(tmp_path, "cluster.json") == {"voters": [1, 2, 3]}
