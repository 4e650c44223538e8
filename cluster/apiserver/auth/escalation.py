"""RBAC's escalation prevention (kube's ``pkg/registry/rbac/*/policybased`` and
``validation.ConfirmNoEscalation``): nobody grants through RBAC what they do not hold themselves.

* Creating or updating a Role or ClusterRole is refused when its rules are not all covered by the
  rules the requester holds (in the role's namespace; cluster-wide for a ClusterRole), unless the
  requester may ``escalate`` that role (``rbac.authorization.k8s.io`` ``roles``/``clusterroles``).
* Creating or updating a RoleBinding or ClusterRoleBinding is refused when the referenced role's
  rules are not all held, unless the requester may ``bind`` that role.
* ``system:masters`` is exempt (kube's ``EscalationAllowed``), and so is an update that changes
  only what the garbage collector changes (ownerReferences, finalizers).

It runs as the last plugin before validation, on the object as the request would store it (after a
patch is applied). The API server's own writes (the bootstrap policy) carry no user and are exempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from cluster.apiserver.admission.interfaces import Attributes, Operation, ValidatingPlugin
from cluster.apiserver.auth.authorizer import Authorizer, Decision, RequestAttributes
from cluster.apiserver.auth.rbac import GROUP, RBACAuthorizer
from cluster.apiserver.auth.rbac_rules import compact, rule_string, uncovered
from cluster.apiserver.auth.user import MASTERS, UserInfo
from cluster.apiserver.errors import StatusError

ROLE_KINDS = {"Role": "roles", "ClusterRole": "clusterroles"}
_GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")


def _without_gc_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_FIELDS}
    return {**obj, "metadata": meta}


def only_gc_fields_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return old is not None and _without_gc_fields(old) == _without_gc_fields(new)


def not_held_message(user: UserInfo, missing: list[dict[str, Any]], errors: tuple[str, ...]) -> str:
    groups = "[" + " ".join(f'"{g}"' for g in user.groups) + "]"
    lines = sorted({rule_string(rule) for rule in compact(missing)})
    message = (
        f'user "{user.name}" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n'
        + "\n".join(lines)
    )
    if errors:
        message += f"; resolution errors: [{' '.join(errors)}]"
    return message


class RBACEscalationCheck(ValidatingPlugin):
    NAME: ClassVar[str] = "RBACEscalation"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, authorizer: Authorizer, rbac: RBACAuthorizer) -> None:
        self.authorizer = authorizer
        self.rbac = rbac

    async def validate(self, attrs: Attributes) -> None:
        user = attrs.user
        if user is None or attrs.resource.group != GROUP or attrs.subresource:
            return
        if MASTERS in user.groups or only_gc_fields_changed(attrs.old_object, attrs.object):
            return
        plural, namespace = attrs.resource.plural, attrs.namespace or ""
        if plural in ("roles", "clusterroles"):
            if self._may(user, "escalate", plural, attrs.name, namespace):
                return
            self._confirm(user, namespace, attrs.object.get("rules") or [], plural, attrs.name)
        elif plural in ("rolebindings", "clusterrolebindings"):
            ref = attrs.object.get("roleRef") or {}
            role_plural = ROLE_KINDS.get(ref.get("kind", ""), "")
            if role_plural and self._may(user, "bind", role_plural, ref.get("name", ""), namespace):
                return
            rules = self.rbac.index.role_rules(ref, namespace)
            if isinstance(rules, str):
                kind, _, rest = rules.partition(".")  # the registry's NotFound names the plural
                raise StatusError(400, "BadRequest", f"{kind}s.{rest}")
            self._confirm(user, namespace, [dict(rule.raw) for rule in rules], plural, attrs.name)

    def _may(self, user: UserInfo, verb: str, plural: str, name: str, namespace: str) -> bool:
        asked = RequestAttributes(
            user=user,
            verb=verb,
            resource_request=True,
            api_group=GROUP,
            api_version="v1",
            resource=plural,
            namespace=namespace,
            name=name,
        )
        return self.authorizer.authorize(asked)[0] is Decision.ALLOW

    def _confirm(
        self, user: UserInfo, namespace: str, rules: list[dict[str, Any]], plural: str, name: str
    ) -> None:
        held, errors = self.rbac.policy_rules(user, namespace)
        missing = uncovered(held, rules)
        if not missing:
            return
        message = f'{plural}.{GROUP} "{name}" is forbidden: {not_held_message(user, missing, errors)}'
        raise StatusError(403, "Forbidden", message, details={"name": name, "group": GROUP, "kind": plural})


def with_escalation_check(chain: Any, authorizer: Authorizer, rbac: RBACAuthorizer) -> Any:
    """``chain`` (an ``AdmissionChain``) with the check last before validation."""
    check = RBACEscalationCheck(authorizer, rbac)
    return dataclasses.replace(chain, before_validation=(*chain.before_validation, check))
