"""Identities for the issue-16 acceptance tests: users with client certificates from the test
cluster's CA, bearer tokens, anonymous callers, and a raw HTTPS client that reads kube's Status.

Every identity talks to the session's `raykube up` cluster (``raykube_cluster``): kubectl through a
kubeconfig of its own (so ``Kubectl`` from conftest runs as that identity), and direct requests
through ``Caller`` (status code and decoded body, to compare kube's exact Status texts).
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml

from cluster.apiserver.kubeconfig import kubeconfig_document
from cluster.apiserver.tls import Pki, issue_client_cert
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster

T = TypeVar("T")

# How long an RBAC change may take to reach the authorizer (it reads roles and bindings from a
# watch, as kube-apiserver reads them from informers). Only a bound on waiting, never a threshold.
SETTLE = 30.0


def eventually(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = SETTLE) -> T:
    """Call ``probe`` until ``done(result)``; return the last result (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def pki(cluster: RaykubeCluster) -> Pki:
    return Pki.in_dir(cluster.data_dir / "pki")


def _admin_config(cluster: RaykubeCluster) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    return config


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def status_fields(self) -> tuple[Any, ...]:
        """(code, reason, message) of a kube Status body."""
        doc = self.json()
        assert doc.get("kind") == "Status", self.body[:500]
        return doc.get("code"), doc.get("reason"), doc.get("message")


@dataclass(frozen=True, slots=True)
class Caller:
    """One identity for direct HTTPS requests: a client certificate, a bearer token, or nothing."""

    host: str
    port: int
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        sent = dict(headers or {})
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context(), timeout=30)
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.read())
        finally:
            conn.close()
        assert b"Traceback" not in reply.body, reply.body[:2000]
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def with_token(self, token: str) -> Caller:
        return replace(self, cert_file=None, key_file=None, token=token)


def anonymous(cluster: RaykubeCluster, workdir: Path) -> Caller:
    """A caller that presents no credentials at all."""
    config = _admin_config(cluster)
    url = urlparse(config["clusters"][0]["cluster"]["server"])
    workdir.mkdir(parents=True, exist_ok=True)
    ca = workdir / "ca.crt"
    ca.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
    return Caller(url.hostname or "127.0.0.1", url.port or 443, ca)


@dataclass(frozen=True, slots=True)
class User:
    """A user with a client certificate from the cluster CA: kubectl and HTTPS as that user."""

    name: str
    groups: tuple[str, ...]
    kubeconfig: Path
    caller: Caller
    cluster: RaykubeCluster

    def kubectl(self, namespace: str | None = None, version: str = "1.33") -> Kubectl:
        return Kubectl(replace(self.cluster, kubeconfig=self.kubeconfig), version, namespace)


def user(cluster: RaykubeCluster, workdir: Path, name: str, groups: tuple[str, ...] = ()) -> User:
    """Issue a client certificate for ``name`` in ``groups`` (CN and O) and a kubeconfig with it."""
    cert, key = issue_client_cert(pki(cluster), name, list(groups), days=1)
    folder = workdir / f"user-{name.replace(':', '_')}-{secrets.token_hex(2)}"
    folder.mkdir(parents=True)
    (folder / "client.crt").write_bytes(cert)
    (folder / "client.key").write_bytes(key)
    (folder / "client.key").chmod(0o600)
    base = anonymous(cluster, folder)
    document = kubeconfig_document(
        server=cluster.server,
        cluster_name="raykube",
        user=name,
        context="raykube",
        certificate_authority=base.ca_file.read_bytes(),
        client_certificate=cert,
        client_key=key,
    )
    kubeconfig = folder / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False))
    kubeconfig.chmod(0o600)
    caller = replace(base, cert_file=folder / "client.crt", key_file=folder / "client.key")
    return User(name, groups, kubeconfig, caller, cluster)


