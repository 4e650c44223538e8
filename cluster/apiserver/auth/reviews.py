"""Access reviews (``authorization.k8s.io/v1``, kube's ``pkg/registry/authorization``): ask the
authorizer chain a question without doing the request.

* SelfSubjectAccessReview: may I do this? (``kubectl auth can-i``)
* SelfSubjectRulesReview: what may I do in this namespace? (``kubectl auth can-i --list``): the rules
  of every authorizer that can list them; ``incomplete`` when one cannot (the Node authorizer for a
  node), ``evaluationError`` naming what went wrong (a binding to a missing role).
* SubjectAccessReview (cluster scope) and LocalSubjectAccessReview (in a namespace): may this user
  (``spec.user``, ``spec.groups``) do this? The asker needs ``create`` on them, as on any resource:
  the authorize middleware checked that before this runs.

Nothing is stored: each is answered with 201 and the review with its ``status`` filled in.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cluster.apiserver.auth.authorizer import Authorizer, Decision, RequestAttributes, RuleResolver
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError
from cluster.apiserver.request import Target, json_response, read_object

REVIEW_PLURALS = frozenset(
    {
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
    }
)


def _invalid(kind: str, field: str, value: Any, detail: str) -> StatusError:
    message = (
        f'{kind}.authorization.k8s.io "" is invalid: {field}: Invalid value: {_go_value(value)}: {detail}'
    )
    return StatusError(
        422,
        "Invalid",
        message,
        details={
            "group": "authorization.k8s.io",
            "kind": kind,
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {_go_value(value)}: {detail}",
                    "field": field,
                }
            ],
        },
    )


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return "v1.SubjectAccessReviewSpec{...}" if isinstance(value, dict) else str(value)


def asked_attributes(spec: dict[str, Any], user: UserInfo, kind: str) -> RequestAttributes:
    """The question of an access review's spec, asked as ``user``."""
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if bool(resource) == bool(non_resource):
        raise _invalid(
            kind,
            "spec.resourceAttributes",
            spec,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    if resource:
        return RequestAttributes(
            user=user,
            verb=resource.get("verb", ""),
            resource_request=True,
            api_group=resource.get("group", ""),
            api_version=resource.get("version", ""),
            resource=resource.get("resource", ""),
            subresource=resource.get("subresource", ""),
            namespace=resource.get("namespace", ""),
            name=resource.get("name", ""),
        )
    non_resource = non_resource or {}
    return RequestAttributes(
        user=user,
        verb=non_resource.get("verb", ""),
        resource_request=False,
        path=non_resource.get("path", ""),
    )


def _subject(spec: dict[str, Any], kind: str) -> UserInfo:
    if not spec.get("user") and not spec.get("groups"):
        raise _invalid(kind, "spec.user", "", "at least one of user or group must be specified")
    extra = {k: tuple(v or ()) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(
        spec.get("user") or "", uid=spec.get("uid") or "", groups=tuple(spec.get("groups") or ()), extra=extra
    )


def access_status(authorizer: Authorizer, attrs: RequestAttributes) -> dict[str, Any]:
    decision, reason = authorizer.authorize(attrs)
    status: dict[str, Any] = {"allowed": decision is Decision.ALLOW}
    if decision is Decision.DENY:
        status["denied"] = True
    if reason:
        status["reason"] = reason
    return status


def rules_status(resolver: RuleResolver, user: UserInfo, namespace: str) -> dict[str, Any]:
    rules = resolver.rules_for(user, namespace)
    status: dict[str, Any] = {
        "resourceRules": [
            {
                "verbs": list(r.verbs),
                **({"apiGroups": list(r.api_groups)} if r.api_groups else {}),
                **({"resources": list(r.resources)} if r.resources else {}),
                **({"resourceNames": list(r.resource_names)} if r.resource_names else {}),
            }
            for r in rules.resource
        ],
        "nonResourceRules": [
            {
                "verbs": list(r.verbs),
                **({"nonResourceURLs": list(r.non_resource_urls)} if r.non_resource_urls else {}),
            }
            for r in rules.non_resource
        ],
        "incomplete": rules.incomplete,
    }
    if rules.error:
        status["evaluationError"] = rules.error
    return status


async def serve_review(
    request: web.Request, target: Target, user: UserInfo, authorizer: Authorizer
) -> web.Response:
    if request.method != "POST":
        raise StatusError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
    body = await read_object(request)
    spec = dict(body.get("spec") or {})
    plural, kind = target.info.plural, target.info.kind
    metadata: dict[str, Any] = {"creationTimestamp": None}
    if plural == "selfsubjectrulesreviews":
        namespace = spec.get("namespace") or ""
        if not namespace:
            raise StatusError(400, "BadRequest", "no namespace on request")
        resolver: RuleResolver = authorizer  # type: ignore[assignment]  # Union and every mode resolve rules
        status = rules_status(resolver, user, namespace)
    elif plural == "selfsubjectaccessreviews":
        status = access_status(authorizer, asked_attributes(spec, user, kind))
    else:
        subject = _subject(spec, kind)
        attrs = asked_attributes(spec, subject, kind)
        if plural == "localsubjectaccessreviews":
            namespace = target.namespace or ""
            asked_ns = (spec.get("resourceAttributes") or {}).get("namespace")
            if spec.get("nonResourceAttributes"):
                raise _invalid(kind, "spec.nonResourceAttributes", spec, "disallowed on this kind of request")
            if asked_ns and asked_ns != namespace:
                raise StatusError(
                    400,
                    "BadRequest",
                    f"spec.resourceAttributes.namespace must match namespace: {namespace}",
                )
            spec["resourceAttributes"] = {**spec["resourceAttributes"], "namespace": namespace}
            attrs = asked_attributes(spec, subject, kind)
            metadata["namespace"] = namespace
        status = access_status(authorizer, attrs)
    return json_response(
        {
            "kind": kind,
            "apiVersion": target.info.api_version,
            "metadata": metadata,
            "spec": spec,
            "status": status,
        },
        201,
    )
