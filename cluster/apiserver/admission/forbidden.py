"""The 403 an admission plugin answers with: Kubernetes' ``admission.NewForbidden``, whose message is
``<resource> "<name>" is forbidden: <reason>`` (``pods "web" is forbidden: ...``)."""

from __future__ import annotations

from cluster.apiserver.admission.interfaces import Attributes
from cluster.apiserver.errors import StatusError, forbidden, qualified_resource


def admission_forbidden(attrs: Attributes, reason: str) -> StatusError:
    return forbidden(
        f'{qualified_resource(attrs.resource)} "{attrs.name}" is forbidden: {reason}',
        attrs.resource,
        attrs.name,
    )
