"""Kubeconfig files that point kubectl and the Python client at our API server.

Role: turn the PKI from ``tls.ensure_pki`` (or a certificate from ``tls.issue_client_cert``) into a
standard ``kind: Config`` document with one cluster, one user and one context, made current.

Invariants:
- ``kubeconfig_document`` is pure: bytes are embedded as base64 ``*-data`` fields, paths are written
  as file references (absolute, so the file works from any working directory).
- Files are written atomically with mode 0600, since they hold a private key or point at one.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from cluster.apiserver.tls import Pki
from cluster.client.kubeconfig import servers_extension
from cluster.machinery.files import private_dir, write_file_atomic

_KUBECONFIG_MODE = 0o600

Credential = bytes | Path


def _credential(field: str, value: Credential) -> dict[str, str]:
    if isinstance(value, bytes):
        return {f"{field}-data": base64.b64encode(value).decode("ascii")}
    return {field: str(value.absolute())}


def kubeconfig_document(
    *,
    server: str,
    cluster_name: str,
    user: str,
    context: str,
    certificate_authority: Credential,
    client_certificate: Credential,
    client_key: Credential,
    namespace: str | None = None,
    servers: list[str] | None = None,
) -> dict[str, Any]:
    """A kubeconfig as a dict: bytes are embedded (``*-data``), paths referenced. ``servers``, when
    more than ``server`` alone, go into the cluster's ``raykube.io/servers`` extension: kubectl uses
    ``server``, our client fails over between all of them."""
    context_body: dict[str, str] = {"cluster": cluster_name, "user": user}
    if namespace:
        context_body["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server,
                    **_credential("certificate-authority", certificate_authority),
                    **(
                        {"extensions": [servers_extension(servers)]}
                        if servers and [server] != servers
                        else {}
                    ),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    **_credential("client-certificate", client_certificate),
                    **_credential("client-key", client_key),
                },
            }
        ],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    private_dir(path.parent)
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    write_file_atomic(path, text.encode("utf-8"), mode=_KUBECONFIG_MODE)
    return path


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    pki: Pki,
    cluster_name: str = "raykube",
    user: str = "raykube-admin",
    context: str = "raykube",
    embed: bool = True,
    servers: list[str] | None = None,
) -> Path:
    """Write an admin kubeconfig for ``server`` (e.g. ``https://127.0.0.1:6443``) and return ``path``.

    With ``embed`` the CA, admin certificate and key are copied into the file, so it keeps working
    if the PKI directory moves; without it the file references the PKI paths.
    """
    if embed:
        ca: Credential = pki.ca_cert.read_bytes()
        cert: Credential = pki.admin_cert.read_bytes()
        key: Credential = pki.admin_key.read_bytes()
    else:
        ca, cert, key = pki.ca_cert, pki.admin_cert, pki.admin_key
    document = kubeconfig_document(
        server=server,
        cluster_name=cluster_name,
        user=user,
        context=context,
        certificate_authority=ca,
        client_certificate=cert,
        client_key=key,
        servers=servers,
    )
    return _write(path, document)


def kubeconfig_for_user(
    path: Path,
    *,
    server: str,
    pki: Pki,
    user: str,
    cert_pem: bytes,
    key_pem: bytes,
    cluster_name: str = "raykube",
    context: str | None = None,
    namespace: str | None = None,
    servers: list[str] | None = None,
) -> Path:
    """Write a kubeconfig for a certificate from ``issue_client_cert`` (always embedded).

    The context defaults to ``<user>@<cluster_name>``; ``namespace`` sets the context's default;
    ``servers`` as for ``write_kubeconfig``.
    """
    document = kubeconfig_document(
        server=server,
        cluster_name=cluster_name,
        user=user,
        context=context or f"{user}@{cluster_name}",
        certificate_authority=pki.ca_cert.read_bytes(),
        client_certificate=cert_pem,
        client_key=key_pem,
        namespace=namespace,
        servers=servers,
    )
    return _write(path, document)
