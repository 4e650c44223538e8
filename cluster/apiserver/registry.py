"""The generic registry: create, read, update and delete any built-in kind in the store.

This is Kubernetes' generic registry in small. A write is one chain, readable top to bottom in
``create`` and ``update``:

    decode → admission before validation → validation → admission after validation → storage

Decoding (kind check, name and namespace, server-owned fields, optimistic concurrency, the status
subresource split) and storage (marker keys in the same transaction, conflicts) are the registry's;
the plugins in between and their order are data in ``admission.chain`` (why that order: see there);
validation is the pure ``validation`` package. Deletion's kind rules are in ``deletion``. The
registry answers the plugins' lookups (``get_namespace``, the store's ``exists``); admission never
imports the registry.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cluster.apiserver import deletion
from cluster.apiserver.admission.chain import FIELD_MANAGER_BASELINE, admission_chain
from cluster.apiserver.admission.interfaces import Attributes, Operation, run
from cluster.apiserver.admission.object_meta import drop_empty_metadata
from cluster.apiserver.admission.service_allocation import (
    DEFAULT_SERVICE_NETWORK,
    ServiceNetwork,
    release_keys,
)
from cluster.apiserver.admission_lookups import AdmissionLookups
from cluster.apiserver.context import current_user
from cluster.apiserver.errors import (
    StatusError,
    already_exists,
    bad_request,
    conflict,
    not_found,
)
from cluster.apiserver.patch import update_managed_fields
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import Conflict, ObjectStore, list_prefix, object_key
from cluster.apiserver.validation import invalid_message, status_details, validate_create, validate_update
from cluster.apiserver.watchcache import WatchCache
from cluster.machinery.times import rfc3339

Clock = Callable[[], datetime]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet (no vowels, no 0/1/3)


def utcnow() -> datetime:
    return datetime.now(UTC)


def has_status_subresource(info: ResourceInfo) -> bool:
    return info.subresource("status") is not None


def set_managed_fields(obj: dict[str, Any], managed: list[dict[str, Any]] | None) -> None:
    """Put ``managed`` into ``obj``'s metadata (removing the field when there is none)."""
    meta = obj.setdefault("metadata", {})
    if managed:
        meta["managedFields"] = managed
    else:
        meta.pop("managedFields", None)


def invalid(obj: dict[str, Any], causes: list[Any]) -> StatusError:
    kind = obj.get("kind", "")
    name = obj.get("metadata", {}).get("name", "")
    qualified = (
        kind if "/" not in obj.get("apiVersion", "v1") else f"{kind}.{obj['apiVersion'].split('/')[0]}"
    )
    return StatusError(
        422,
        "Invalid",
        invalid_message(qualified, name, causes),
        details=status_details(qualified, name, causes),
    )


