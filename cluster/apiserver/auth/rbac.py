"""The RBAC authorizer (kube's ``plugin/pkg/auth/authorizer/rbac`` and the rule resolver of
``pkg/registry/rbac/validation``): a request is allowed when some rule of some role bound to the
user allows it, else this authorizer has no opinion (deny by default at the end of the chain).

Where the rules come from:

* every ClusterRoleBinding that names the user (as User, one of its Groups, or as ServiceAccount)
  grants its ClusterRole's rules everywhere;
* a RoleBinding in the request's namespace grants its Role's rules, or its ClusterRole's rules, in
  that namespace only.

The roles and bindings live in ``PolicyIndex``, kept current from the API server's watch cache
(``WatchCache`` listeners: one call per event, a full reload after a relist), with the bindings
indexed by subject, so finding a user's rules never scans all bindings. A user's rules for one
namespace are memoised until the next change to any RBAC object: the request path is then a dict
lookup and a few set lookups per rule.

A role a binding refers to that does not exist is an error, not a failure: the other bindings still
count, and a denial's reason says ``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.apiserver.auth.authorizer import Decision, RequestAttributes, Rules
from cluster.apiserver.auth.rbac_rules import (
    Rule,
    compile_rules,
    describe_subject,
    review_rules,
    subject_user,
)
from cluster.apiserver.auth.user import ANONYMOUS, UserInfo
from cluster.apiserver.resources import lookup
from cluster.apiserver.storage import list_prefix

log = logging.getLogger("raykube.apiserver.rbac")

GROUP = "rbac.authorization.k8s.io"
KINDS = ("clusterroles", "roles", "clusterrolebindings", "rolebindings")
_MEMO_LIMIT = 20_000
_DENIAL_LOG_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Grant:
    """Rules one binding gives a user, with kube's description of the binding (the allowed reason)."""

    rules: tuple[Rule, ...]
    source: str


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def aggregate_errors(errors: Iterable[str]) -> str:
    """kube's ``utilerrors.NewAggregate(...).Error()``: one message as is, several in brackets."""
    unique = list(dict.fromkeys(errors))
    if len(unique) <= 1:
        return unique[0] if unique else ""
    return "[" + ", ".join(unique) + "]"


class PolicyIndex:
    """Roles (compiled) and bindings (indexed by subject) as the watch cache last reported them.
    ``generation`` moves on every change; readers memoise on it."""

    def __init__(self) -> None:
        self.cluster_roles: dict[str, tuple[Rule, ...]] = {}
        self.roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self.bindings: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, ns, name)
        self.by_subject: dict[tuple[str, str, str], set[tuple[str, str, str]]] = {}  # (ns, user|group, name)
        self.generation = 0

    def reload(self, kind: str, objects: Iterable[dict[str, Any]]) -> None:
        if kind == "clusterroles":
            self.cluster_roles.clear()
        elif kind == "roles":
            self.roles.clear()
        else:
            for key in [k for k in self.bindings if k[0] == kind]:
                self._drop_binding(key)
        for obj in objects:
            self.put(kind, obj)
        self.generation += 1

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        namespace, name = _key(obj)
        if kind == "clusterroles":
            self.cluster_roles[name] = compile_rules(obj.get("rules"))
        elif kind == "roles":
            self.roles[(namespace, name)] = compile_rules(obj.get("rules"))
        else:
            key = (kind, namespace, name)
            self._drop_binding(key)
            self.bindings[key] = obj
            for subject in obj.get("subjects") or ():
                who = subject_user(subject, namespace)
                if who is not None:
                    self.by_subject.setdefault((namespace, *who), set()).add(key)
        self.generation += 1

    def remove(self, kind: str, obj: dict[str, Any]) -> None:
        namespace, name = _key(obj)
        if kind == "clusterroles":
            self.cluster_roles.pop(name, None)
        elif kind == "roles":
            self.roles.pop((namespace, name), None)
        else:
            self._drop_binding((kind, namespace, name))
        self.generation += 1

    def _drop_binding(self, key: tuple[str, str, str]) -> None:
        old = self.bindings.pop(key, None)
        if old is None:
            return
        for subject in old.get("subjects") or ():
            who = subject_user(subject, key[1])
            if who is not None:
                keys = self.by_subject.get((key[1], *who))
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self.by_subject[(key[1], *who)]

    def role_rules(self, ref: Mapping[str, Any], namespace: str) -> tuple[Rule, ...] | str:
        """The rules a roleRef names (a Role in ``namespace``), or the error text when missing."""
        kind, name = ref.get("kind"), ref.get("name") or ""
        if kind == "ClusterRole":
            rules = self.cluster_roles.get(name)
            return rules if rules is not None else f'clusterrole.{GROUP} "{name}" not found'
        if kind == "Role":
            rules = self.roles.get((namespace, name))
            return rules if rules is not None else f'role.{GROUP} "{name}" not found'
        return f"unsupported role reference kind: {kind!r}"

    def grants(self, user: UserInfo, namespace: str) -> tuple[tuple[Grant, ...], tuple[str, ...]]:
        """What every binding that applies to ``user`` gives: ClusterRoleBindings, then (for a
        namespace) that namespace's RoleBindings; and the errors met (missing roles)."""
        grants: list[Grant] = []
        errors: list[str] = []
        who = [("user", user.name), *(("group", g) for g in user.groups)]
        scopes = [("clusterrolebindings", "")]
        if namespace:
            scopes.append(("rolebindings", namespace))
        for kind, scope in scopes:
            keys: set[tuple[str, str, str]] = set()
            for w in who:
                keys |= {k for k in self.by_subject.get((scope, *w), ()) if k[0] == kind}
            for key in sorted(keys):
                binding = self.bindings[key]
                ref = binding.get("roleRef") or {}
                rules = self.role_rules(ref, scope)
                if isinstance(rules, str):
                    errors.append(rules)
                    continue
                grants.append(Grant(rules, _describe(binding, user, scope)))
        return tuple(grants), tuple(errors)


