"""Secrets at rest and the audit log, with the real kubectl against `raykube up`.

One cluster (``--runtime none``) started with an audit policy and log: Metadata for Secrets,
RequestResponse for ConfigMaps, None for one token user. Without ``--encryption-provider-config``
`up` generated ``pki/encryption-config.yaml`` (Secrets under a random aesgcm key):

- a Secret created with kubectl is nowhere in the data directory (store WAL and snapshots), neither
  as written nor base64-encoded, while a ConfigMap's value is (the search does look where the store
  writes); the Secret reads back, also after the API server restarted (`raykube down` / `up`);
- the audit log has the events kube writes for creates, gets, a 404, a watch (ResponseStarted), a
  forbidden token user (decision ``forbid``) and none for the quiet user; the Secret's value is not in it;
- key rotation by rewriting: a new key first (old key second), restart, ``kubectl get secrets -A -o
  json | kubectl replace -f -``, the stored value now under the new key; then the old key removed,
  restart, and the Secret still reads.

Runs its own Ray (``own_ray``): the machine's Ray is stopped before and after.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration import support
from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
SECRET_VALUE = f"s3cr3t-{secrets.token_hex(8)}-at-rest"
CM_VALUE = f"plain-{secrets.token_hex(8)}-visible"
QUIET_TOKEN, LOUD_TOKEN = secrets.token_hex(16), secrets.token_hex(16)

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    users: ["quiet"]
  - level: Metadata
    resources: [{group: "", resources: ["secrets"]}]
  - level: RequestResponse
    resources: [{group: "", resources: ["configmaps"]}]
"""


