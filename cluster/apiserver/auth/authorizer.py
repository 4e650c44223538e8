"""What an authorizer sees and answers (kube's ``authorizer.Attributes`` and ``Decision``), the chain
that asks several in turn (``--authorization-mode Node,RBAC``), and the 403 Kubernetes writes.

An authorizer is synchronous on purpose: it answers from in-memory state (role caches, the node
graph) that watches keep current, so the request path never waits on the store to authorise.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"  # stop here: no later authorizer is asked
    NO_OPINION = "no-opinion"  # ask the next one; the last one's silence denies


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """One request as authorization sees it (``request_info.attributes`` makes it from HTTP).

    ``resource_request`` false means a non-resource URL (``/healthz``, ``/api``, ``/version``): then
    only ``verb`` (the lower-case HTTP method) and ``path`` matter. For resources, ``namespace`` is
    empty at the cluster scope and ``name`` empty for lists and creates without a name in the path."""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


class Authorizer(Protocol):
    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        """(decision, reason): the reason is appended to the 403's message when not empty."""
        ...


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """One entry of a rules review (``SelfSubjectRulesReview``'s ``resourceRules``)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NonResourceRule:
    verbs: tuple[str, ...]
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rules:
    """What ``RuleResolver.rules_for`` found: ``incomplete`` when some authorizer cannot list what it
    would allow (the Node authorizer), ``error`` names what could not be evaluated."""

    resource: tuple[ResourceRule, ...] = ()
    non_resource: tuple[NonResourceRule, ...] = ()
    incomplete: bool = False
    error: str = ""


class RuleResolver(Protocol):
    def rules_for(self, user: UserInfo, namespace: str) -> Rules: ...


class AlwaysAllow:
    """``--authorization-mode AlwaysAllow``: every authenticated request is allowed (benchmarks'
    baseline; never the default)."""

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        return Decision.ALLOW, ""

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return Rules(
            resource=(ResourceRule(verbs=("*",), api_groups=("*",), resources=("*",)),),
            non_resource=(NonResourceRule(verbs=("*",), non_resource_urls=("*",)),),
        )


class AlwaysDeny:
    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        return Decision.NO_OPINION, "Everything is forbidden."

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return Rules()


class Union:
    """Ask each authorizer in order: the first ALLOW or DENY decides; if all have no opinion the
    request is denied, with their reasons joined, one per line (kube's ``union.New``)."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision, reason = authorizer.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return Decision.NO_OPINION, "\n".join(reasons)  # kube's union joins them by line

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        resource: list[ResourceRule] = []
        non_resource: list[NonResourceRule] = []
        incomplete, errors = False, []
        for authorizer in self.authorizers:
            resolver = getattr(authorizer, "rules_for", None)
            if resolver is None:
                incomplete = True
                continue
            rules: Rules = resolver(user, namespace)
            resource.extend(rules.resource)
            non_resource.extend(rules.non_resource)
            incomplete = incomplete or rules.incomplete
            if rules.error:
                errors.append(rules.error)
        # kube's utilerrors.NewAggregate: one error as is, several in brackets
        error = errors[0] if len(errors) == 1 else ("[" + ", ".join(errors) + "]" if errors else "")
        return Rules(tuple(resource), tuple(non_resource), incomplete, error)


def forbidden_message(attrs: RequestAttributes) -> str:
    """kube-apiserver's ``User "x" cannot <verb> resource "<res>[/<sub>]" in API group "<g>" ...``."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {scope}'


def forbidden(attrs: RequestAttributes, reason: str = "") -> StatusError:
    """The 403 Status kube-apiserver writes when authorization says no: ``<resource>[.<group>]
    ["<name>"] is forbidden: <message>[: <reason>]``, details naming the resource."""
    message = forbidden_message(attrs) + (f": {reason}" if reason else "")
    if not attrs.resource_request or not attrs.resource:
        return StatusError(403, "Forbidden", f"forbidden: {message}", details=None)
    qualified = attrs.resource + (f".{attrs.api_group}" if attrs.api_group else "")
    named = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, str] = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    return StatusError(403, "Forbidden", f"{named} is forbidden: {message}", details=details)
