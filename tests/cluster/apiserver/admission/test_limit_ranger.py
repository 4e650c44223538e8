"""LimitRanger: Container defaults (and the annotation), min/max/ratio for containers, pods and
claims, with kube's messages."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.admission.interfaces import Operation
from cluster.apiserver.admission.limit_ranger import ANNOTATION, LimitRanger, LimitRangerValidation, aggregate
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, resource, run

CLAIMS = resource("", "v1", "persistentvolumeclaims")


class Ranges:
    def __init__(self, *items: dict[str, Any]) -> None:
        self.ranges = [{"metadata": {"name": "lr"}, "spec": {"limits": list(items)}}] if items else []

    async def limit_ranges(self, namespace: str) -> list[dict[str, Any]]:
        return self.ranges


def with_resources(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    body = pod()
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    body["spec"]["containers"][0]["resources"] = resources
    return body


def test_defaults_fill_what_the_container_leaves_out() -> None:
    ranges = Ranges(
        {
            "type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "250m"},
        }
    )
    body = with_resources(limits={"memory": "1Gi"})
    body["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    out = run(LimitRanger(ranges).admit(attrs(body))).object
    assert out["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "1Gi", "cpu": "500m"},
        "requests": {"cpu": "250m"},
    }
    assert out["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu request for container web; cpu limit for container web; "
        "cpu request for init container init; cpu, memory limit for init container init"
    )


def test_no_limit_range_changes_nothing() -> None:
    body = pod()
    assert run(LimitRanger(Ranges()).admit(attrs(body))).object == pod()


@pytest.mark.parametrize(
    ("item", "requests", "limits", "message"),
    [
        pytest.param(
            {"type": "Container", "max": {"cpu": "1"}},
            {"cpu": "1"},
            {"cpu": "2"},
            "maximum cpu usage per Container is 1, but limit is 2",
            id="max-limit",
        ),
        pytest.param(
            {"type": "Container", "max": {"cpu": "1"}},
            {"cpu": "1"},
            None,
            "maximum cpu usage per Container is 1.  No limit is specified",
            id="max-no-limit",
        ),
        pytest.param(
            {"type": "Container", "min": {"memory": "64Mi"}},
            {"memory": "32Mi"},
            None,
            "minimum memory usage per Container is 64Mi, but request is 32Mi",
            id="min-request",
        ),
        pytest.param(
            {"type": "Container", "min": {"memory": "64Mi"}},
            None,
            None,
            "minimum memory usage per Container is 64Mi.  No request is specified",
            id="min-no-request",
        ),
        pytest.param(
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
            {"cpu": "250m"},
            {"cpu": "1"},
            "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            id="ratio",
        ),
        pytest.param(
            {"type": "Pod", "max": {"memory": "1Gi"}},
            {"memory": "1Gi"},
            {"memory": "2Gi"},
            "maximum memory usage per Pod is 1Gi, but limit is 2Gi",
            id="pod-max",
        ),
    ],
)
def test_violations(
    item: dict[str, Any], requests: dict[str, str] | None, limits: dict[str, str] | None, message: str
) -> None:
    body = with_resources(requests, limits)
    assert (
        refused(LimitRangerValidation(Ranges(item)).validate(attrs(body)))
        == f'pods "web" is forbidden: {message}'
    )


def test_several_violations_are_bracketed() -> None:
    ranges = Ranges({"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}})
    body = with_resources({"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})
    assert refused(LimitRangerValidation(ranges).validate(attrs(body))) == (
        'pods "web" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, '
        "maximum memory usage per Container is 1Gi, but limit is 2Gi]"
    )
    assert aggregate(["one"]) == "one"


def claim(storage: str) -> dict[str, Any]:
    return {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": storage}}}}


def test_claims_are_checked_on_create_and_update() -> None:
    ranges = Ranges({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}})
    plugin = LimitRangerValidation(ranges)
    run(plugin.validate(attrs(claim("5Gi"), CLAIMS)))
    assert refused(plugin.validate(attrs(claim("500Mi"), CLAIMS))) == (
        'persistentvolumeclaims "data" is forbidden: '
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
    )
    assert refused(plugin.validate(attrs(claim("20Gi"), CLAIMS, operation=Operation.UPDATE))) == (
        'persistentvolumeclaims "data" is forbidden: '
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    )


def test_pods_are_not_checked_on_update() -> None:
    ranges = Ranges({"type": "Container", "max": {"cpu": "1"}})
    run(
        LimitRangerValidation(ranges).validate(
            attrs(with_resources(limits={"cpu": "2"}), operation=Operation.UPDATE)
        )
    )
