"""An in-memory stand-in for the ``ApiClient`` calls the ReplicaSet controller makes.

Pods live in ``self.pods`` (the "server"); the controller's listers are separate, so a test decides
when the informer "catches up" (:meth:`FakeApi.sync_pods`). JSON patches are applied with the API
server's own implementation, so a failing ``test`` op fails here as it would there.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from cluster.apiserver.patch.errors import PatchError
from cluster.apiserver.patch.json_merge import json_merge_patch
from cluster.apiserver.patch.json_patch import json_patch
from cluster.client.errors import ApiError
from cluster.client.lister import Lister
from tests.cluster.controllers.replicaset.objects import stamp


class FakeApi:
    def __init__(self, replicasets: dict[str, dict[str, Any]] | None = None) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.replicasets: dict[str, dict[str, Any]] = replicasets or {}
        self.calls: list[tuple[str, ...]] = []
        self.create_error: ApiError | None = None
        self.fail_creates_after = 10**9  # creates beyond this many fail with create_error
        self.delete_error: ApiError | None = None
        self._seq = itertools.count(1)
        self._created = 0

    def add_pod(self, pod: dict[str, Any]) -> None:
        self.pods[pod["metadata"]["name"]] = copy.deepcopy(pod)

    def sync_pods(self, lister: Lister) -> None:
        """Make the lister hold exactly the server's pods (an informer that caught up)."""
        lister.replace(copy.deepcopy(list(self.pods.values())))

    # -- ApiClient surface --------------------------------------------------------------------------

    async def create(
        self, group_version: str, plural: str, body: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        assert (group_version, plural) == ("v1", "pods")
        self._created += 1
        if self.create_error is not None and self._created > self.fail_creates_after:
            self.calls.append(("create-failed", body["metadata"]["generateName"]))
            raise self.create_error
        pod = copy.deepcopy(body)
        n = next(self._seq)
        meta = pod["metadata"]
        meta.update(
            name=f"{meta.pop('generateName')}{n:05d}",
            namespace=namespace,
            uid=f"created-{n}",
            resourceVersion=str(100 + n),
            creationTimestamp=stamp(0),
        )
        pod["status"] = {"phase": "Pending"}
        self.pods[meta["name"]] = pod
        self.calls.append(("create", meta["name"]))
        return copy.deepcopy(pod)

    async def get(
        self, group_version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("get", plural, name))
        if plural == "replicasets" and name in self.replicasets:
            return copy.deepcopy(self.replicasets[name])
        raise ApiError(404, "NotFound", f'{plural} "{name}" not found')

    async def patch(
        self,
        group_version: str,
        plural: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("patch", plural, name, subresource or "", patch_type))
        store = self.pods if plural == "pods" else self.replicasets
        if name not in store:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        try:
            patched = (
                json_patch(store[name], patch)
                if patch_type == "json"
                else json_merge_patch(store[name], patch)
            )
        except PatchError as e:
            raise ApiError(e.code, "Invalid", e.message) from None
        store[name] = patched
        return copy.deepcopy(patched)

    async def delete(
        self,
        group_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("delete", name))
        if self.delete_error is not None:
            raise self.delete_error
        pod = self.pods.get(name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        if preconditions and preconditions.get("uid") != pod["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition")
        del self.pods[name]
        return pod

    def made(self, verb: str) -> list[str]:
        return [c[1] for c in self.calls if c[0] == verb]

    def patched(self, plural: str, subresource: str = "") -> list[str]:
        return [c[2] for c in self.calls if c[0] == "patch" and c[1] == plural and c[3] == subresource]
