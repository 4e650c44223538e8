"""Kubeconfig parsing: pick a context and resolve its cluster and user into connection settings.

Certificate fields may be paths (relative paths resolve against the kubeconfig's directory, as
kubectl does) or inline base64 ``-data`` fields; inline data is written to private temp files
because ``ssl`` loads certificates from files. ``token`` and ``tokenFile`` give a bearer token.
Returns plain values; opening connections is :class:`cluster.client.rest.ApiClient`'s job.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]


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
    temp_files: tuple[str, ...] = ()  # written from -data fields; the caller may delete them once loaded


def _named(entries: list[Mapping[str, Any]] | None, name: str, what: str) -> Mapping[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return entry.get(what) or {}
    raise KubeconfigError(f"kubeconfig has no {what} named {name!r}")


def _materialize(section: Mapping[str, Any], field: str, base_dir: str, suffix: str) -> str | None:
    """Resolve ``field`` (a path) or ``field-data`` (base64) to a file path."""
    data = section.get(f"{field}-data")
    if data:
        try:
            raw = base64.b64decode(data, validate=False)
        except (ValueError, TypeError) as err:
            raise KubeconfigError(f"{field}-data is not base64: {err}") from None
        fd, written = tempfile.mkstemp(prefix="raykube-kubeconfig-", suffix=suffix)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        return written
    path: str | None = section.get(field)
    if not path:
        return None
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def load_kubeconfig(path: str, context: str | None = None) -> ConnectionSettings:
    """Read ``path`` and return the settings of ``context`` (default: ``current-context``)."""
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    return settings_from_config(config, os.path.dirname(os.path.abspath(path)), context)


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
    ca_file = _materialize(cluster, "certificate-authority", base_dir, ".crt")
    cert_file = _materialize(user, "client-certificate", base_dir, ".crt")
    key_file = _materialize(user, "client-key", base_dir, ".key")
    temp_files = tuple(
        path
        for path, section, field in (
            (ca_file, cluster, "certificate-authority"),
            (cert_file, user, "client-certificate"),
            (key_file, user, "client-key"),
        )
        if path and section.get(f"{field}-data")
    )
    return ConnectionSettings(
        server=server.rstrip("/"),
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        temp_files=temp_files,
        token=token or None,
        namespace=ctx.get("namespace"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
    )
