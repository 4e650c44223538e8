"""etcd's v3 API from a user's seat: the real ``etcdctl`` 3.4 and a PyPI etcd client against the
store of a ``raykube up`` cluster.

One cluster for the module (``--runtime none --replicas 3 --port 0``, its own data directory and
Ray namespace): the tests use their own key prefixes, so they share it. Every etcdctl runs with
the environment of ``eval "$(raykube store env)"`` evaluated by bash, as a user would; the expected
outputs are etcdctl 3.4's against Debian's etcd 3.4 (same commands, recorded by hand), with the
revisions and lease ids of this run. Kubernetes objects made with kubectl are read back under
``/registry/``, and who may connect is checked with no certificate, a foreign CA's and a kubectl
user's.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.machinery import pki
from tests.capabilities import require
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

ETCDCTL = Path("/usr/bin/etcdctl")
RAYKUBE_SCRIPT = Path(sys.executable).with_name("raykube")  # what `pip install` puts on the PATH
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
WAIT = 60.0  # deadline of one wait for a watch line: a hang fails, nothing is timed


@dataclass
class Store:
    """The module's cluster and the environment ``raykube store env`` gave etcdctl."""

    cluster: RaykubeCluster
    etcd_env: dict[str, str]  # the ETCDCTL_* variables, as bash's eval set them
    env: dict[str, str] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        return self.etcd_env["ETCDCTL_ENDPOINTS"].split(",")

    def ctl(
        self, *args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(ETCDCTL), *args],
            capture_output=True,
            text=True,
            input=input,
            env=env if env is not None else self.env,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"etcdctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def out(self, *args: str, **kw: Any) -> str:
        return self.ctl(*args, **kw).stdout

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.out(*args, "-w", "json", **kw))

    def fails(self, *args: str, **kw: Any) -> str:
        proc = self.ctl(*args, check=False, **kw)
        assert proc.returncode != 0, f"etcdctl {' '.join(args)} unexpectedly succeeded: {proc.stdout}"
        return proc.stderr

    def revision(self) -> int:
        return int(self.json("get", "/")["header"]["revision"])

    def at(self, endpoint: str) -> dict[str, str]:
        """The environment with one endpoint only."""
        return dict(self.env, ETCDCTL_ENDPOINTS=endpoint)


