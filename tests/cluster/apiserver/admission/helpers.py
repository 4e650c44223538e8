"""Shared bits of the admission plugin tests: Attributes for a resource, a pod builder, and the
message of the 403 a plugin raises."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from cluster.apiserver.admission.interfaces import Attributes, Operation
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError
from cluster.apiserver.resources import ResourceInfo, lookup

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T = TypeVar("T")


def resource(group: str, version: str, plural: str) -> ResourceInfo:
    info = lookup(group, version, plural)
    assert info is not None
    return info


PODS = resource("", "v1", "pods")


def attrs(
    obj: dict[str, Any],
    info: ResourceInfo = PODS,
    *,
    operation: Operation = Operation.CREATE,
    namespace: str | None = "team",
    old: dict[str, Any] | None = None,
    subresource: str | None = None,
    user: UserInfo | None = None,
    dry_run: bool = False,
) -> Attributes:
    name = (obj.get("metadata") or {}).get("name") or ""
    return Attributes(
        operation,
        info,
        namespace,
        name,
        obj,
        NOW,
        old_object=old,
        subresource=subresource,
        user=user,
        dry_run=dry_run,
    )


def pod(name: str = "web", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": name, "image": "busybox"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team"}, "spec": body}


def run(awaitable: Awaitable[T]) -> T:
    return asyncio.run(awaitable)  # type: ignore[arg-type]


def refused(awaitable: Awaitable[Any]) -> str:
    """The message of the 403 ``awaitable`` raises."""
    with pytest.raises(StatusError) as err:
        run(awaitable)
    assert err.value.code == 403, err.value.message
    return err.value.message
