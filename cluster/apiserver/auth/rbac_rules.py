"""RBAC's rule language (kube's ``rbac/v1`` ``PolicyRule`` and ``plugin/pkg/auth/authorizer/rbac``'s
matchers): which rule allows which request, which binding subject is which user, and whether one
set of rules covers another (escalation prevention, ``pkg/registry/rbac/validation``).

Matching, as Kubernetes does it:

* a verb, API group or resource of ``*`` matches anything; otherwise it must be equal;
* a rule's resource ``pods/log`` matches only that subresource; ``*/scale`` matches the ``scale``
  subresource of any resource; ``pods`` never matches ``pods/log``;
* ``resourceNames`` (when not empty) must list the request's name: a list or a create (no name)
  never matches such a rule;
* a non-resource URL matches when equal, or when the rule's URL ends in ``*`` and the path starts
  with what precedes it (``/apis/*`` matches ``/apis/apps/v1``); ``*`` alone matches every path.

Rules are compiled once into ``Rule`` (frozensets) when a role is seen, so checking a request is a
few set lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.apiserver.auth.authorizer import NonResourceRule, RequestAttributes, ResourceRule
from cluster.apiserver.auth.user import UserInfo, service_account_username

ALL = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled ``PolicyRule``; ``raw`` is the rule as stored (for rules reviews and messages)."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    urls: frozenset[str]
    url_prefixes: tuple[str, ...]  # the ``/x/*`` URLs without their ``*``
    raw: Mapping[str, Any]

    def allows(self, attrs: RequestAttributes) -> bool:
        if attrs.verb not in self.verbs and ALL not in self.verbs:
            return False
        if not attrs.resource_request:
            return self._url_matches(attrs.path)
        if attrs.api_group not in self.api_groups and ALL not in self.api_groups:
            return False
        if not self._resource_matches(attrs.resource, attrs.subresource):
            return False
        return not self.resource_names or attrs.name in self.resource_names

    def _resource_matches(self, resource: str, subresource: str) -> bool:
        resources = self.resources
        if ALL in resources:
            return True
        if not subresource:
            return resource in resources
        return f"{resource}/{subresource}" in resources or f"*/{subresource}" in resources

    def _url_matches(self, path: str) -> bool:
        if ALL in self.urls or path in self.urls:
            return True
        return any(path.startswith(prefix) for prefix in self.url_prefixes)


def compile_rule(raw: Mapping[str, Any]) -> Rule:
    urls = frozenset(raw.get("nonResourceURLs") or ())
    return Rule(
        verbs=frozenset(raw.get("verbs") or ()),
        api_groups=frozenset(raw.get("apiGroups") or ()),
        resources=frozenset(raw.get("resources") or ()),
        resource_names=frozenset(raw.get("resourceNames") or ()),
        urls=urls,
        url_prefixes=tuple(u[:-1] for u in urls if u.endswith("*") and u != ALL),
        raw=raw,
    )


def compile_rules(raws: Iterable[Mapping[str, Any]] | None) -> tuple[Rule, ...]:
    return tuple(compile_rule(r) for r in raws or () if isinstance(r, Mapping))


def rules_allow(attrs: RequestAttributes, rules: Iterable[Rule]) -> bool:
    return any(rule.allows(attrs) for rule in rules)


# ---------------------------------------------------------------- subjects


def subject_user(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str] | None:
    """("user"|"group", name) the subject stands for; a ServiceAccount is the user
    ``system:serviceaccount:<ns>:<name>``, its namespace defaulting to the binding's (none for a
    ClusterRoleBinding: such a subject matches nobody, as in Kubernetes)."""
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return "user", name
    if kind == "Group":
        return "group", name
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        if not namespace or not name:
            return None
        return "user", service_account_username(namespace, name)
    return None


def applies_to(user: UserInfo, subject: Mapping[str, Any], binding_namespace: str) -> bool:
    key = subject_user(subject, binding_namespace)
    if key is None:
        return False
    return user.name == key[1] if key[0] == "user" else key[1] in user.groups


def describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    """kube's ``describeSubject``: ``User "alice"``, ``ServiceAccount "name/namespace"``."""
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


# ---------------------------------------------------------------- coverage (escalation checks)


