"""From an HTTP request to what authorization sees (kube's ``RequestInfoFactory``): the verb, and for
``/api/...`` and ``/apis/...`` the group, version, namespace, resource, subresource and name, read
from the path alone (an unknown resource is still a resource request: it is authorised, then 404s).

Verbs: GET on a collection is ``list`` (``watch`` with ``?watch=true`` or the ``/watch/`` prefix),
on one object ``get``; POST ``create``, PUT ``update``, PATCH ``patch``, DELETE ``delete`` (on a
collection ``deletecollection``). A non-resource URL's verb is the lower-case HTTP method. A
list or watch with ``fieldSelector=metadata.name=<name>`` names that object, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping

from cluster.apiserver.auth.authorizer import RequestAttributes
from cluster.apiserver.auth.user import UserInfo

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _exact_name(field_selector: str) -> str:
    """The name a list or watch is restricted to by ``fieldSelector=metadata.name=<name>`` (kube
    authorises it as a request for that one object: a rule's resourceNames, the Node authorizer)."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            value = value.strip()
            if value and value not in (".", "..") and "/" not in value and "%" not in value:
                return value
    return ""


def attributes(method: str, path: str, query: Mapping[str, str], user: UserInfo) -> RequestAttributes:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        rest = []
    if not rest:  # /, /healthz, /api, /apis, /api/v1, /apis/apps/v1, /openapi/v3 ...
        return RequestAttributes(user=user, verb=method.lower(), resource_request=False, path=path)
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method in ("GET", "HEAD"):
        if watch_prefix or query.get("watch") in ("true", "1"):
            verb = "watch"
        else:
            verb = "get" if name else "list"
        if verb in ("list", "watch") and not name:
            name = _exact_name(query.get("fieldSelector", ""))
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _WRITE_VERBS.get(method, method.lower())
    return RequestAttributes(
        user=user,
        verb=verb,
        resource_request=True,
        path=path,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )
