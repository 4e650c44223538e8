"""The store on the wire after a real `raykube up`: every replica serves etcd's v3 API on its own
port with TLS from the cluster CA, `raykube store env` points the real etcdctl 3.4 at it, only the
store's client certificates open it, and a follower forwards writes to the leader.

Run under the heavy lock (`flock /tmp/raykube-heavy.lock`): these tests stop and start Ray.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import RAYKUBE, ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def cli(*args: str, data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", COLUMNS="200")
    env.pop("RAYKUBE_DATA_DIR", None)
    env.pop("RAYKUBE_NAMESPACE", None)
    return subprocess.run(
        [*RAYKUBE, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def store_env(data_dir: Path) -> dict[str, str]:
    """What `eval "$(raykube store env)"` sets, read back through a real shell."""
    lines = ok(cli("store", "env", data_dir=data_dir))
    script = f"eval {shlex.quote(lines)} && env -0"
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True, env={}, timeout=30).stdout
    pairs = (item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("ETCDCTL_")}


def etcdctl(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """etcdctl with exactly ``env``'s ETCDCTL_* (etcdctl 3.4 refuses a flag its environment also sets,
    so one endpoint is chosen by ETCDCTL_ENDPOINTS)."""
    return subprocess.run(
        [ETCDCTL, *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin"), **env},
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    ray_stop()
    try:
        yield data_dir
    finally:
        cli("down", "--purge", data_dir=data_dir, timeout=180)
        ray_stop()


def up(data_dir: Path, *extra: str) -> str:
    namespace = f"etcd-api-{secrets.token_hex(4)}"
    return ok(
        cli("up", "--port", "0", "--runtime", "none", "--ray-namespace", namespace, *extra, data_dir=data_dir)
    )


def test_etcdctl_reaches_the_store_of_raykube_up_over_tls_and_only_with_a_store_certificate(
    cluster_dir: Path, tmp_path: Path
) -> None:
    up(cluster_dir)
    env = store_env(cluster_dir)
    assert env["ETCDCTL_API"] == "3"
    assert env["ETCDCTL_CACERT"] == str(cluster_dir / "pki" / "ca.crt")
    assert Path(env["ETCDCTL_CERT"]).is_file() and Path(env["ETCDCTL_KEY"]).stat().st_mode & 0o077 == 0
    [endpoint] = env["ETCDCTL_ENDPOINTS"].split(",")
    assert endpoint.startswith("https://")

    [status] = json.loads(ok(etcdctl(env, "endpoint", "status", "-w", "json")))
    assert status["Endpoint"] == endpoint
    assert status["Status"]["leader"] == status["Status"]["header"]["member_id"]
    assert ok(etcdctl(env, "put", "/h3a/key", "value")).strip() == "OK"
    assert ok(etcdctl(env, "get", "/h3a/key")).splitlines() == ["/h3a/key", "value"]

    # The client URL is what `raykube status` prints for the replica.
    assert endpoint in ok(cli("status", data_dir=cluster_dir))

    # Without a client certificate the TLS handshake refuses the connection.
    no_cert = {k: v for k, v in env.items() if k not in ("ETCDCTL_CERT", "ETCDCTL_KEY")}
    refused = etcdctl(no_cert, "get", "/h3a/key", "--command-timeout=5s")
    assert refused.returncode != 0 and "value" not in refused.stdout, refused

    # A kubectl user's certificate of the same cluster CA (even in system:masters) is not the store's.
    kubeconfig = tmp_path / "alice.kubeconfig"
    ok(
        cli(
            "kubeconfig",
            "--user",
            "alice",
            "--group",
            "system:masters",
            "--out",
            str(kubeconfig),
            data_dir=cluster_dir,
        )
    )
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    cert, key = tmp_path / "alice.crt", tmp_path / "alice.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    key.chmod(0o600)
    as_user = {**env, "ETCDCTL_CERT": str(cert), "ETCDCTL_KEY": str(key)}
    denied = etcdctl(as_user, "get", "/h3a/key", "--command-timeout=5s")
    assert denied.returncode != 0, denied
    assert "etcdserver: permission denied" in denied.stderr, denied.stderr
    denied_put = etcdctl(as_user, "put", "/h3a/key", "mine", "--command-timeout=5s")
    assert "etcdserver: permission denied" in denied_put.stderr, denied_put.stderr
    assert ok(etcdctl(env, "get", "/h3a/key", "--print-value-only")).strip() == "value"


def test_three_replicas_on_one_host_each_serve_and_a_follower_forwards_writes(cluster_dir: Path) -> None:
    up(cluster_dir, "--replicas", "3")
    env = store_env(cluster_dir)
    endpoints = env["ETCDCTL_ENDPOINTS"].split(",")
    assert len(endpoints) == 3 and len(set(endpoints)) == 3, endpoints

    statuses = {}
    for endpoint in endpoints:  # each replica answers on its own endpoint
        [row] = json.loads(
            ok(etcdctl({**env, "ETCDCTL_ENDPOINTS": endpoint}, "endpoint", "status", "-w", "json"))
        )
        statuses[endpoint] = row["Status"]
    members = {s["header"]["member_id"] for s in statuses.values()}
    leaders = {s["leader"] for s in statuses.values()}
    assert len(members) == 3 and len(leaders) == 1, statuses
    [leader] = leaders
    followers = [e for e, s in statuses.items() if s["header"]["member_id"] != leader]
    assert len(followers) == 2

    for i, follower in enumerate(followers):
        assert (
            ok(etcdctl({**env, "ETCDCTL_ENDPOINTS": follower}, "put", f"/h3a/through-{i}", f"v{i}")).strip()
            == "OK"
        )
    leader_endpoint = next(e for e, s in statuses.items() if s["header"]["member_id"] == leader)
    got = ok(etcdctl({**env, "ETCDCTL_ENDPOINTS": leader_endpoint}, "get", "/h3a/", "--prefix", "-w", "json"))
    values = {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
        for kv in json.loads(got)["kvs"]
    }
    assert values == {"/h3a/through-0": "v0", "/h3a/through-1": "v1"}

    status = ok(cli("status", data_dir=cluster_dir))
    assert all(endpoint in status for endpoint in endpoints), status
