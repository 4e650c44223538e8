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


def _go_value(value: Any) -> str:
    """A value as kube's field errors print it: strings quoted, nil ``"null"``, structs ``%#v``."""
    if value is None:
        return '"null"'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):  # NonResourceAttributes
        path, verb = value.get("path", ""), value.get("verb", "")
        return f'authorization.NonResourceAttributes{{Path:"{path}", Verb:"{verb}"}}'
    return str(value)


def invalid(kind: str, errors: list[tuple[str, Any, str]]) -> StatusError:
    """kube's 422 for field errors ``(field, value, detail)``, several in brackets."""
    texts = [f"{field}: Invalid value: {_go_value(value)}: {detail}" for field, value, detail in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    causes = [
        {
            "reason": "FieldValueInvalid",
            "message": f"Invalid value: {_go_value(value)}: {detail}",
            "field": field,
        }
        for field, value, detail in errors
    ]
    return StatusError(
        422,
        "Invalid",
        f'{kind}.authorization.k8s.io "" is invalid: {joined}',
        details={"group": "authorization.k8s.io", "kind": kind, "causes": causes},
    )


def spec_errors(spec: dict[str, Any], *, subject: bool) -> list[tuple[str, Any, str]]:
    """kube's ``ValidateSubjectAccessReviewSpec`` (``subject``: user or groups required; the self
    reviews do without)."""
    errors: list[tuple[str, Any, str]] = []
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource and non_resource:
        detail = "cannot be specified in combination with resourceAttributes"
        errors.append(("spec.nonResourceAttributes", non_resource, detail))
    if not resource and not non_resource:
        detail = "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        errors.append(("spec.resourceAttributes", None, detail))
    if subject and not spec.get("user") and not spec.get("groups"):
        errors.append(
            ("spec.user", spec.get("user") or "", "at least one of user or group must be specified")
        )
    return errors


def asked_attributes(spec: dict[str, Any], user: UserInfo) -> RequestAttributes:
    """The question of a (validated) access review's spec, asked as ``user``."""
    resource = spec.get("resourceAttributes")
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
    non_resource = spec.get("nonResourceAttributes") or {}
    return RequestAttributes(
        user=user,
        verb=non_resource.get("verb", ""),
        resource_request=False,
        path=non_resource.get("path", ""),
    )


def _subject(spec: dict[str, Any]) -> UserInfo:
    extra = {k: tuple(v or ()) for k, v in (spec.get("extra") or {}).items()}
    groups = tuple(spec.get("groups") or ())
    return UserInfo(spec.get("user") or "", uid=spec.get("uid") or "", groups=groups, extra=extra)


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
        if errors := spec_errors(spec, subject=False):
            raise invalid(kind, errors)
        status = access_status(authorizer, asked_attributes(spec, user))
    else:
        errors = spec_errors(spec, subject=True)
        if plural == "localsubjectaccessreviews":
            namespace = target.namespace or ""
            metadata["namespace"] = namespace
            asked_ns = (spec.get("resourceAttributes") or {}).get("namespace", "")
            if spec.get("resourceAttributes") and asked_ns != namespace:
                errors.append(
                    ("spec.resourceAttributes.namespace", asked_ns, "must match metadata.namespace")
                )
            if spec.get("nonResourceAttributes"):
                detail = "disallowed on this kind of request"
                errors.append(("spec.nonResourceAttributes", spec["nonResourceAttributes"], detail))
        if errors:
            raise invalid(kind, errors)
        status = access_status(authorizer, asked_attributes(spec, _subject(spec)))
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
