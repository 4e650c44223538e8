"""Subresources beyond status: scale, binding, eviction, namespace finalize, log/exec, access reviews.

* ``scale`` (autoscaling/v1 Scale) reads and writes ``spec.replicas`` of deployments, replicasets and
  statefulsets, with the selector from ``status`` as Kubernetes reports it.
* ``binding`` sets ``spec.nodeName`` of an unbound pod (409 if already bound): the scheduler's verb.
* ``eviction`` deletes a pod unless a PodDisruptionBudget forbids it (429 TooManyRequests).
  Both live in ``pod_verbs.py``, which also decides their status codes for store failures.
* ``log`` and ``exec`` are proxied to the pod's node agent (``proxy.py``); ``attach`` and
  ``portforward`` answer a clear error.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from aiohttp import web

from cluster.apiserver import tokens
from cluster.apiserver.admission.node_restriction import token_request_refusal
from cluster.apiserver.auth.user import node_of
from cluster.apiserver.context import current_user
from cluster.apiserver.errors import StatusError, conflict, forbidden
from cluster.apiserver.handlers import ResourceAPI
from cluster.apiserver.patch import PatchError, json_merge_patch, json_patch
from cluster.apiserver.pod_verbs import bind_pod, evict_pod
from cluster.apiserver.proxy import NodeProxy, no_agent_error
from cluster.apiserver.request import (
    PATCH_TYPES,
    Target,
    decode_body,
    json_response,
    media_type,
    read_object,
    read_raw,
)
from cluster.apiserver.resources import lookup
from cluster.machinery.times import rfc3339


def _selector_string(selector: dict[str, Any] | None) -> str:
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": _selector_string(obj.get("spec", {}).get("selector")),
        },
    }


class Subresources:
    def __init__(self, api: ResourceAPI, pki_dir: Path | None = None) -> None:
        self.api = api
        self.registry = api.registry
        self.pki_dir = pki_dir
        self._proxy: NodeProxy | None = None

    @property
    def proxy(self) -> NodeProxy:
        # Built on first use: it may issue the kubelet-client certificate into pki_dir.
        if self._proxy is None:
            self._proxy = NodeProxy.from_pki_dir(self.registry, self.pki_dir)
        return self._proxy

    async def token(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        body = await read_object(request)
        sa = await self.registry.get(t.info, t.namespace, t.name)
        if self.pki_dir is None:
            raise StatusError(503, "ServiceUnavailable", "this API server has no service-account signing key")
        spec = body.get("spec") or {}
        await self._node_restriction(spec, t)  # on the request as sent (before the uid is filled in)
        if spec.get("boundObjectRef"):
            spec = {**spec, "boundObjectRef": await self._bound_object(spec["boundObjectRef"], t.namespace)}
        token, exp, seconds = tokens.issue(tokens.signing_key(self.pki_dir), sa, spec)
        return json_response(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": t.name, "namespace": t.namespace, "creationTimestamp": None},
                "spec": {
                    **spec,
                    "expirationSeconds": seconds,
                    "audiences": spec.get("audiences") or [tokens.ISSUER],
                },
                "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
            },
            201,
        )

    async def _node_restriction(self, spec: dict[str, Any], t: Target) -> None:
        """NodeRestriction for TokenRequest: a node gets tokens only bound to a pod running on it."""
        user = current_user()
        node = node_of(user) if user is not None else None
        if node is None:
            return
        ref = spec.get("boundObjectRef") or {}
        pod = None
        if ref.get("kind") == "Pod" and ref.get("name"):
            info = lookup("", "v1", "pods")
            assert info is not None
            pod = await self.registry.get(info, t.namespace, ref["name"])
        refusal = token_request_refusal(node, ref, pod)
        if refusal:
            raise forbidden(f'serviceaccounts "{t.name}" is forbidden: {refusal}', t.info, t.name or "")

    async def _bound_object(self, ref: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        """The token's bound object with its uid (kube's TokenREST): a Pod or a Secret of the account's
        namespace that exists, and has the uid the request names, if it names one."""
        kind, api_version, name = ref.get("kind", ""), ref.get("apiVersion", "v1"), ref.get("name", "")
        if kind not in ("Pod", "Secret") or api_version != "v1":
            group, _, version = api_version.rpartition("/")
            raise StatusError(
                400, "BadRequest", f"cannot bind token to object of type {group}/{version}, Kind={kind}"
            )
        info = lookup("", "v1", "pods" if kind == "Pod" else "secrets")
        assert info is not None
        obj = await self.registry.get(info, namespace, name)
        uid = obj["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise StatusError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind} "{name}": the UID in the bound object reference '
                f"({ref['uid']}) does not match the UID in record ({uid}). The object might have been "
                "deleted and then recreated",
                details={"name": name, "kind": kind},
            )
        return {**ref, "apiVersion": "v1", "uid": uid}

    async def scale(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        if request.method == "GET":
            return json_response(to_scale(await self.registry.get(t.info, t.namespace, t.name)))
        if request.method not in ("PUT", "PATCH"):
            raise StatusError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        # The request body is read once: a PATCH that meets a conflict (a controller writing the
        # object's status meanwhile) is applied again to the newly read object.
        if request.method == "PUT":
            sent = await read_object(request)
        else:
            ptype = PATCH_TYPES.get(media_type(request), "merge")
            patch = decode_body(await read_raw(request), "application/json")
        for _ in range(5):
            current = await self.registry.get(t.info, t.namespace, t.name)
            scale = to_scale(current)
            if request.method == "PUT":
                body = sent
            else:
                try:
                    body = json_patch(scale, patch) if ptype == "json" else json_merge_patch(scale, patch)
                except PatchError as e:
                    raise StatusError(
                        e.code, "BadRequest" if e.code == 400 else "Invalid", e.message
                    ) from None
            want_rv = body.get("metadata", {}).get("resourceVersion")
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise conflict(t.info, t.name)
            replicas = body.get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise StatusError(
                    422,
                    "Invalid",
                    f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                    "must be greater than or equal to 0",
                )
            updated = copy.deepcopy(current)
            updated["spec"]["replicas"] = replicas
            try:
                stored = await self.registry.update(t.info, t.namespace, t.name, updated, current=current)
            except StatusError as e:
                if e.code == 409 and request.method == "PATCH":
                    continue
                raise
            return json_response(to_scale(stored))
        raise conflict(t.info, t.name)

    async def binding(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        await bind_pod(self.registry, t.info, t.namespace, t.name, await read_object(request))
        return json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    async def eviction(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        await evict_pod(self.registry, t.info, t.namespace or "default", t.name, await read_object(request))
        return json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    async def finalize(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        body = await read_object(request)
        ns = await self.registry.get(t.info, None, t.name)
        updated = copy.deepcopy(ns)
        updated.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
        obj = await self.registry.update(t.info, None, t.name, updated, current=ns)
        return json_response(obj)

    async def not_running(self, request: web.Request, t: Target) -> web.Response:
        pod = await self.registry.get(t.info, t.namespace, t.name or "")
        container = request.query.get("container") or next(
            (c["name"] for c in pod.get("spec", {}).get("containers", [])), ""
        )
        raise no_agent_error(t.name or "", container, t.subresource or "")

    async def dispatch(self, request: web.Request, t: Target) -> web.StreamResponse:
        sub = t.subresource
        if sub == "status":
            if request.method == "GET":
                return await self.api.get(request, t)
            return await self.api.dispatch(request, t)
        if sub == "scale":
            return await self.scale(request, t)
        if sub == "binding" and request.method == "POST":
            return await self.binding(request, t)
        if sub == "eviction" and request.method == "POST":
            return await self.eviction(request, t)
        if sub == "token" and request.method == "POST":
            return await self.token(request, t)
        if sub == "finalize" and request.method == "PUT":
            return await self.finalize(request, t)
        if sub == "log" and request.method == "GET":
            return await self.proxy.log(request, t)
        if sub == "exec" and request.method in ("GET", "POST"):
            return await self.proxy.exec(request, t)
        if sub in ("attach", "portforward"):
            return await self.not_running(request, t)
        raise StatusError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
