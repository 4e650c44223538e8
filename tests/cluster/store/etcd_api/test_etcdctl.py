"""The real etcdctl 3.4 (ETCDCTL_API=3) against in-process replicas served on loopback.

With three replicas etcdctl talks to a follower, so its writes are forwarded to the leader and its
reads wait for the leader's read index. Outputs are etcdctl's own renderings of our answers.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require
from tests.cluster.store.etcd_api.served import ETCDCTL, Served


@pytest.fixture(params=[1, 3], ids=["1-replica", "3-replicas"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    require("etcd", None if Path(ETCDCTL).exists() else f"etcdctl is not installed at {ETCDCTL}")
    s = Served(tmp_path, request.param)
    try:
        yield s
    finally:
        s.close()


def ok(served: Served, rid: int, *args: str, stdin: str | None = None) -> str:
    out = served.etcdctl(*args, rid=rid, stdin=stdin)
    assert out.returncode == 0, f"etcdctl {' '.join(args)}: {out.stderr}"
    return out.stdout


def fails(served: Served, rid: int, *args: str) -> str:
    out = served.etcdctl(*args, rid=rid)
    assert out.returncode != 0, f"etcdctl {' '.join(args)} succeeded: {out.stdout}"
    return out.stderr.strip().splitlines()[-1]


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_etcdctl_kv_txn_and_compaction(served: Served) -> None:
    rid = served.follower_id() if len(served.ports) > 1 else served.leader_id()
    assert ok(served, rid, "put", "/a/1", "x") == "OK\n"  # revision 2
    ok(served, rid, "put", "/a/2", "y")  # 3
    ok(served, rid, "put", "/a/1", "z")  # 4
    ok(served, rid, "put", "/b", "other")  # 5
    assert ok(served, rid, "get", "/a", "--prefix") == "/a/1\nz\n/a/2\ny\n"
    assert ok(served, rid, "get", "/a/1", "--rev", "2") == "/a/1\nx\n"
    assert ok(served, rid, "get", "/a", "--prefix", "--keys-only", "--sort-by=MODIFY", "--order=DESCEND") == (
        "/a/1\n\n/a/2\n\n"
    )
    assert ok(served, rid, "get", "/a", "--prefix", "--limit=1") == "/a/1\nz\n"
    assert '"Count" : 2' in ok(served, rid, "get", "/a", "--prefix", "--limit=1", "-w", "fields")

    doc = served.etcdctl_json("get", "/a", "--prefix", rid=rid)
    assert doc["header"]["member_id"] == rid and doc["header"]["revision"] == 5 and doc["count"] == 2
    assert doc["header"]["raft_term"] >= 1 and doc["header"]["cluster_id"] > 0
    assert doc["kvs"][0] == {
        "key": b64("/a/1"),
        "create_revision": 2,
        "mod_revision": 4,
        "version": 2,
        "value": b64("z"),
    }

    # txn from stdin: compares, blank line, success ops, blank line, failure ops, blank line.
    swapped = ok(served, rid, "txn", stdin='mod("/a/1") = "4"\n\nput /a/1 swapped\n\nget /a/2\n\n')
    assert swapped == "SUCCESS\n\nOK\n"
    lost = ok(served, rid, "txn", stdin='value("/a/1") = "z"\n\nput /a/1 never\n\nget /a/2\n\n')
    assert lost == "FAILURE\n\n/a/2\ny\n"
    as_json = served.etcdctl("-w", "json", "txn", rid=rid, stdin='version("/a/2") > "0"\n\ndel /a/2\n\n\n')
    assert as_json.returncode == 0, as_json.stderr
    assert (
        '"succeeded":true' in as_json.stdout
        and '"ResponseDeleteRange":{"header":{"revision":7},"deleted":1}' in (as_json.stdout)
    )

    assert ok(served, rid, "del", "/a", "--prefix", "--prev-kv") == "1\n/a/1\nswapped\n"
    assert ok(served, rid, "del", "/nothing") == "0\n"
    assert ok(served, rid, "compaction", "4") == "compacted revision 4\n"
    assert (
        fails(served, rid, "get", "/a/1", "--rev", "3")
        == "Error: etcdserver: mvcc: required revision has been compacted"
    )
    assert (
        fails(served, rid, "compaction", "4")
        == "Error: etcdserver: mvcc: required revision has been compacted"
    )
    assert (
        fails(served, rid, "get", "/b", "--rev", "99")
        == "Error: etcdserver: mvcc: required revision is a future revision"
    )
    assert fails(served, rid, "put", "", "x") == "Error: etcdserver: key is not provided"
    assert ok(served, rid, "get", "/b") == "/b\nother\n"


def test_etcdctl_leases(served: Served) -> None:
    rid = served.follower_id() if len(served.ports) > 1 else served.leader_id()
    assert ok(served, rid, "lease", "grant", "60") == "lease 0000000000000001 granted with TTL(60s)\n"
    ok(served, rid, "put", "--lease=1", "/leased", "v")
    ttl = ok(served, rid, "lease", "timetolive", "1", "--keys")
    assert ttl.startswith("lease 0000000000000001 granted with TTL(60s), remaining(")
    assert ttl.endswith("s), attached keys([/leased])\n")
    assert ok(served, rid, "lease", "list") == "found 1 leases\n0000000000000001\n"
    kept = ok(served, rid, "lease", "keep-alive", "--once", "1")
    assert kept == "lease 0000000000000001 keepalived with TTL(60)\n"
    assert ok(served, rid, "lease", "revoke", "1") == "lease 0000000000000001 revoked\n"
    assert ok(served, rid, "get", "/leased") == ""
    assert fails(served, rid, "lease", "revoke", "1") == (
        "Error: failed to revoke lease (etcdserver: requested lease not found)"
    )
    assert ok(served, rid, "lease", "timetolive", "1") == "lease 0000000000000001 already expired\n"
    assert (
        fails(served, rid, "lease", "keep-alive", "--once", "1")
        == "Error: etcdserver: requested lease not found"
    )
    assert fails(served, rid, "put", "--lease=5", "/k", "v") == "Error: etcdserver: requested lease not found"
    assert ok(served, rid, "lease", "list") == "found 0 leases\n"


def test_etcdctl_endpoint_and_member_commands(served: Served) -> None:
    leader = served.leader_id()
    for rid in served.ports:
        [status] = served.etcdctl_json("endpoint", "status", rid=rid)
        st = status["Status"]
        assert st["header"]["member_id"] == rid and st["leader"] == leader and st["version"] == "3.4.0"
        assert st["raftIndex"] >= st["raftAppliedIndex"] > 0 and st["dbSize"] > 0
        [health] = served.etcdctl_json("endpoint", "health", rid=rid)
        assert health["health"] is True
        [hashkv] = served.etcdctl_json("endpoint", "hashkv", rid=rid)
        assert "compact_revision" not in hashkv["HashKV"]  # 0: left out of etcdctl's JSON
    listed = served.etcdctl_json("member", "list")
    assert [(m["ID"], m["name"]) for m in listed["members"]] == [
        (i, f"store-{i}") for i in sorted(served.ports)
    ]
    assert listed["members"][0]["clientURLs"] == [f"http://127.0.0.1:{served.ports[1]}"]
    table = ok(served, leader, "member", "list")
    assert (
        f"1, started, store-1, http://127.0.0.1:{served.ports[1] + 10000}, http://127.0.0.1:{served.ports[1]}"
        in (table)
    )
    assert (
        ok(served, leader, "defrag")
        == f"Finished defragmenting etcd member[127.0.0.1:{served.ports[leader]}]\n"
    )
    assert ok(served, leader, "alarm", "list") == ""