def _describe(binding: Mapping[str, Any], user: UserInfo, namespace: str) -> str:
    """kube's binding describer: ``ClusterRoleBinding "x" of ClusterRole "y" to Group "z"``."""
    ref = binding.get("roleRef") or {}
    name = binding.get("metadata", {}).get("name", "")
    subject: Mapping[str, Any] = next(
        (
            s
            for s in binding.get("subjects") or ()
            if (w := subject_user(s, namespace)) is not None
            and (user.name == w[1] if w[0] == "user" else w[1] in user.groups)
        ),
        {},
    )
    head = f'RoleBinding "{name}/{namespace}"' if namespace else f'ClusterRoleBinding "{name}"'
    return (
        f'{head} of {ref.get("kind", "")} "{ref.get("name", "")}" to {describe_subject(subject, namespace)}'
    )


class RBACAuthorizer:
    """``--authorization-mode RBAC``. Feed ``index`` (``policy_watch.follow``) before serving."""

    def __init__(self, index: PolicyIndex | None = None) -> None:
        self.index = index or PolicyIndex()
        self._memo: dict[tuple[str, tuple[str, ...], str], tuple[tuple[Grant, ...], tuple[str, ...]]] = {}
        self._memo_generation = -1
        self._denials_logged: set[tuple[str, ...]] = set()

    def grants(self, user: UserInfo, namespace: str) -> tuple[tuple[Grant, ...], tuple[str, ...]]:
        if self._memo_generation != self.index.generation or len(self._memo) > _MEMO_LIMIT:
            self._memo.clear()
            self._memo_generation = self.index.generation
        key = (user.name, user.groups, namespace)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self.index.grants(user, namespace)
        return found

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        grants, errors = self.grants(attrs.user, attrs.namespace)
        for grant in grants:
            for rule in grant.rules:
                if rule.allows(attrs):
                    return Decision.ALLOW, f"RBAC: allowed by {grant.source}"
        self._log_denial(attrs)
        return Decision.NO_OPINION, f"RBAC: {aggregate_errors(errors)}" if errors else ""

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        grants, errors = self.grants(user, namespace)
        resource, non_resource = review_rules(rule for grant in grants for rule in grant.rules)
        return Rules(resource, non_resource, incomplete=False, error=aggregate_errors(errors))

    def policy_rules(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        """The raw rules ``user`` holds in ``namespace`` (escalation checks compare against them)."""
        grants, errors = self.grants(user, namespace)
        return [dict(rule.raw) for grant in grants for rule in grant.rules], errors

    def _log_denial(self, attrs: RequestAttributes) -> None:
        """Components (``system:`` users) missing a permission are logged once per request shape,
        so a missing rule in the default policy shows up in the API server's log."""
        user = attrs.user.name
        if not user.startswith("system:") or user == ANONYMOUS:
            return
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        shape = (
            user,
            attrs.verb,
            attrs.api_group,
            resource,
            attrs.namespace,
            attrs.path if not resource else "",
        )
        if shape in self._denials_logged:
            return
        if len(self._denials_logged) > _DENIAL_LOG_LIMIT:
            self._denials_logged.clear()
        self._denials_logged.add(shape)
        if attrs.resource_request:
            log.info(
                "RBAC: denied user=%s groups=%s verb=%s resource=%s group=%s namespace=%s name=%s",
                user,
                ",".join(attrs.user.groups),
                attrs.verb,
                resource,
                attrs.api_group or '""',
                attrs.namespace or "-",
                attrs.name or "-",
            )
        else:
            log.info("RBAC: denied user=%s verb=%s path=%s", user, attrs.verb, attrs.path)


def follow(index: PolicyIndex, caches: Any) -> list[Any]:
    """Keep ``index`` current from the watch cache (``WatchCache``): registers a listener on each
    RBAC resource's cache and returns the caches; await ``loaded`` on them before serving."""

    followed = []
    for kind in KINDS:
        info = lookup(GROUP, "v1", kind)
        assert info is not None
        cache = caches.for_prefix(list_prefix(info, None))

        def listener(event: Any, kind: str = kind, cache: Any = cache) -> None:
            if event is None:
                index.reload(kind, cache.objects.values())
            elif event.type == "DELETED":
                index.remove(kind, event.prev)
            else:
                index.put(kind, event.obj)

        cache.listeners.append(listener)
        followed.append((kind, cache))
    return followed


async def loaded(index: PolicyIndex, followed: list[Any], *, consistent: bool = False) -> None:
    """Wait until every followed cache holds its initial list (``consistent``: and every write
    acknowledged before this call), and load what they hold."""
    for kind, cache in followed:
        if consistent:
            await cache.consistent_snapshot()
        else:
            await cache.wait_ready()
        index.reload(kind, cache.objects.values())
