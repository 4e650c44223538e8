"""The ServiceAccount controller: every active namespace has a ``default`` ServiceAccount.

As kube-controller-manager's ``serviceaccount`` controller does, it watches namespaces (an added or
updated namespace is checked) and ServiceAccounts (a deleted one puts its namespace back in the queue),
and creates the missing accounts of :data:`DEFAULT_ACCOUNTS` in each namespace whose phase is Active.
A namespace that is terminating gets nothing (the API server would refuse it anyway); an account that
already exists, even one the cache has not shown yet (409 AlreadyExists), is left as it is.

:func:`missing_accounts` is pure; ``ServiceAccountController`` is the shell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext

DEFAULT_ACCOUNTS = ("default",)


def missing_accounts(
    namespace: Mapping[str, Any] | None, existing: Sequence[str], wanted: Sequence[str] = DEFAULT_ACCOUNTS
) -> list[dict[str, Any]]:
    """The ServiceAccounts to create in ``namespace`` (none when it is gone or not Active)."""
    if namespace is None:
        return []
    meta = namespace.get("metadata") or {}
    phase = (namespace.get("status") or {}).get("phase") or "Active"
    if phase != "Active" or meta.get("deletionTimestamp"):
        return []
    have = set(existing)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": meta.get("name")},
        }
        for name in wanted
        if name not in have
    ]


class ServiceAccountController(Controller):
    """Creates the ``default`` ServiceAccount in every active namespace, again when it is deleted."""

    NAME = "serviceaccount"
    COMPONENT = "service-account-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.watch(
            "v1", "namespaces", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )
        self.accounts = self.watch("v1", "serviceaccounts", on_delete=self._account_deleted)

    def _account_deleted(self, account: dict[str, Any]) -> None:
        namespace = (account.get("metadata") or {}).get("namespace")
        if namespace:
            self.enqueue(namespace)

    async def reconcile(self, key: str) -> float | None:
        namespace = self.namespaces.get(None, key)
        existing = [a["metadata"]["name"] for a in self.accounts.list(key)]
        for body in missing_accounts(namespace, existing):
            try:
                await self.client.create("v1", "serviceaccounts", body, key)
            except ApiError as e:
                if e.already_exists:
                    continue
                if e.status == 403 or e.not_found:
                    return None  # the namespace is terminating or gone
                raise
        return None