@dataclass
class Cluster:
    data_dir: Path
    kubeconfig: Path
    audit_log: Path
    tokens: dict[str, Path]

    def kubectl(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    def restart(self, *up_args: str) -> None:
        """Restart the control plane (and so the API server) with the store's data kept."""
        run_cli("down", data_dir=self.data_dir)
        run_cli("up", "--runtime", "none", "--port", "0", *up_args, data_dir=self.data_dir, timeout=400)

    def stored(self, key: str) -> str:
        return run_cli("store", "get", key, data_dir=self.data_dir).stdout


def token_kubeconfig(admin: Path, token: str, out: Path) -> Path:
    doc = yaml.safe_load(admin.read_text())
    cluster = doc["clusters"][0]
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": cluster["name"], "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("at-rest")
    data_dir = root / "data"
    policy, tokens = root / "policy.yaml", root / "tokens.csv"
    policy.write_text(POLICY)
    tokens.write_text(f"{QUIET_TOKEN},quiet,u-quiet\n{LOUD_TOKEN},loud,u-loud\n")
    audit_log = root / "audit" / "audit.log"
    os.environ["RAYKUBE_NAMESPACE"] = f"at-rest-{secrets.token_hex(4)}"
    ray_stop()
    try:
        run_cli(
            "up", "--runtime", "none", "--port", "0", "--audit-policy-file", str(policy),
            "--audit-log-path", str(audit_log), "--token-auth-file", str(tokens),
            data_dir=data_dir, timeout=400,
        )  # fmt: skip
        kubeconfig = data_dir / "kubeconfig"
        yield Cluster(
            data_dir,
            kubeconfig,
            audit_log,
            {
                "quiet": token_kubeconfig(kubeconfig, QUIET_TOKEN, root / "quiet.kubeconfig"),
                "loud": token_kubeconfig(kubeconfig, LOUD_TOKEN, root / "loud.kubeconfig"),
            },
        )
    finally:
        run_cli("down", "--purge", data_dir=data_dir, check=False)
        ray_stop()
        os.environ.pop("RAYKUBE_NAMESPACE", None)


def files_containing(root: Path, needles: list[bytes]) -> dict[str, list[str]]:
    """needle → the files under ``root`` holding it (every regular file, read whole)."""
    found: dict[str, list[str]] = {n.decode(): [] for n in needles}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            for n in needles:
                if n in data:
                    found[n.decode()].append(str(path.relative_to(root)))
    return found


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def test_a_secret_is_never_in_the_data_directory_in_plain_text(cluster: Cluster) -> None:
    cfg = yaml.safe_load((cluster.data_dir / "pki" / "encryption-config.yaml").read_text())
    assert [list(p) for p in cfg["resources"][0]["providers"]] == [["aesgcm"], ["identity"]]
    cluster.kubectl("create", "secret", "generic", "vault", f"--from-literal=password={SECRET_VALUE}")
    cluster.kubectl("create", "configmap", "control", f"--from-literal=k={CM_VALUE}")
    got = cluster.kubectl("get", "secret", "vault", "-o", "jsonpath={.data.password}").stdout
    assert base64.b64decode(got).decode() == SECRET_VALUE
    assert cluster.stored("/registry/secrets/default/vault").startswith("k8s:enc:aesgcm:v1:key1:")

    needles = [SECRET_VALUE.encode(), b64(SECRET_VALUE), CM_VALUE.encode()]
    found = files_containing(cluster.data_dir, needles)
    assert found[CM_VALUE], f"the ConfigMap's value should be in the store's files: {found}"
    assert any("store" in f for f in found[CM_VALUE]), found
    assert found[SECRET_VALUE] == [] and found[b64(SECRET_VALUE).decode()] == [], found


def read_events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def test_the_audit_log_has_kubes_events(cluster: Cluster) -> None:
    value = f"audit-{secrets.token_hex(8)}"
    cluster.kubectl("create", "secret", "generic", "audited", f"--from-literal=token={value}")
    cluster.kubectl("get", "secret", "audited", "-o", "yaml")
    cluster.kubectl("create", "configmap", "audited-cm", "--from-literal=k=visible-in-audit")
    cluster.kubectl("get", "configmap", "audited-cm")
    assert cluster.kubectl("get", "configmap", "nope", check=False).returncode != 0
    cluster.kubectl("get", "configmaps", "--watch", "--request-timeout=3s", check=False)
    for user in ("quiet", "loud"):
        assert cluster.kubectl(
            "get", "configmap", "audited-cm", check=False, kubeconfig=cluster.tokens[user]
        ).returncode

    def settled() -> list[dict[str, Any]] | None:
        events = read_events(cluster.audit_log)
        users = {e["user"].get("username") for e in events}
        return events if "loud" in users and any(e["verb"] == "watch" for e in events) else None

    events = support.wait_until(settled, "the audit events of the kubectl commands", timeout=30)

    def of(
        verb: str, resource: str, name: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stage of the last such request (a create's name is known from its ResponseComplete on)."""
        last = [
            e
            for e in events
            if e["verb"] == verb
            and e["stage"] in ("ResponseComplete", "ResponseStarted")
            and e.get("objectRef", {}).get("resource") == resource
            and (name is None or e["objectRef"].get("name") == name)
            and (user is None or e["user"].get("username") == user)
        ]
        assert last, f"no {verb} {resource} {name}: {[(e['verb'], e.get('objectRef')) for e in events]}"
        return [e for e in events if e["auditID"] == last[-1]["auditID"]]

    created = of("create", "secrets", "audited")
    assert [e["stage"] for e in created] == ["RequestReceived", "ResponseComplete"]
    assert len({e["auditID"] for e in created}) == 1
    done = created[1]
    assert done["kind"] == "Event" and done["apiVersion"] == "audit.k8s.io/v1" and done["level"] == "Metadata"
    assert done["objectRef"] == {
        "resource": "secrets",
        "namespace": "default",
        "name": "audited",
        "apiVersion": "v1",
    }
    assert done["responseStatus"] == {"metadata": {}, "code": 201}
    assert done["requestURI"].startswith("/api/v1/namespaces/default/secrets")
    assert "system:masters" in done["user"]["groups"] and done["userAgent"].startswith("kubectl")
    assert done["sourceIPs"] and done["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert done["requestReceivedTimestamp"] <= done["stageTimestamp"]
    assert "requestObject" not in done and "responseObject" not in done
    assert [e["stage"] for e in of("get", "secrets", "audited")] == ["RequestReceived", "ResponseComplete"]

    cm = of("create", "configmaps", "audited-cm")[-1]
    assert cm["level"] == "RequestResponse" and cm["requestObject"]["data"] == {"k": "visible-in-audit"}
    assert cm["responseObject"]["metadata"]["uid"]
    assert of("get", "configmaps", "audited-cm", user=done["user"]["username"])[-1]["responseObject"]
    missing = of("get", "configmaps", "nope")[-1]["responseStatus"]
    assert missing == {
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps"},
        "code": 404,
    }
    watch = of("watch", "configmaps", user=done["user"]["username"])
    assert "ResponseStarted" in [e["stage"] for e in watch]

    loud = of("get", "configmaps", "audited-cm", user="loud")[-1]
    assert loud["responseStatus"]["code"] == 403 and loud["responseStatus"]["reason"] == "Forbidden"
    assert loud["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert not [e for e in events if e["user"].get("username") == "quiet"]

    text = cluster.audit_log.read_text()
    assert value not in text and b64(value).decode() not in text
    assert SECRET_VALUE not in text and b64(SECRET_VALUE).decode() not in text


def test_key_rotation_by_rewriting(cluster: Cluster, tmp_path: Path) -> None:
    path = cluster.data_dir / "pki" / "encryption-config.yaml"
    old_key = yaml.safe_load(path.read_text())["resources"][0]["providers"][0]["aesgcm"]["keys"][0]
    new_key = {"name": "key2", "secret": base64.b64encode(os.urandom(32)).decode()}

    def config(*keys: dict[str, str]) -> Path:
        out = tmp_path / f"enc-{len(keys)}.yaml"
        out.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "EncryptionConfiguration",
                    "resources": [
                        {
                            "resources": ["secrets"],
                            "providers": [{"aesgcm": {"keys": list(keys)}}, {"identity": {}}],
                        }
                    ],
                }
            )
        )
        return out

    def password() -> str:
        out = cluster.kubectl("get", "secret", "vault", "-o", "jsonpath={.data.password}").stdout
        return base64.b64decode(out).decode()

    # 1. the new key first, the old one still listed; restart; every Secret rewritten.
    cluster.restart("--encryption-provider-config", str(config(new_key, old_key)))
    assert password() == SECRET_VALUE  # read with the old key, after a restart
    assert cluster.stored("/registry/secrets/default/vault").startswith("k8s:enc:aesgcm:v1:key1:")
    listed = cluster.kubectl("get", "secrets", "-A", "-o", "json").stdout  # | kubectl replace -f -
    replaced = subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "replace", "-f", "-"],
        input=listed, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert cluster.stored("/registry/secrets/default/vault").startswith("k8s:enc:aesgcm:v1:key2:")

    # 2. the old key removed; restart; still readable, still not in plain text anywhere.
    cluster.restart("--encryption-provider-config", str(config(new_key)))
    assert password() == SECRET_VALUE
    found = files_containing(cluster.data_dir, [SECRET_VALUE.encode(), b64(SECRET_VALUE)])
    assert found == {SECRET_VALUE: [], b64(SECRET_VALUE).decode(): []}

    # 3. a configuration without the Secret's key: kube's 500 for that object, and the server lives on.
    cluster.restart("--encryption-provider-config", str(config(old_key)))
    failed = cluster.kubectl("get", "secret", "vault", check=False)
    assert failed.returncode != 0
    assert (
        "Error from server (InternalError): Internal error occurred: unable to transform key "
        '"/registry/secrets/default/vault": no matching prefix found'
    ) in failed.stderr
    assert cluster.kubectl("get", "configmap", "control", "-o", "jsonpath={.data.k}").stdout == CM_VALUE
