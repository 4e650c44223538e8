"""The ``approval`` subresource of CertificateSigningRequests (``kubectl certificate approve|deny``):
kube's approval strategy and its ``CertificateApproval`` admission check.

A PUT there changes only ``status.conditions`` (the spec and any issued certificate stay); the
requester must be allowed ``approve`` on ``signers`` (group ``certificates.k8s.io``) named for the
request's signer, or for ``<domain>/*``, else 403 ``user not permitted to approve requests with
signerName "<signer>"``. Conditions get their timestamps when the body leaves them out; validation
(Approved and Denied exclude each other, none may be removed) is the kind's update validation.
"""

from __future__ import annotations

import copy

from aiohttp import web

from cluster.apiserver.auth.authorizer import Authorizer, Decision, RequestAttributes
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError
from cluster.apiserver.registry import Registry
from cluster.apiserver.request import Target, json_response, read_object
from cluster.machinery.times import rfc3339


def may_approve(authorizer: Authorizer, user: UserInfo, signer: str) -> bool:
    domain = signer.partition("/")[0]
    for name in (signer, f"{domain}/*"):
        attrs = RequestAttributes(
            user=user,
            verb="approve",
            resource_request=True,
            api_group="certificates.k8s.io",
            api_version="*",
            resource="signers",
            name=name,
        )
        if authorizer.authorize(attrs)[0] is Decision.ALLOW:
            return True
    return False


async def approval(
    request: web.Request, target: Target, user: UserInfo, registry: Registry, authorizer: Authorizer
) -> web.Response:
    assert target.name is not None
    current = await registry.get(target.info, None, target.name)
    if request.method == "GET":
        return json_response(current)
    if request.method != "PUT":
        raise StatusError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
    body = await read_object(request)
    signer = str((current.get("spec") or {}).get("signerName") or "")
    if not may_approve(authorizer, user, signer):
        raise StatusError(
            403,
            "Forbidden",
            f'certificatesigningrequests.certificates.k8s.io "{target.name}" is forbidden: user not '
            f'permitted to approve requests with signerName "{signer}"',
            details={
                "name": target.name,
                "group": "certificates.k8s.io",
                "kind": "certificatesigningrequests",
            },
        )
    want_rv = (body.get("metadata") or {}).get("resourceVersion")
    now = rfc3339(registry.clock())
    old_conditions = {c.get("type"): c for c in (current.get("status") or {}).get("conditions") or []}
    conditions = []
    for cond in (body.get("status") or {}).get("conditions") or []:
        cond = dict(cond)
        old = old_conditions.get(cond.get("type"))
        cond.setdefault("status", "True")
        if not cond.get("lastUpdateTime"):
            cond["lastUpdateTime"] = now
        if not cond.get("lastTransitionTime"):
            same = old is not None and old.get("status") == cond["status"] and old.get("lastTransitionTime")
            cond["lastTransitionTime"] = old["lastTransitionTime"] if same and old else now
        conditions.append(cond)
    new = copy.deepcopy(current)
    if want_rv:
        new["metadata"]["resourceVersion"] = want_rv
    new.setdefault("status", {})["conditions"] = conditions
    updated = await registry.update(
        target.info, None, target.name, new, subresource="status", current=current
    )
    return json_response(updated)
