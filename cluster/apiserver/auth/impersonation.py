"""Impersonation (kube's ``WithImpersonation`` filter): ``Impersonate-User``, ``Impersonate-Group``
(repeatable), ``Impersonate-Uid`` and ``Impersonate-Extra-<key>`` headers make the request act as
another user, when the requester may ``impersonate`` each part:

- a user name → resource ``users`` (core group), or ``serviceaccounts`` in its namespace for
  ``system:serviceaccount:<ns>:<name>`` (which then also gets the account's groups unless groups are
  asked for);
- each group → ``groups``; the uid → ``uids`` and each extra value → ``userextras/<key>``, both in
  ``authentication.k8s.io``.

The first refused part answers 403 with kube's text for it. The impersonated user is in
``system:authenticated`` (``system:unauthenticated`` for ``system:anonymous``) unless either group was
asked for explicitly. Groups, uid or extras without a user are refused (kube answers 500 there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from cluster.apiserver.auth.authorizer import Authorizer, Decision, RequestAttributes, forbidden
from cluster.apiserver.auth.user import (
    ANONYMOUS,
    AUTHENTICATED,
    UNAUTHENTICATED,
    UserInfo,
    service_account_groups,
    split_service_account,
)
from cluster.apiserver.errors import internal

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True, slots=True)
class _Ask:
    """One part to be allowed: kube's ObjectReference in the filter (kind, namespace, name, field)."""

    kind: str  # User, ServiceAccount, Group, UserExtra, UID
    name: str
    namespace: str = ""
    extra_key: str = ""

    def describe(self) -> str:
        return f"{{{self.kind} {self.namespace} {self.name} {self.extra_key}}}"


def requested(headers: CIMultiDictProxy[str] | Mapping[str, str]) -> bool:
    """Whether any impersonation header is present (cheap; the common request has none)."""
    return any(k.lower().startswith("impersonate-") for k in headers)


def _asks(headers: CIMultiDictProxy[str]) -> list[_Ask]:
    asks: list[_Ask] = []
    user = headers.get(USER_HEADER, "")
    if user:
        sa = split_service_account(user)
        asks.append(_Ask("ServiceAccount", sa[1], sa[0]) if sa else _Ask("User", user))
    asks.extend(_Ask("Group", g) for g in headers.getall(GROUP_HEADER, []))
    for header, value in headers.items():
        if header.lower().startswith(EXTRA_PREFIX):
            asks.append(_Ask("UserExtra", value, extra_key=unquote(header[len(EXTRA_PREFIX) :].lower())))
    uid = headers.get(UID_HEADER, "")
    if uid:
        asks.append(_Ask("UID", uid))
    if not user and asks:
        raise internal(f"requested [{' '.join(a.describe() for a in asks)}] without impersonating a user")
    return asks


def _attributes(requester: UserInfo, ask: _Ask) -> RequestAttributes:
    resource, group, sub = {
        "User": ("users", "", ""),
        "ServiceAccount": ("serviceaccounts", "", ""),
        "Group": ("groups", "", ""),
        "UserExtra": ("userextras", AUTHENTICATION_GROUP, ask.extra_key),
        "UID": ("uids", AUTHENTICATION_GROUP, ""),
    }[ask.kind]
    return RequestAttributes(
        user=requester,
        verb="impersonate",
        resource_request=True,
        api_group=group,
        api_version="v1" if group else "",
        resource=resource,
        subresource=sub,
        namespace=ask.namespace,
        name=ask.name,
    )


def impersonate(
    requester: UserInfo, headers: CIMultiDictProxy[str], authorizer: Authorizer
) -> UserInfo | None:
    """The user ``requester`` acts as, None when the request asks for no impersonation; raises the
    403 (``forbidden``) for the first part ``authorizer`` does not allow."""
    asks = _asks(headers)
    if not asks:
        return None
    name, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    groups_given = any(a.kind == "Group" for a in asks)
    for ask in asks:
        attrs = _attributes(requester, ask)
        decision, reason = authorizer.authorize(attrs)
        if decision is not Decision.ALLOW:
            raise forbidden(attrs, reason)
        if ask.kind == "User":
            name = ask.name
        elif ask.kind == "ServiceAccount":
            name = f"system:serviceaccount:{ask.namespace}:{ask.name}"
            if not groups_given:
                groups.extend(service_account_groups(ask.namespace))
        elif ask.kind == "Group":
            groups.append(ask.name)
        elif ask.kind == "UserExtra":
            extra.setdefault(ask.extra_key, []).append(ask.name)
        else:
            uid = ask.name
    if name != ANONYMOUS:
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return UserInfo(name, uid=uid, groups=tuple(groups), extra={k: tuple(v) for k, v in extra.items()})
