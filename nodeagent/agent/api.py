"""What the node agent needs from the API server, as one small async protocol, and its real implementation.

``AgentApi`` is the seam: generic get/list/create/update/delete over ``(group_version, plural)``, a
merge patch of the ``status`` subresource, and ``pod_feed`` (an informer on this node's pods whose
handlers only enqueue). Errors are ``cluster.client.errors.ApiError`` (``status`` 404 for a missing
object, 409 for a conflict or an existing name); fakes raise the same. ``RestAgentApi`` implements it
over ``cluster.client.rest.ApiClient`` and ``cluster.client.informer.Informer``; the API server
supports the field selector ``spec.nodeName`` on pods (as kube-apiserver does), so the
feed only carries pods bound to this node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from cluster.client.errors import ApiError
from cluster.client.informer import Informer
from cluster.client.rest import ApiClient

PodHandler = Callable[[dict[str, Any]], None]


class PodFeed(Protocol):
    """A cache of this node's pods kept current by a list+watch; handlers run inline and only enqueue."""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...

    async def run(self) -> None:
        """List and watch until cancelled."""
        ...

    async def wait_synced(self, timeout: float | None = None) -> bool: ...


class AgentApi(Protocol):
    def pod_feed(self, node_name: str, on_change: PodHandler, on_delete: PodHandler) -> PodFeed:
        """A feed of pods with ``spec.nodeName == node_name``: ``on_change`` for adds and updates."""
        ...

    async def get(self, group_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        """The object; ``ApiError`` with status 404 when it does not exist."""
        ...

    async def list(
        self, group_version: str, plural: str, namespace: str | None, *, field_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def update(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT; 409 when ``body.metadata.resourceVersion`` is stale."""
        ...

    async def create_subresource(
        self, group_version: str, plural: str, namespace: str | None, name: str, subresource: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        """POST to ``<name>/<subresource>`` (``serviceaccounts/<sa>/token``: a TokenRequest)."""
        ...

    async def patch(
        self, group_version: str, plural: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch of the object (metadata, spec)."""
        ...

    async def patch_status(
        self, group_version: str, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch ``{"status": status}`` of the ``status`` subresource."""
        ...

    async def delete(
        self,
        group_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
    ) -> None:
        """Delete, with ``uid`` as a precondition (409 when the name now holds another object)."""
        ...


class _InformerFeed:
    def __init__(self, informer: Informer) -> None:
        self._informer = informer

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._informer.store.get(namespace, name)

    def list(self) -> list[dict[str, Any]]:
        return list(self._informer.store.list())

    async def run(self) -> None:
        await self._informer.run()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return await self._informer.wait_synced(timeout)


class RestAgentApi:
    """``AgentApi`` over the project's REST client; the caller owns (and closes) ``client``."""

    def __init__(self, client: ApiClient, *, resync_seconds: float = 60.0) -> None:
        self.client = client
        self.resync_seconds = resync_seconds

    def pod_feed(self, node_name: str, on_change: PodHandler, on_delete: PodHandler) -> PodFeed:
        informer = Informer(
            self.client, "v1", "pods", field_selector=f"spec.nodeName={node_name}",
            resync_seconds=self.resync_seconds,
        )  # fmt: skip

        def deleted(obj: dict[str, Any]) -> None:
            on_delete(dict(obj))  # a DeletedFinalStateUnknown tombstone is the last known object

        informer.add_handler(on_add=on_change, on_update=lambda _old, new: on_change(new), on_delete=deleted)
        return _InformerFeed(informer)

    async def get(self, group_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        return await self.client.get(group_version, plural, name, namespace)

    async def list(
        self, group_version: str, plural: str, namespace: str | None, *, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        result = await self.client.list_all(group_version, plural, namespace, field_selector=field_selector)
        return list(result.get("items") or [])

    async def create(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.create(group_version, plural, body, namespace)

    async def update(
        self, group_version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.update(group_version, plural, body, namespace)

    async def create_subresource(
        self, group_version: str, plural: str, namespace: str | None, name: str, subresource: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        body = {**body, "metadata": {**(body.get("metadata") or {}), "name": name}}
        return await self.client.create(group_version, plural, body, namespace, subresource=subresource)

    async def patch(
        self, group_version: str, plural: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.patch(group_version, plural, name, patch, namespace)

    async def patch_status(
        self, group_version: str, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.patch(
            group_version, plural, name, {"status": status}, namespace, subresource="status"
        )

    async def delete(
        self,
        group_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
    ) -> None:
        await self.client.delete(
            group_version, plural, name, namespace,
            grace_period_seconds=grace_period_seconds,
            preconditions={"uid": uid} if uid else None,
        )  # fmt: skip


def not_found(err: BaseException) -> bool:
    """Whether ``err`` is the API's 404."""
    return isinstance(err, ApiError) and err.status == 404
