"""Kubeconfig parsing: pick a context and resolve its cluster and user into connection settings.

Certificate fields may be paths (relative paths resolve against the kubeconfig's directory, as
kubectl does) or inline base64 ``-data`` fields, which stay in memory: parsing writes nothing.
``token`` and ``tokenFile`` give a bearer token. A cluster may list more API servers than its one
``server`` in the ``raykube.io/servers`` extension (``SERVERS_EXTENSION``; kubectl keeps reading
``server`` and ignores it): our client fails over between them. Returns plain values; opening connections is
:class:`cluster.client.rest.ApiClient`'s job, and :func:`load_client_certificate` is how it loads an
in-memory key pair (``ssl`` only reads key pairs from files, so they pass through a private
directory that is gone before the function returns).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]

SERVERS_EXTENSION = "raykube.io/servers"


def servers_extension(servers: list[str]) -> dict[str, Any]:
    """The cluster ``extensions`` entry listing every API server (``server`` stays the one kubectl uses)."""
    return {"name": SERVERS_EXTENSION, "extension": {"servers": list(servers)}}


class KubeconfigError(ValueError):
    """The kubeconfig lacks the named context, cluster or user, or a field is malformed."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    namespace: str | None = None
    insecure_skip_tls_verify: bool = False
    # The decoded ``-data`` fields (PEM); a field set here has no ``*_file`` counterpart.
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    # Every API server to try, ``server`` first (``SERVERS_EXTENSION``); empty: ``server`` alone.
    servers: tuple[str, ...] = ()


def _named(entries: list[Mapping[str, Any]] | None, name: str, what: str) -> Mapping[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return entry.get(what) or {}
    raise KubeconfigError(f"kubeconfig has no {what} named {name!r}")


def _resolve(section: Mapping[str, Any], field: str, base_dir: str) -> tuple[str | None, bytes | None]:
    """``field`` (a path) or ``field-data`` (base64) as (path, None) or (None, decoded bytes)."""
    data = section.get(f"{field}-data")
    if data:
        try:
            return None, base64.b64decode(data, validate=False)
        except (ValueError, TypeError) as err:
            raise KubeconfigError(f"{field}-data is not base64: {err}") from None
    path: str | None = section.get(field)
    if not path:
        return None, None
    return (path if os.path.isabs(path) else os.path.join(base_dir, path)), None


def _servers(cluster: Mapping[str, Any], server: str) -> tuple[str, ...]:
    """``server`` then the other servers of the cluster's ``SERVERS_EXTENSION``, without repeats."""
    out = [server]
    for entry in cluster.get("extensions") or []:
        if not isinstance(entry, Mapping) or entry.get("name") != SERVERS_EXTENSION:
            continue
        listed = (entry.get("extension") or {}).get("servers") or []
        if not isinstance(listed, list):
            raise KubeconfigError(f"extension {SERVERS_EXTENSION}: servers must be a list of URLs")
        for url in listed:
            if str(url).rstrip("/") not in out:
                out.append(str(url).rstrip("/"))
    return tuple(out) if len(out) > 1 else ()


def load_client_certificate(
    context: ssl.SSLContext,
    *,
    cert_file: str | None,
    key_file: str | None,
    cert_data: bytes | None = None,
    key_data: bytes | None = None,
) -> None:
    """Make ``context`` present the client key pair given as paths and/or in-memory PEM.

    ``ssl`` loads key pairs only from files: in-memory parts are written (0600) into a fresh 0700
    directory that is removed before this returns, whatever happens, so no key material stays on
    disk. Does nothing without a certificate.
    """
    if not (cert_file or cert_data):
        return
    if cert_data is None and key_data is None:
        context.load_cert_chain(str(cert_file), key_file)
        return
    with tempfile.TemporaryDirectory(prefix="raykube-client-cert-") as scratch:

        def spill(name: str, data: bytes) -> str:
            path = os.path.join(scratch, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return path

        cert = spill("client.crt", cert_data) if cert_data is not None else str(cert_file)
        key = spill("client.key", key_data) if key_data is not None else key_file
        context.load_cert_chain(cert, key)


def load_kubeconfig(path: str, context: str | None = None) -> ConnectionSettings:
    """Read ``path`` and return the settings of ``context`` (default: ``current-context``)."""
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    return settings_from_config(config, os.path.dirname(os.path.abspath(path)), context)


def load_kubeconfig_text(text: str, base_dir: str, context: str | None = None) -> ConnectionSettings:
    """Like :func:`load_kubeconfig` for a kubeconfig's text: what an actor is handed when it may run on
    a host without the file (credentials embedded; any paths resolve against ``base_dir``)."""
    return settings_from_config(yaml.safe_load(text) or {}, base_dir, context)


def settings_from_config(
    config: Mapping[str, Any], base_dir: str, context: str | None = None
) -> ConnectionSettings:
    """Like :func:`load_kubeconfig` for an already parsed document; paths resolve against base_dir."""
    context_name = context or config.get("current-context")
    if not context_name:
        raise KubeconfigError("no context given and kubeconfig has no current-context")
    ctx = _named(config.get("contexts"), context_name, "context")
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(config.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} has no server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token_path = user["tokenFile"]
        if not os.path.isabs(token_path):
            token_path = os.path.join(base_dir, token_path)
        with open(token_path, encoding="utf-8") as f:
            token = f.read().strip()
    ca_file, ca_data = _resolve(cluster, "certificate-authority", base_dir)
    cert_file, cert_data = _resolve(user, "client-certificate", base_dir)
    key_file, key_data = _resolve(user, "client-key", base_dir)
    return ConnectionSettings(
        server=server.rstrip("/"),
        servers=_servers(cluster, server.rstrip("/")),
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        ca_data=ca_data,
        cert_data=cert_data,
        key_data=key_data,
        token=token or None,
        namespace=ctx.get("namespace"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
    )
