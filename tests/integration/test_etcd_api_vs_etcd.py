"""etcd is the reference: the same etcdctl 3.4 session against a real etcd 3.4 and against our store
(three in-process replicas served by ``cluster.store.etcd_api``, etcdctl on a follower) prints the
same thing, command by command: values, revisions, counts, txn outcomes, JSON shapes and error texts.

What may differ is normalized away: who answered (cluster and member ids, Raft term), lease ids
(etcd's are random, ours count from 1) and remaining TTLs, the hashes and sizes in endpoint status.
No Ray: a real etcd process and in-process replicas; it starts a server, so it runs as integration.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.capabilities import require
from tests.cluster.store.etcd_api.served import ETCDCTL, Served

pytestmark = [pytest.mark.integration]

ETCD = Path("/usr/bin/etcd")

# (args, stdin). "{lease}" is the id the session's first lease grant printed.
SESSION: list[tuple[list[str], str | None]] = [
    (["put", "/d/a", "1"], None),
    (["put", "/d/b", "2"], None),
    (["put", "/d/a", "3", "--prev-kv", "-w", "json"], None),
    (["put", "/d/c", "4"], None),
    (["get", "/d", "--prefix", "-w", "json"], None),
    (["get", "/d/a", "--rev", "2", "-w", "json"], None),
    (["get", "/d", "--prefix", "--rev", "3"], None),
    (["get", "/d", "--prefix", "--sort-by=VALUE", "--order=DESCEND", "--limit=2", "-w", "json"], None),
    (["get", "/d", "--prefix", "--sort-by=MODIFY", "--limit=2", "-w", "json"], None),
    (["get", "/d", "--prefix", "--sort-by=CREATE", "--order=ASCEND"], None),
    (["get", "/d", "--prefix", "--keys-only", "-w", "json"], None),
    (["get", "/d/b", "--from-key"], None),
    (["get", "/d/a", "--print-value-only"], None),
    (["get", "/nothing", "-w", "json"], None),
    (["txn", "-w", "json"], 'mod("/d/a") = "4"\n\nput /d/a swapped\nget /d/b\n\nget /d/c\n\n'),
    (["txn", "-w", "json"], 'value("/d/a") = "nope"\n\nput /d/a never\n\nget /d/a\ndel /d/b --prev-kv\n\n'),
    (["txn"], 'version("/d/c") > "0"\ncreate("/d/c") < "100"\n\nput /d/x 1\nput /d/y 2\n\n\n'),
    (["txn"], "\n\nput /d/z 1\nput /d/z 2\n\n\n"),
    (["del", "/d/c", "--prev-kv", "-w", "json"], None),
    (["del", "/d/", "--prefix"], None),
    (["del", "/d/none"], None),
    (["put", "", "empty"], None),
    (["put", "/big"], "v" * 1_600_000),  # the value from stdin: too long for an argument
    (["compaction", "4"], None),
    (["compaction", "4"], None),
    (["compaction", "999"], None),
    (["get", "/d/a", "--rev", "3"], None),
    (["get", "/d/a", "--rev", "999"], None),
    (["get", "/d/a", "--rev", "4", "-w", "json"], None),
    (["lease", "grant", "100"], None),
    (["put", "--lease={lease}", "/leased", "v"], None),
    (["lease", "timetolive", "{lease}", "--keys"], None),
    (["lease", "list"], None),
    (["lease", "keep-alive", "--once", "{lease}"], None),
    (["lease", "revoke", "{lease}"], None),
    (["lease", "revoke", "{lease}"], None),
    (["lease", "timetolive", "{lease}"], None),
    (["put", "--lease=1234", "/k", "v"], None),
    (["get", "/leased", "-w", "json"], None),
    (["endpoint", "health", "-w", "json"], None),
    (["alarm", "list"], None),
    (["defrag"], None),
]

_WHO = {"cluster_id", "member_id", "raft_term"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def real_etcd(tmp_path: Path) -> Iterator[str]:
    require("etcd", None if ETCD.exists() and Path(ETCDCTL).exists() else "etcd or etcdctl not installed")
    client, peer = free_port(), free_port()
    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ETCD),
            "--data-dir",
            str(tmp_path / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
            "--log-level",
            "warn",
            "--logger",
            "zap",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"127.0.0.1:{client}"
    try:
        deadline = time.monotonic() + 30
        while run(endpoint, ["endpoint", "health"]).returncode != 0:
            assert proc.poll() is None, (tmp_path / "etcd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "etcd did not become healthy in 30 s"
            time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run(endpoint: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ETCDCTL_API": "3"}
    cmd = [ETCDCTL, f"--endpoints={endpoint}", "--dial-timeout=5s", "--command-timeout=10s", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


def normalize(value: Any, lease: str, lease_dec: int) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _WHO:
                continue
            if k in ("lease", "ID") and v == lease_dec:
                v = "LEASE"
            if k == "took":
                v = "TOOK"
            out[k] = normalize(v, lease, lease_dec)
        return out
    if isinstance(value, list):
        return [normalize(v, lease, lease_dec) for v in value]
    return value


def session(endpoint: str) -> list[tuple[str, int, Any]]:
    lease, lease_dec = "", -1
    transcript = []
    for args, stdin in SESSION:
        args = [a.replace("{lease}", lease) for a in args]
        out = run(endpoint, args, stdin)
        text = out.stdout
        if args[:2] == ["lease", "grant"] and out.returncode == 0:
            lease = re.match(r"lease ([0-9a-f]{16}) granted", text).group(1)  # type: ignore[union-attr]
            lease_dec = int(lease, 16)
        if lease:
            text = text.replace(lease, "LEASE")
        text = re.sub(r"remaining\(\d+s\)", "remaining(Ns)", text)
        text = re.sub(r"127\.0\.0\.1:\d+", "ENDPOINT", text)
        if "-w" in args and out.returncode == 0:
            shown: Any = normalize(json.loads(text), lease, lease_dec)
        elif out.returncode == 0:
            shown = text
        else:
            shown = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
        transcript.append((" ".join(a[:40] for a in args), out.returncode, shown))
    return transcript


def test_etcdctl_session_prints_what_etcd_prints(real_etcd: str, tmp_path: Path) -> None:
    reference = session(real_etcd)
    assert sum(rc == 0 for _, rc, _ in reference) >= 30, reference  # etcd really served the session
    ours_served = Served(tmp_path / "ours", 3)
    try:
        ours = session(ours_served.endpoint(ours_served.follower_id()))
    finally:
        ours_served.close()
    differences = [
        f"etcdctl {cmd}\n  etcd:    rc={rc_e} {out_e!r}\n  raykube: rc={rc_o} {out_o!r}"
        for (cmd, rc_e, out_e), (_, rc_o, out_o) in zip(reference, ours, strict=True)
        if (rc_e, out_e) != (rc_o, out_o)
    ]
    assert not differences, "\n".join(differences)