def cli_user(cluster: RaykubeCluster, workdir: Path, name: str, groups: tuple[str, ...] = ()) -> User:
    """A user from ``raykube kubeconfig --user NAME --group G... --out FILE`` (what an operator runs)."""
    folder = workdir / f"cli-user-{name.replace(':', '_')}-{secrets.token_hex(2)}"
    folder.mkdir(parents=True)
    kubeconfig = folder / "kubeconfig"
    group_args = [arg for group in groups for arg in ("--group", group)]
    proc = subprocess.run(
        [*RAYKUBE, "kubeconfig", "--data-dir", str(cluster.data_dir), "--user", name, *group_args,
         "--out", str(kubeconfig)],
        capture_output=True, text=True, env=cluster.env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and kubeconfig.exists(), (proc.stdout, proc.stderr)
    assert kubeconfig.stat().st_mode & 0o077 == 0, oct(kubeconfig.stat().st_mode)
    entry = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    (folder / "client.crt").write_bytes(base64.b64decode(entry["client-certificate-data"]))
    (folder / "client.key").write_bytes(base64.b64decode(entry["client-key-data"]))
    (folder / "client.key").chmod(0o600)
    caller = replace(
        anonymous(cluster, folder), cert_file=folder / "client.crt", key_file=folder / "client.key"
    )
    return User(name, groups, kubeconfig, caller, cluster)


def token_kubeconfig(cluster: RaykubeCluster, workdir: Path, token: str) -> Kubectl:
    """kubectl that authenticates with ``token`` only (no client certificate)."""
    config = _admin_config(cluster)
    folder = workdir / f"token-{secrets.token_hex(3)}"
    folder.mkdir(parents=True)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "raykube", "cluster": config["clusters"][0]["cluster"]}],
        "users": [{"name": "bearer", "user": {"token": token}}],
        "contexts": [{"name": "raykube", "context": {"cluster": "raykube", "user": "bearer"}}],
        "current-context": "raykube",
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return Kubectl(replace(cluster, kubeconfig=path), "1.33", None)


def can_i(kubectl: Kubectl, *args: str) -> tuple[str, int, str]:
    """``kubectl auth can-i ARGS``: (stdout, exit code, stderr)."""
    proc = kubectl.run("auth", "can-i", *args, check=False, namespaced=False)
    return proc.stdout, proc.returncode, proc.stderr


def answer(kubectl: Kubectl, *args: str) -> tuple[str, int]:
    """``can_i`` as (stdout, exit code), failing on anything on stderr but kube's answer."""
    out, code, err = can_i(kubectl, *args)
    assert err == "", f"kubectl auth can-i {' '.join(args)}: {err}"
    return out, code


YES = ("yes\n", 0)
NO = ("no\n", 1)


def settled_answer(kubectl: Kubectl, want: tuple[str, int], *args: str) -> tuple[str, int]:
    """``answer`` after waiting (bounded) for a binding change to reach the authorizer."""
    return eventually(lambda: answer(kubectl, *args), lambda got: got == want)


def list_rules(kubectl: Kubectl, *args: str) -> dict[str, list[tuple[str, str, str]]]:
    """``kubectl auth can-i --list``: resource (or '' for non-resource rows) -> [(urls, names, verbs)]."""
    proc = kubectl.run("auth", "can-i", "--list", *args, namespaced=False)
    lines = proc.stdout.splitlines()
    assert lines and lines[0].split() == [
        "Resources",
        "Non-Resource",
        "URLs",
        "Resource",
        "Names",
        "Verbs",
    ], proc.stdout
    rows: dict[str, list[tuple[str, str, str]]] = {}
    for line in lines[1:]:
        head, _, rest = line.partition("[")
        urls, _, rest = ("[" + rest).partition("]")
        names, _, verbs = rest.strip().partition("]")
        rows.setdefault(head.strip(), []).append((urls + "]", names + "]", verbs.strip()))
    return rows


def verbs_of(rows: dict[str, list[tuple[str, str, str]]], resource: str) -> set[str]:
    """Every verb the --list rows grant on ``resource`` (across rows without resource names)."""
    out: set[str] = set()
    for _, names, verbs in rows.get(resource, []):
        if names == "[]":
            out |= set(verbs.strip("[]").split())
    return out


def forbidden_list(user_name: str, resource: str, group: str = "", namespace: str = "") -> str:
    """kube's message for a refused list: ``<res> is forbidden: User "u" cannot list resource ...``."""
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    qualified = resource + (f".{group}" if group else "")
    return (
        f'{qualified} is forbidden: User "{user_name}" cannot list resource "{resource}" '
        f'in API group "{group}" {scope}'
    )


UNAUTHORIZED = (401, "Unauthorized", "Unauthorized")


def admin(cluster: RaykubeCluster, namespace: str | None = None) -> Kubectl:
    return Kubectl(cluster, "1.33", namespace)


def create_token(cluster: RaykubeCluster, namespace: str, sa: str, *extra: str) -> str:
    """``kubectl create token SA`` as the admin (TokenRequest), the token text."""
    return admin(cluster, namespace).out("create", "token", sa, *extra).strip()