class Registry(AdmissionLookups):
    def __init__(
        self,
        store: ObjectStore,
        clock: Clock = utcnow,
        cache: WatchCache | None = None,
        services: ServiceNetwork = DEFAULT_SERVICE_NETWORK,
        service_accounts: bool = False,
    ) -> None:
        """``service_accounts``: run the ServiceAccount admission plugin (a server that issues
        tokens, with the serviceaccount controller making each namespace's ``default`` account)."""
        self.store = store
        self.clock = clock
        self.cache = cache  # when set, admission reads namespaces from it (live read on a miss)
        self.services = services  # the Service CIDR (ClusterIP allocation, the kubernetes Service)
        self.admission = admission_chain(
            namespaces=self,
            keys=store,
            services=services,
            classes=self,
            lookups=self,
            service_accounts=self if service_accounts else None,
        )

    # ------------------------------------------------------------------ helpers

    def key(self, info: ResourceInfo, namespace: str | None, name: str) -> str:
        return object_key(info, namespace, name)

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
        obj = await self.store.get(self.key(info, namespace, name))
        if obj is None:
            raise not_found(info, name)
        return obj

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        """The Namespace ``name`` for NamespaceLifecycle. Like Kubernetes' plugin: the informer cache
        first, a live read on a miss (a namespace created a moment ago may not have reached the cache
        yet)."""
        ns_info = lookup("", "v1", "namespaces")
        assert ns_info is not None
        key = self.key(ns_info, None, name)
        if self.cache is not None:
            cache = self.cache.for_prefix(list_prefix(ns_info, None))
            if cache.revision:
                cached = cache.objects.get(key)
                if cached is not None:
                    return cached
        return await self.store.get(key)

    async def storage_classes(self) -> list[dict[str, Any]]:
        """Every StorageClass, for DefaultStorageClass and PersistentVolumeClaimResize: read from the
        store, so a class created a moment ago already counts (there are only a few)."""
        sc_info = lookup("storage.k8s.io", "v1", "storageclasses")
        assert sc_info is not None
        return (await self.store.list(list_prefix(sc_info, None))).items

    def _check_kind(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not api_version and not kind:
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            return
        if kind != info.kind or api_version != info.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})"
                if api_version != info.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
            )

    # ------------------------------------------------------------------ create

    async def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        body: dict[str, Any],
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """decode → admission before validation → validation → admission after validation → storage."""
        obj = self._decode_create(info, namespace, body)  # 1. decode
        meta = obj["metadata"]
        now = self.clock()  # one reading per request: creationTimestamp and managedFields agree
        attrs = Attributes(
            Operation.CREATE,
            info,
            meta.get("namespace"),
            meta.get("name") or "",
            obj,
            now,
            dry_run=dry_run,
            user=current_user(),
        )
        # 2. admission before validation (the field manager's baseline is taken after Defaulting)
        baseline_after = FIELD_MANAGER_BASELINE if field_manager else None
        before = await run(self.admission.before_validation, attrs, baseline_after=baseline_after)
        obj = drop_empty_metadata(before.object)
        causes = validate_create(obj, namespaced=info.namespaced)  # 3. validation
        if causes:
            raise invalid(obj, causes)
        # 4. admission after validation (server-set metadata, then what needs it, then allocation)
        after = await run(self.admission.after_validation, dataclasses.replace(attrs, object=obj))
        obj = after.object
        # Like Kubernetes' field manager, which runs after decoding and defaulting but before
        # admission: fields admission adds (a pod's serviceAccount, tolerations, priority, status)
        # are owned by no manager, so a later server-side apply never removes them.
        if before.baseline is not None and field_manager:
            managed = update_managed_fields(
                None, before.baseline, manager=field_manager, operation="Update", now=now
            )
            set_managed_fields(obj, managed["metadata"].get("managedFields"))
        if dry_run:
            return obj
        # 5. storage: the object and its reserved marker keys in one transaction
        name = obj["metadata"]["name"]
        key = self.key(info, obj["metadata"].get("namespace"), name)
        try:
            return await self.store.create(key, obj, [*before.reserve, *after.reserve])
        except Conflict:
            if await self.store.get(key) is not None:
                raise already_exists(info, name) from None
            raise StatusError(
                409,
                "Conflict",
                f"{info.kind} {name}: an allocated address or port was taken concurrently; retry",
            ) from None

    def _decode_create(
        self, info: ResourceInfo, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A copy of ``body`` as a new object of ``info``: kind checked, namespace and name settled,
        the fields only the server sets removed."""
        obj = copy.deepcopy(body)
        self._check_kind(info, obj)
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        for server_field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
            "selfLink",
        ):
            meta.pop(server_field, None)
        return obj

    # ------------------------------------------------------------------ update

    async def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        current: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Replace an object (PUT semantics). ``current`` is the object the caller read, if any.

        decode → admission before validation → validation → admission after validation → storage."""
        new, old = await self._decode_update(info, namespace, name, body, subresource, current)  # 1.
        now = self.clock()
        attrs = Attributes(
            Operation.UPDATE,
            info,
            namespace,
            name,
            new,
            now,
            old_object=old,
            subresource=subresource,
            dry_run=dry_run,
            user=current_user(),
        )
        baseline_after = FIELD_MANAGER_BASELINE if field_manager else None
        before = await run(self.admission.before_validation, attrs, baseline_after=baseline_after)  # 2.
        new = drop_empty_metadata(before.object)
        causes = validate_update(new, old, namespaced=info.namespaced)  # 3.
        if causes:
            raise invalid(new, causes)
        after = await run(self.admission.after_validation, dataclasses.replace(attrs, object=new))  # 4.
        new = after.object
        if before.baseline is not None and field_manager:
            managed = update_managed_fields(
                old,
                before.baseline,
                manager=field_manager,
                operation="Update",
                now=now,
                subresource=subresource or "",
            )
            set_managed_fields(new, managed["metadata"].get("managedFields"))
        if dry_run:
            return new
        rv = int(old["metadata"]["resourceVersion"])  # 5. storage (or removal, when nothing holds it)
        if (
            new["metadata"].get("deletionTimestamp")
            and not new["metadata"].get("finalizers")
            and not deletion.waits_for_finalization(info, new)
        ):
            await self._remove(info, new, rv)
            return new
        try:
            return await self.store.update(self.key(info, namespace, name), new, rv)
        except Conflict:
            raise conflict(info, name) from None

    async def _decode_update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        subresource: str | None,
        current: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(new, old): a copy of ``body`` checked against the URL and the stored object ``old`` (its
        resourceVersion, if given, must match), with the fields the server owns taken from ``old`` and
        the status subresource split applied."""
        new = copy.deepcopy(body)
        self._check_kind(info, new)
        meta = new.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if info.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        old = current if current is not None else await self.get(info, namespace, name)
        old_meta = old["metadata"]
        want_rv = meta.get("resourceVersion")
        if want_rv and want_rv != old_meta.get("resourceVersion"):
            raise conflict(info, name)
        meta["name"] = name
        if info.namespaced:
            meta["namespace"] = namespace
        for fixed in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        if subresource == "status":
            # Status writes change status only (and nothing else, like Kubernetes' status strategy).
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        elif has_status_subresource(info) and "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        elif has_status_subresource(info):
            new.pop("status", None)
        return new, old

    # ------------------------------------------------------------------ delete

    async def delete(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        options: dict[str, Any],
        *,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object. Returns (object, deleted_now)."""
        for _ in range(10):
            obj = await self.get(info, namespace, name)
            meta = obj["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise conflict(
                    info,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{meta.get('uid')}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise conflict(
                    info,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
            user, now = current_user(), self.clock()
            gone = Attributes(Operation.DELETE, info, namespace, name, obj, now, old_object=obj, user=user)
            await run(self.admission.on_delete, gone)  # NodeRestriction: a node's own pods only
            if dry_run:
                return obj, True
            rv = int(meta["resourceVersion"])
            updated = self._deletion_state(info, obj, options)
            if updated is None:
                try:
                    await self._remove(info, obj, rv)
                except Conflict:
                    continue
                return obj, True
            if updated == obj:
                return obj, False
            try:
                stored = await self.store.update(self.key(info, namespace, name), updated, rv)
            except Conflict:
                continue
            return stored, False
        raise conflict(info, name)

    def _deletion_state(
        self, info: ResourceInfo, obj: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The object marked for deletion, or None when it can go now."""
        meta = obj["metadata"]
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = deletion.grace_period(info, obj, options)
        if meta.get("deletionTimestamp"):
            # Already terminating: a shorter grace period may still shorten it; otherwise nothing new.
            if grace == 0 and not finalizers and info.kind == "Pod":
                return None
            return obj
        if not finalizers and not grace and not deletion.waits_for_finalization(info, obj):
            return None
        now = self.clock()
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = rfc3339(now + timedelta(seconds=grace or 0))
        new["metadata"]["deletionGracePeriodSeconds"] = grace or 0
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        return deletion.mark_terminating(info, new)

    async def _remove(self, info: ResourceInfo, obj: dict[str, Any], rv: int) -> None:
        meta = obj["metadata"]
        extra = release_keys(info, obj)
        await self.store.delete(self.key(info, meta.get("namespace"), meta["name"]), rv, extra)
