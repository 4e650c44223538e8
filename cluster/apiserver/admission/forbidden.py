"""The 403 an admission plugin answers with: Kubernetes' ``admission.NewForbidden``, whose message is
``<resource> "<name>" is forbidden: <reason>`` (``pods "web" is forbidden: ...``)."""

from __future__ import annotations

from cluster.apiserver.admission.interfaces import Attributes
from cluster.apiserver.errors import StatusError, forbidden, qualified_resource


def admission_forbidden(attrs: Attributes, reason: str) -> StatusError:
    """``<resource> "<name>" is forbidden: <reason>``; ``<resource> is forbidden: ...`` without a name."""
    resource = qualified_resource(attrs.resource)
    who = f'{resource} "{attrs.name}"' if attrs.name else resource
    return forbidden(f"{who} is forbidden: {reason}", attrs.resource, attrs.name)
