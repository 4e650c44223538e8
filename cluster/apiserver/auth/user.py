"""The user a request authenticated as (kube's ``user.Info``) and the well-known names of Kubernetes'
built-in users and groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
SERVICE_ACCOUNTS = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
BOOTSTRAPPERS = "system:bootstrappers"
BOOTSTRAP_PREFIX = "system:bootstrap:"
MONITORING = "system:monitoring"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``name`` (unique among users), ``uid`` (may be empty), ``groups``, and ``extra``: what the
    authenticator knows besides (a ServiceAccount token's pod name and uid, ...), as lists of
    strings, as Kubernetes keeps it."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, self.uid, self.groups))

    def to_api(self) -> dict[str, Any]:
        """kube's ``authentication.k8s.io/v1 UserInfo`` (username, uid, groups, extra; empty ones left
        out): what reviews answer, audit events record and a CSR's spec names."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups every token of a ServiceAccount in ``namespace`` carries (besides authenticated)."""
    return (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}")


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:<ns>:<name>``, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def node_of(user: UserInfo) -> str | None:
    """The node a ``system:node:<name>`` user in group ``system:nodes`` speaks for, else None (kube's
    ``nodeidentifier``: both the name prefix and the group are required)."""
    if not user.name.startswith(NODE_PREFIX) or NODES not in user.groups:
        return None
    return user.name[len(NODE_PREFIX) :] or None