def _breakdown(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A rule as rules of one verb, one group, one resource and at most one name each (kube's
    ``BreakdownRule``), so coverage is checked piece by piece."""
    out: list[dict[str, Any]] = []
    verbs = list(raw.get("verbs") or ())
    for group in raw.get("apiGroups") or ():
        for resource in raw.get("resources") or ():
            for verb in verbs:
                names = raw.get("resourceNames") or ()
                if names:
                    for name in names:
                        out.append(
                            {
                                "verbs": [verb],
                                "apiGroups": [group],
                                "resources": [resource],
                                "resourceNames": [name],
                            }
                        )
                else:
                    out.append({"verbs": [verb], "apiGroups": [group], "resources": [resource]})
    for url in raw.get("nonResourceURLs") or ():
        for verb in verbs:
            out.append({"verbs": [verb], "nonResourceURLs": [url]})
    return out


def _has_all(values: Iterable[str], wanted: Iterable[str]) -> bool:
    values = set(values)
    return ALL in values or set(wanted) <= values


def _resource_covers(owner: Iterable[str], requested: Iterable[str]) -> bool:
    owner = set(owner)
    if ALL in owner:
        return True
    for resource in requested:
        if resource in owner:
            continue
        _, sep, sub = resource.partition("/")
        if sep and f"*/{sub}" in owner:
            continue
        return False
    return True


def _url_covers(owner: Iterable[str], requested: Iterable[str]) -> bool:
    owner = list(owner)
    for url in requested:
        if not any(o in (url, ALL) or (o.endswith("*") and url.startswith(o[:-1])) for o in owner):
            return False
    return True


def _rule_covers(owner: Mapping[str, Any], sub: Mapping[str, Any]) -> bool:
    """kube's ``ruleCovers``: every part of ``sub`` (a broken-down rule) is within ``owner``."""
    if not _has_all(owner.get("verbs") or (), sub.get("verbs") or ()):
        return False
    if sub.get("nonResourceURLs"):
        return _url_covers(owner.get("nonResourceURLs") or (), sub["nonResourceURLs"])
    if not owner.get("resources"):
        return False
    if not _has_all(owner.get("apiGroups") or (), sub.get("apiGroups") or ()):
        return False
    if not _resource_covers(owner.get("resources") or (), sub.get("resources") or ()):
        return False
    owner_names = owner.get("resourceNames") or ()
    return not owner_names or set(sub.get("resourceNames") or ("",)) <= set(owner_names)


def uncovered(
    owner: Sequence[Mapping[str, Any]], requested: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The broken-down pieces of ``requested`` that no rule of ``owner`` covers (empty: covered)."""
    missing: list[dict[str, Any]] = []
    for raw in requested:
        for sub in _breakdown(raw):
            if not any(_rule_covers(o, sub) for o in owner):
                missing.append(sub)
    return missing


def rule_string(raw: Mapping[str, Any]) -> str:
    """kube's ``CompactString``: ``{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}``
    (only the fields that are set; Go's ``%q`` of a string slice)."""
    parts = []
    for field, key in (
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("ResourceNames", "resourceNames"),
        ("Verbs", "verbs"),
    ):
        values = raw.get(key)
        if values:
            parts.append(f"{field}:[{' '.join(chr(34) + v + chr(34) for v in values)}]")
    return "{" + ", ".join(parts) + "}"


def compact(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Broken-down rules with one group, resource and name merged into one rule per (group,
    resource, name), verbs in the order seen (kube's ``CompactRules``, for messages)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for raw in rules:
        if raw.get("nonResourceURLs"):
            out.append(dict(raw))
            continue
        key = (
            tuple(raw.get("apiGroups") or ()),
            tuple(raw.get("resources") or ()),
            tuple(raw.get("resourceNames") or ()),
        )
        if key in merged:
            verbs = merged[key]["verbs"]
            verbs.extend(v for v in raw.get("verbs") or () if v not in verbs)
            continue
        merged[key] = {**raw, "verbs": list(raw.get("verbs") or ())}
        out.append(merged[key])
    return out


def review_rules(rules: Iterable[Rule]) -> tuple[tuple[ResourceRule, ...], tuple[NonResourceRule, ...]]:
    """Rules as a rules review lists them: one resource rule per rule with resources, one
    non-resource rule per rule with URLs (kube's ``RBACAuthorizer.RulesFor``)."""
    resource: list[ResourceRule] = []
    non_resource: list[NonResourceRule] = []
    for rule in rules:
        raw = rule.raw
        if raw.get("resources"):
            resource.append(
                ResourceRule(
                    verbs=tuple(raw.get("verbs") or ()),
                    api_groups=tuple(raw.get("apiGroups") or ()),
                    resources=tuple(raw.get("resources") or ()),
                    resource_names=tuple(raw.get("resourceNames") or ()),
                )
            )
        if raw.get("nonResourceURLs"):
            non_resource.append(
                NonResourceRule(
                    verbs=tuple(raw.get("verbs") or ()), non_resource_urls=tuple(raw["nonResourceURLs"])
                )
            )
    return tuple(resource), tuple(non_resource)
