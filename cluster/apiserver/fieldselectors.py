"""Which fields each resource supports in ``?fieldSelector=spec.nodeName=n1,status.phase!=Failed``.

Like Kubernetes, each resource supports ``metadata.name`` and ``metadata.namespace`` plus its own
fields; anything else is a 400 ``field label not supported``. The grammar and matching are
``cluster.machinery.fields``; this module holds the per-resource tables and turns errors into 400s.
"""

from __future__ import annotations

from cluster.apiserver.errors import bad_request
from cluster.machinery.fields import FieldSelector, FieldSelectorError, Getter, field_path
from cluster.machinery.fields import parse_field_selector as parse_fields

COMMON: dict[str, Getter] = {
    "metadata.name": field_path("metadata", "name"),
    "metadata.namespace": field_path("metadata", "namespace"),
}

PER_RESOURCE: dict[tuple[str, str], dict[str, Getter]] = {
    ("", "pods"): {
        "spec.nodeName": field_path("spec", "nodeName"),
        "spec.restartPolicy": field_path("spec", "restartPolicy"),
        "spec.schedulerName": field_path("spec", "schedulerName"),
        "spec.serviceAccountName": field_path("spec", "serviceAccountName"),
        "spec.hostNetwork": field_path("spec", "hostNetwork"),
        "status.phase": field_path("status", "phase"),
        "status.podIP": field_path("status", "podIP"),
        "status.nominatedNodeName": field_path("status", "nominatedNodeName"),
    },
    ("", "events"): {
        **{
            f"involvedObject.{f}": field_path("involvedObject", f)
            for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": field_path("reason"),
        "reportingComponent": field_path("reportingComponent"),
        "source": field_path("source", "component"),
        "type": field_path("type"),
    },
    ("events.k8s.io", "events"): {
        **{
            f"regarding.{f}": field_path("regarding", f)
            for f in ("kind", "namespace", "name", "uid", "apiVersion")
        },
        "reason": field_path("reason"),
        "type": field_path("type"),
        "reportingController": field_path("reportingController"),
    },
    ("", "secrets"): {"type": field_path("type")},
    ("", "nodes"): {"spec.unschedulable": field_path("spec", "unschedulable")},
    ("", "namespaces"): {"status.phase": field_path("status", "phase")},
    ("", "replicationcontrollers"): {"status.replicas": field_path("status", "replicas")},
    ("apps", "replicasets"): {"status.replicas": field_path("status", "replicas")},
    ("batch", "jobs"): {"status.successful": field_path("status", "succeeded")},
    ("certificates.k8s.io", "certificatesigningrequests"): {
        "spec.signerName": field_path("spec", "signerName")
    },
}


def parse_field_selector(text: str | None, group: str, plural: str) -> FieldSelector:
    """The selector for a list or watch of ``group``/``plural``; a 400 ``StatusError`` if malformed."""
    try:
        return parse_fields(text, {**COMMON, **PER_RESOURCE.get((group, plural), {})})
    except FieldSelectorError as err:
        raise bad_request(str(err)) from err
