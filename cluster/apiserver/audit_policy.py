"""The audit policy file (``--audit-policy-file``, ``audit.k8s.io/v1`` Policy): how much of each
request the audit log records.

Rules are tried in order and the first that matches decides the level (kube's ``policy/checker.go``):
``None`` (not logged), ``Metadata`` (who, what, when, the answer's code, never a body), ``Request``
(plus the request's object) or ``RequestResponse`` (plus the response's). A request no rule matches
is not logged. A rule matches when every list it sets matches: ``users``, ``userGroups`` (any of the
user's groups), ``verbs``, and either ``namespaces``/``resources`` (resource requests only;
``resources`` entries name a group, resources such as ``pods``, ``pods/log``, ``*``, ``*/status``
or ``pods/*``, and optionally ``resourceNames``) or ``nonResourceURLs`` (``/healthz``, ``/api*``).
Stages listed in the policy's ``omitStages`` and the rule's are not written; ``omitManagedFields``
(policy-wide, a rule may override it) drops ``metadata.managedFields`` from logged objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

from cluster.apiserver.auth.authorizer import RequestAttributes

API_VERSION = "audit.k8s.io/v1"
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


class Level(IntEnum):
    NONE = 0
    METADATA = 1
    REQUEST = 2
    REQUEST_RESPONSE = 3

    @property
    def text(self) -> str:
        return _LEVEL_NAMES[self]


_LEVEL_NAMES = {
    Level.NONE: "None",
    Level.METADATA: "Metadata",
    Level.REQUEST: "Request",
    Level.REQUEST_RESPONSE: "RequestResponse",
}
_LEVELS = {v: k for k, v in _LEVEL_NAMES.items()}


class AuditPolicyError(ValueError):
    """The policy file is missing, unreadable or invalid (the text says where, as kube does)."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def matches(self, attrs: RequestAttributes) -> bool:
        if self.group != attrs.api_group:
            return False
        if not self.resources:
            return True
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        resource, sub = attrs.resource, attrs.subresource
        combined = f"{resource}/{sub}" if sub else resource
        for res in self.resources:
            if res in (combined, "*"):
                return True
            if sub and res.startswith("*/") and res[2:] == sub:
                return True
            if res.endswith("/*") and res[:-2] == resource:
                return True
        return False


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: Level
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, attrs: RequestAttributes) -> bool:
        user = attrs.user
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not any(g in self.user_groups for g in user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            if not attrs.resource_request:
                return False
            if self.namespaces and attrs.namespace not in self.namespaces:  # "" is the cluster scope
                return False
            return not self.resources or any(gr.matches(attrs) for gr in self.resources)
        if self.non_resource_urls:
            return not attrs.resource_request and any(
                _path_matches(attrs.path, s) for s in self.non_resource_urls
            )
        return True


def _path_matches(path: str, spec: str) -> bool:
    if spec in ("*", path):
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


@dataclass(frozen=True, slots=True)
class RequestAuditConfig:
    """What the policy says for one request."""

    level: Level
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def evaluate(self, attrs: RequestAttributes) -> RequestAuditConfig:
        """The first matching rule's level; ``Level.NONE`` when none matches."""
        for rule in self.rules:
            if rule.matches(attrs):
                omit_mf = (
                    self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                )
                return RequestAuditConfig(rule.level, self.omit_stages | rule.omit_stages, omit_mf)
        return RequestAuditConfig(Level.NONE, self.omit_stages, self.omit_managed_fields)


# ---------------------------------------------------------------------- parsing and validation

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def _supported(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _validate_stages(stages: Any, path: str) -> list[str]:
    return [
        f'{path}[{i}]: Unsupported value: "{s}": supported values: {_supported(STAGES)}'
        for i, s in enumerate(stages or ())
        if s not in STAGES
    ]


def _validate_rule(rule: Any, path: str) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{path}: Invalid value: a rule must be an object"]
    errs: list[str] = []
    level = rule.get("level")
    if not level:
        errs.append(f"{path}.level: Required value")
    elif level not in _LEVELS:
        errs.append(
            f'{path}.level: Unsupported value: "{level}": supported values: {_supported(tuple(_LEVELS))}'
        )
    urls = _strings(rule.get("nonResourceURLs"))
    for i, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            errs.append(
                f'{path}.nonResourceURLs[{i}]: Invalid value: "{url}": '
                "non-resource URL rules must begin with a '/' character"
            )
        if url and "*" in url[:-1]:
            errs.append(
                f'{path}.nonResourceURLs[{i}]: Invalid value: "{url}": '
                "non-resource URL wildcards '*' must be the final character of the rule"
            )
    for gr in rule.get("resources") or ():
        gr = gr if isinstance(gr, dict) else {}
        group = str(gr.get("group") or "")
        if group and not _DNS1123_SUBDOMAIN.match(group):
            errs.append(
                f'{path}.resources.group: Invalid value: "{group}": '
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an "
                "alphanumeric character"
            )
        if gr.get("resourceNames") and not gr.get("resources"):
            errs.append(
                f"{path}.resources.resourceNames: Invalid value: {list(_strings(gr['resourceNames']))}: "
                "using resourceNames requires at least one resource"
            )
    errs += _validate_stages(rule.get("omitStages"), f"{path}.omitStages")
    if urls and (rule.get("resources") or rule.get("namespaces")):
        errs.append(
            f"{path}.nonResourceURLs: Invalid value: {list(urls)}: "
            "rules cannot apply to both regular resources and non-resource URLs"
        )
    return errs


def _rule(raw: dict[str, Any]) -> PolicyRule:
    resources = tuple(
        GroupResources(
            str(gr.get("group") or ""), _strings(gr.get("resources")), _strings(gr.get("resourceNames"))
        )
        for gr in raw.get("resources") or ()
    )
    omit_mf = raw.get("omitManagedFields")
    return PolicyRule(
        level=_LEVELS[raw["level"]],
        users=_strings(raw.get("users")),
        user_groups=_strings(raw.get("userGroups")),
        verbs=_strings(raw.get("verbs")),
        resources=resources,
        namespaces=_strings(raw.get("namespaces")),
        non_resource_urls=_strings(raw.get("nonResourceURLs")),
        omit_stages=frozenset(_strings(raw.get("omitStages"))),
        omit_managed_fields=None if omit_mf is None else bool(omit_mf),
    )


def parse(text: str | bytes, source: str = "the policy") -> Policy:
    """The policy in ``text``; raises AuditPolicyError naming every problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise AuditPolicyError(f"failed decoding file {source!r}: {err}") from None
    if not isinstance(doc, dict):
        raise AuditPolicyError(f"failed decoding file {source!r}: not a YAML or JSON object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "Policy":
        raise AuditPolicyError(
            f'failed decoding file {source!r}: no kind "{doc.get("kind", "")}" is registered for version '
            f'"{doc.get("apiVersion", "")}" (expected apiVersion {API_VERSION}, kind Policy)'
        )
    rules = doc.get("rules") or []
    errs = _validate_stages(doc.get("omitStages"), "omitStages")
    for i, rule in enumerate(rules):
        errs += _validate_rule(rule, f"rules[{i}]")
    if errs:
        raise AuditPolicyError(errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]")
    if not rules:
        raise AuditPolicyError(f"loaded illegal policy with 0 rules from file {source}")
    return Policy(
        rules=tuple(_rule(r) for r in rules),
        omit_stages=frozenset(_strings(doc.get("omitStages"))),
        omit_managed_fields=bool(doc.get("omitManagedFields", False)),
    )


def load(path: Path) -> Policy:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise AuditPolicyError(f'failed to read file path "{path}": {err.strerror}') from None
    return parse(data, str(path))