def raykube(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAYKUBE, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    require("etcd", None if ETCDCTL.exists() else f"etcdctl is not installed at {ETCDCTL}")
    assert RAYKUBE_SCRIPT.exists(), f"no raykube script beside {sys.executable}: pip install -e ."
    data_dir = tmp_path_factory.mktemp("raykube-etcdctl") / "data"
    env = dict(
        os.environ,
        RAYKUBE_NAMESPACE=f"etcdctl-tests-{secrets.token_hex(4)}",
        RAYKUBE_DATA_DIR=str(data_dir),
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="200",
    )
    env = {k: v for k, v in env.items() if not k.startswith("ETCDCTL_")}
    up = raykube("up", "--runtime", "none", "--replicas", "3", "--port", "0", env=env, timeout=480)
    try:
        assert up.returncode == 0, f"raykube up exited {up.returncode}\n{up.stdout}\n{up.stderr}"
        # The user's way: eval the exports in a shell, then run etcdctl from it.
        shell = subprocess.run(
            ["bash", "-c", f'eval "$({shlex.quote(str(RAYKUBE_SCRIPT))} store env)" && env -0'],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert shell.returncode == 0, f"eval $(raykube store env) failed\n{shell.stdout}\n{shell.stderr}"
        evaluated = dict(line.split("=", 1) for line in shell.stdout.split("\0") if "=" in line)
        etcd_env = {k: v for k, v in evaluated.items() if k.startswith("ETCDCTL_")}
        cluster = RaykubeCluster(data_dir, data_dir / "kubeconfig", env)
        yield Store(cluster, etcd_env, dict(env, **etcd_env))
    finally:
        raykube("down", "--purge", env=env, timeout=180)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def test_store_env_exports_what_etcdctl_reads(store: Store) -> None:
    env = store.etcd_env
    assert set(env) == {"ETCDCTL_API", "ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"}
    assert env["ETCDCTL_API"] == "3"
    assert len(store.endpoints) == 3 and all(e.startswith("https://") for e in store.endpoints), (
        store.endpoints
    )
    for name in ("ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"):
        assert Path(env[name]).is_file() and Path(env[name]).is_relative_to(store.cluster.data_dir), env[name]
    status = raykube("status", env=store.cluster.env).stdout
    for endpoint in store.endpoints:
        assert endpoint in status, f"raykube status does not show {endpoint}:\n{status}"
    # The whole round in one shell, as the docs show it.
    script = (
        f'eval "$({shlex.quote(str(RAYKUBE_SCRIPT))} store env)"; etcdctl put /env/k v; etcdctl get /env/k'
    )
    shell = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=store.cluster.env,
        timeout=120,
        check=False,
    )
    assert (shell.returncode, shell.stdout) == (0, "OK\n/env/k\nv\n"), shell.stderr


def test_put_get_prefix_rev_json_and_del(store: Store) -> None:
    # The cluster's own components write too (leases, events): revisions come from our writes' headers.
    first = store.json("put", "/kv/a", "1")["header"]["revision"]
    assert store.out("put", "/kv/b", "2") == "OK\n"
    top = store.json("put", "/kv/a", "one")["header"]["revision"]
    assert store.out("get", "/kv/a") == "/kv/a\none\n"
    assert store.out("get", "/kv/a", f"--rev={first}") == "/kv/a\n1\n"
    assert store.out("get", "--prefix", "/kv/") == "/kv/a\none\n/kv/b\n2\n"
    assert store.out("get", "--prefix", "/kv/", "--keys-only") == "/kv/a\n\n/kv/b\n\n"
    assert store.out("get", "/kv/", "--prefix", "--print-value-only") == "one\n2\n"
    assert store.out("get", "/kv/nothing") == ""

    doc = store.json("get", "/kv/a")
    assert doc["header"]["revision"] >= top, doc
    assert doc["header"]["member_id"] and doc["header"]["cluster_id"] and doc["header"]["raft_term"] >= 1, doc
    assert doc["count"] == 1
    (kv,) = doc["kvs"]
    assert (unb64(kv["key"]), unb64(kv["value"])) == ("/kv/a", "one")
    assert (kv["create_revision"], kv["mod_revision"], kv["version"]) == (first, top, 2), doc
    assert first < store.json("get", "/kv/b")["kvs"][0]["mod_revision"] < top
    empty = store.json("get", "/kv/nothing")
    assert "kvs" not in empty and "count" not in empty and empty["header"]["revision"] >= top, empty

    assert store.out("put", "/kv/a", "uno", "--prev-kv") == "OK\n/kv/a\none\n"
    assert store.out("del", "/kv/b") == "1\n"
    assert store.out("del", "/kv/nothing") == "0\n"
    assert store.out("del", "--prefix", "/kv/") == "1\n"
    assert store.out("get", "--prefix", "/kv/") == ""
    # A read at a revision not yet written is refused with etcd's text.
    assert f"Error: {FUTURE}" in store.fails("get", "/kv/a", f"--rev={store.revision() + 1000}")


def test_each_endpoint_reads_what_every_other_wrote(store: Store) -> None:
    for i, endpoint in enumerate(store.endpoints):
        assert store.out("put", f"/each/{i}", endpoint, env=store.at(endpoint)) == "OK\n"
    expected = "".join(f"/each/{i}\n{e}\n" for i, e in enumerate(store.endpoints))
    for endpoint in store.endpoints:
        assert store.out("get", "--prefix", "/each/", env=store.at(endpoint)) == expected, endpoint
        serial = store.out("get", "--prefix", "/each/", "--consistency=s", env=store.at(endpoint))
        assert set(serial.splitlines()) <= set(expected.splitlines()), endpoint  # may lag, never invent


def test_txn_success_and_failure_branches(store: Store) -> None:
    store.out("put", "/txn/a", "1")
    store.out("put", "/txn/b", "B")
    # etcdctl's interactive form, fed on stdin: compares, blank line, success ops, blank line, failure ops.
    success = store.out(
        "txn", "-i", input='value("/txn/a") = "1"\n\nput /txn/a 2\nget /txn/b\n\nput /txn/c C\n\n'
    )
    assert success == (
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"
        "SUCCESS\n\nOK\n\n/txn/b\nB\n"
    ), success
    failure = store.out(
        "txn", "-i", input='value("/txn/a") = "1"\n\nput /txn/a 3\n\nput /txn/c C\nget /txn/c\n\n'
    )
    assert failure.endswith("FAILURE\n\nOK\n\n/txn/c\nC\n"), failure
    assert store.out("get", "/txn/a", "--print-value-only") == "2\n"
    # The plain stdin form, with -w json: the responses and the succeeded flag.
    doc = store.json("txn", input='mod("/txn/a") > "0"\nversion("/txn/none") = "0"\n\ndel /txn/c\n\n\n')
    assert doc["succeeded"] is True, doc
    assert doc["responses"][0]["Response"]["ResponseDeleteRange"]["deleted"] == 1, doc
    created = store.json("get", "/txn/a")["kvs"][0]["create_revision"]
    refused = store.json("txn", input=f'create("/txn/a") = "{created + 1}"\n\n\nget /txn/a\n\n')
    assert refused.get("succeeded") is not True, refused
    kvs = refused["responses"][0]["Response"]["ResponseRange"]["kvs"]
    assert unb64(kvs[0]["value"]) == "2", refused


class Lines:
    """A running etcdctl whose stdout lines are read in a thread (``watch``, ``lease keep-alive``)."""

    def __init__(self, store: Store, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(ETCDCTL), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=store.env
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def take(self, n: int) -> list[str]:
        """The next ``n`` lines; fails with what came so far if the process ends or stalls first."""
        got = []
        while len(got) < n:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line within {WAIT}s; so far {self.seen + got}") from None
            if line is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"etcdctl ended ({self.proc.wait()}): {self.seen + got}\n{err}")
            got.append(line)
        self.seen += got
        return got

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_watch_from_a_revision_gets_history_then_live_events(store: Store) -> None:
    start = store.json("put", "/watch/a", "old")["header"]["revision"]
    store.out("put", "/watch/b", "older")
    store.out("put", "/elsewhere", "x")  # outside the prefix: never shown
    watch = Lines(store, "watch", "--prefix", "/watch/", f"--rev={start}", "--prev-kv")
    try:
        assert watch.take(6) == ["PUT", "/watch/a", "old", "PUT", "/watch/b", "older"]
        # Live events, written through another endpoint than the watch's first one.
        other = store.at(store.endpoints[-1])
        store.out("put", "/watch/a", "new", env=other)
        assert watch.take(5) == ["PUT", "/watch/a", "old", "/watch/a", "new"]  # with the previous value
        store.out("del", "/watch/b", env=other)
        assert watch.take(5) == ["DELETE", "/watch/b", "older", "/watch/b", ""]
    finally:
        watch.stop()
    # A watch from a compacted revision is cancelled with etcd's reason.
    store.out("compaction", str(start + 1))
    cancelled = store.ctl("watch", "/watch/a", f"--rev={start}", check=False)
    assert cancelled.returncode != 0 and COMPACTED in cancelled.stdout + cancelled.stderr, cancelled


LEASE_GRANTED = re.compile(r"^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$")


def test_lease_grant_keepalive_timetolive_revoke(store: Store) -> None:
    granted = store.out("lease", "grant", "60").strip()
    match = LEASE_GRANTED.match(granted)
    assert match and match.group(2) == "60", granted
    lease = match.group(1)
    assert store.out("put", "/lease/k", "v", f"--lease={lease}") == "OK\n"
    assert store.json("get", "/lease/k")["kvs"][0]["lease"] == int(lease, 16)
    assert store.out("lease", "keep-alive", "--once", lease) == f"lease {lease} keepalived with TTL(60)\n"
    ttl = store.out("lease", "timetolive", lease, "--keys").strip()
    remaining = re.fullmatch(
        rf"lease {lease} granted with TTL\(60s\), remaining\((\d+)s\), attached keys\(\[/lease/k\]\)", ttl
    )
    assert remaining and 0 < int(remaining.group(1)) <= 60, ttl
    assert lease in store.out("lease", "list").split()

    assert store.out("lease", "revoke", lease) == f"lease {lease} revoked\n"
    assert store.out("get", "/lease/k") == ""  # the attached key went with the lease
    assert store.out("lease", "timetolive", lease) == f"lease {lease} already expired\n"
    assert f"failed to revoke lease ({LEASE_NOT_FOUND})" in store.fails("lease", "revoke", lease)
    assert f"Error: {LEASE_NOT_FOUND}" in store.fails("put", "/lease/k", "v", f"--lease={lease}")


def test_lease_keep_alive_holds_a_key_past_its_ttl(store: Store) -> None:
    short = LEASE_GRANTED.match(store.out("lease", "grant", "4").strip())
    assert short, "lease grant 4"
    lease, ttl = short.group(1), int(short.group(2))
    store.out("put", "/lease/kept", "v", f"--lease={lease}")
    keeper = Lines(store, "lease", "keep-alive", lease)
    try:
        # etcdctl renews every TTL/3: three renewals span a whole TTL, the key outlives it.
        for _ in range(4):
            assert keeper.take(1) == [f"lease {lease} keepalived with TTL({ttl})"]
        assert store.out("get", "/lease/kept", "--print-value-only") == "v\n"
    finally:
        keeper.stop()
    store.out("lease", "revoke", lease)
    assert store.out("get", "/lease/kept") == ""


def test_compaction_then_reads_below_it_fail(store: Store) -> None:
    old = store.json("put", "/compact/k", "1")["header"]["revision"]
    top = store.json("put", "/compact/k", "2")["header"]["revision"]
    assert store.out("compaction", str(top)) == f"compacted revision {top}\n"
    assert f"Error: {COMPACTED}" in store.fails("get", "/compact/k", f"--rev={old}")
    assert f"Error: {COMPACTED}" in store.fails("compaction", str(old))
    assert store.out("get", "/compact/k", f"--rev={top}") == "/compact/k\n2\n"
    assert f"Error: {FUTURE}" in store.fails("compaction", str(store.revision() + 1000))


def test_endpoint_status_health_and_member_list(store: Store) -> None:
    members = store.json("member", "list")["members"]
    assert len(members) == 3, members
    ids = {m["ID"] for m in members}
    assert sorted(m["name"] for m in members) == ["store-1", "store-2", "store-3"], members
    simple = store.out("member", "list").splitlines()
    assert len(simple) == 3 and all(", started, store-" in line for line in simple), simple

    statuses = store.json("endpoint", "status")
    assert sorted(s["Endpoint"] for s in statuses) == sorted(store.endpoints), statuses
    leaders = {s["Status"]["leader"] for s in statuses}
    assert len(leaders) == 1 and leaders <= ids, statuses
    assert {s["Status"]["header"]["member_id"] for s in statuses} == ids, statuses
    assert all(s["Status"]["version"] and s["Status"]["raftTerm"] >= 1 for s in statuses), statuses
    table = store.out("endpoint", "status", "-w", "table")
    assert table.count("| https://") == 3 and "IS LEADER" in table, table

    health = store.json("endpoint", "health")
    assert sorted(h["endpoint"] for h in health) == sorted(store.endpoints), health
    assert all(h["health"] is True for h in health), health

    # Each member's client URL is its endpoint (the replicas learn each other's URLs from their actors
    # once they serve), so --cluster finds every endpoint through MemberList alone.
    deadline = time.monotonic() + 60
    while True:
        members = store.json("member", "list")["members"]
        urls = sorted(u for m in members for u in m.get("clientURLs", []))
        if urls == sorted(store.endpoints) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert urls == sorted(store.endpoints), members
    assert all(len(m.get("peerURLs", [])) == 1 for m in members), members
    one = store.at(store.endpoints[0])
    cluster = json.loads(store.out("endpoint", "status", "--cluster", "-w", "json", env=one))
    assert sorted(s["Endpoint"] for s in cluster) == sorted(store.endpoints), cluster
    text = store.ctl("endpoint", "health", "--cluster", env=one)
    healthy = (text.stdout + text.stderr).count("is healthy: successfully committed proposal")
    assert text.returncode == 0 and healthy == 3, text


def test_what_is_not_served_says_so_and_the_no_ops_answer(store: Store, tmp_path: Path) -> None:
    defrag = store.out("defrag").splitlines()
    assert sorted(defrag) == sorted(f"Finished defragmenting etcd member[{e}]" for e in store.endpoints)
    assert store.out("alarm", "list") == ""
    assert "etcdserver: UserList is not served by raykube's store" in store.fails("user", "list")
    member = store.json("member", "list")["members"][0]["ID"]
    assert "etcdserver: MemberRemove is not served by raykube's store" in store.fails(
        "member", "remove", f"{member:x}"
    )
    assert len(store.json("member", "list")["members"]) == 3
    snapshot = store.fails("snapshot", "save", str(tmp_path / "snap.db"), env=store.at(store.endpoints[0]))
    assert "etcdserver: Snapshot is not served by raykube's store" in snapshot, snapshot


def test_kubernetes_objects_live_under_registry(store: Store) -> None:
    kubectl = Kubectl(store.cluster, "1.33", None)
    ns = f"etcd-{secrets.token_hex(3)}"
    kubectl.run("create", "namespace", ns)
    kubectl.run("-n", ns, "create", "configmap", "settings", "--from-literal=colour=blue")
    kubectl.run("-n", ns, "create", "secret", "generic", "password", "--from-literal=p=hunter2")
    keys = store.out("get", "--prefix", f"/registry/configmaps/{ns}/", "--keys-only").split()
    assert f"/registry/configmaps/{ns}/settings" in keys, keys
    assert (
        f"/registry/namespaces/{ns}"
        in store.out("get", "--prefix", "/registry/namespaces/", "--keys-only").split()
    )
    # The value is the object the API server serves, at the revision that is its resourceVersion.
    doc = store.json("get", f"/registry/configmaps/{ns}/settings")
    stored = json.loads(unb64(doc["kvs"][0]["value"]))
    served = kubectl.json("-n", ns, "get", "configmap", "settings")
    assert stored["data"] == {"colour": "blue"} and stored["metadata"]["uid"] == served["metadata"]["uid"]
    assert str(doc["kvs"][0]["mod_revision"]) == served["metadata"]["resourceVersion"]
    # Secrets are encrypted at rest: kube's k8s:enc: prefix, never the plain text.
    (secret,) = store.json("get", f"/registry/secrets/{ns}/password")["kvs"]
    raw = base64.b64decode(secret["value"])
    assert raw.startswith(b"k8s:enc:") and b"hunter2" not in raw and b64("hunter2").encode() not in raw
    # A key deleted behind the API server's back is gone for kubectl too.
    assert store.out("del", f"/registry/configmaps/{ns}/settings") == "1\n"
    gone = kubectl.run("-n", ns, "get", "configmap", "settings", check=False)
    assert gone.returncode != 0 and 'configmaps "settings" not found' in gone.stderr, gone
    kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def test_only_the_store_clients_may_connect(store: Store, tmp_path: Path) -> None:
    anonymous = {k: v for k, v in store.env.items() if k not in ("ETCDCTL_CERT", "ETCDCTL_KEY")}
    refused = store.ctl("get", "/", "--dial-timeout=2s", "--command-timeout=4s", check=False, env=anonymous)
    assert refused.returncode != 0 and refused.stdout == "", refused

    # A certificate of another CA is refused at the handshake.
    foreign_cert, foreign_key = foreign_identity(tmp_path)
    foreign = dict(store.env, ETCDCTL_CERT=str(foreign_cert), ETCDCTL_KEY=str(foreign_key))
    refused = store.ctl("get", "/", "--dial-timeout=2s", "--command-timeout=4s", check=False, env=foreign)
    assert refused.returncode != 0 and refused.stdout == "", refused

    # A kubectl user's certificate of the cluster CA is not a store identity either.
    user = raykube("kubeconfig", "--user", "mallory", "--group", "system:masters", env=store.cluster.env)
    assert user.returncode == 0, user.stderr
    cert, key = kubeconfig_identity(user.stdout, tmp_path)
    mallory = dict(store.env, ETCDCTL_CERT=str(cert), ETCDCTL_KEY=str(key))
    assert "etcdserver: permission denied" in store.fails("get", "/", env=mallory)

    # No TLS at all: nothing answers in plain text.
    plain = {k: v for k, v in anonymous.items() if k != "ETCDCTL_CACERT"}
    plain["ETCDCTL_ENDPOINTS"] = ",".join(e.replace("https://", "http://") for e in store.endpoints)
    refused = store.ctl("get", "/", "--dial-timeout=2s", "--command-timeout=4s", check=False, env=plain)
    assert refused.returncode != 0 and refused.stdout == "", refused


def test_python_etcd_client_over_tls(store: Store) -> None:
    driver = Path(__file__).with_name("etcd_sdk_driver.py")
    run = subprocess.run(
        [sys.executable, str(driver), "/pyetcd"], capture_output=True, text=True, env=store.env, timeout=300
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    first, second = seen["put_revisions"]
    assert second > first and seen["put_prev_value"] == "1"
    assert seen["get"] == {"value": "2", "create_revision": first, "mod_revision": second, "version": 2}
    assert seen["get_old_revision"] == "1"
    expected = [[[f"/pyetcd/via/{i}", f"from-{i}"] for i in range(3)]] * 3
    assert seen["read_everywhere"] == expected
    assert seen["range"] == ["/pyetcd/a", "/pyetcd/b"] and seen["prefix_count"] == 6
    assert seen["txn"] == {"first": True, "second": False, "second_read": ["3"], "failed_key": None}
    start = seen["watch_start"]
    assert [(e["type"], e["key"], e["value"]) for e in seen["watch"]] == [
        ("PutEvent", "/pyetcd/w/1", "old"),
        ("PutEvent", "/pyetcd/w/2", "new"),
        ("DeleteEvent", "/pyetcd/w/1", ""),
    ]
    revisions = [e["mod_revision"] for e in seen["watch"]]
    assert revisions[0] == start and revisions == sorted(set(revisions)), seen["watch"]
    lease = seen["lease"]
    assert lease["granted"] == 60 and lease["refreshed_ttl"] == [60] and lease["info_granted"] == 60
    assert 0 < lease["info_remaining"] <= 60 and lease["keys"] == ["/pyetcd/leased"]
    assert lease["after_revoke"] is None
    assert lease["revoke_again"] == {"code": "NOT_FOUND", "details": LEASE_NOT_FOUND}
    assert seen["compacted_read"] == {"code": "OUT_OF_RANGE", "details": COMPACTED}
    assert seen["read_at_compaction"] == "5"
    members = seen["members"]
    assert len(members) == 3 and seen["status"]["leader"] in {m["id"] for m in members}


def foreign_identity(tmp_path: Path) -> tuple[Path, Path]:
    """A client certificate of a CA the cluster has never seen, with the etcdctl identity's names."""
    now = datetime.now(UTC)
    ca_cert, ca_key = pki.new_ca(now)
    cert, key = pki.issue_leaf(
        ca_cert,
        ca_key,
        subject=pki.subject_name("raykube-etcdctl", ["raykube:store-clients"]),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        validity=timedelta(days=1),
    )
    paths = tmp_path / "foreign.crt", tmp_path / "foreign.key"
    pki.store_pair(*paths, cert, key)
    return paths


def kubeconfig_identity(kubeconfig: str, tmp_path: Path) -> tuple[Path, Path]:
    """The client certificate and key of a kubeconfig, as PEM files."""
    user = yaml.safe_load(kubeconfig)["users"][0]["user"]
    cert, key = tmp_path / "user.crt", tmp_path / "user.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    key.chmod(0o600)
    return cert, key
