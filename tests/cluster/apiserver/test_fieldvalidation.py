"""Server-side field validation against the served schemas."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.errors import StatusError
from cluster.apiserver.fieldvalidation import check, unknown_fields
from cluster.apiserver.resources import lookup

POD = lookup("", "v1", "pods")
DEPLOY = lookup("apps", "v1", "deployments")
assert POD is not None and DEPLOY is not None


def pod(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"any": "label"}, "annotations": {"free": "form"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", **container}], "nodeSelector": {"k": "v"}},
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(pod(), [], id="clean pod"),
        pytest.param(pod(imagee="x"), ["spec.containers[0].imagee"], id="typo in a container"),
        pytest.param(pod(resources={"limits": {"cpu": "1"}}), [], id="quantities in a map"),
        pytest.param(
            pod(ports=[{"containerPort": 80, "protcol": "TCP"}]),
            ["spec.containers[0].ports[0].protcol"],
            id="deep",
        ),
        pytest.param(
            pod(livenessProbe={"httpGet": {"port": "http", "path": "/"}}), [], id="int-or-string port"
        ),
        pytest.param({**pod(), "sepc": {}}, ["sepc"], id="top-level typo"),
    ],
)
def test_unknown_fields_in_pods(obj: dict[str, Any], expected: list[str]) -> None:
    assert POD is not None
    from cluster.apiserver.openapi.schemas import all_schemas, schema_name

    name = schema_name("", "v1", "Pod")
    assert name is not None
    assert unknown_fields(obj, all_schemas()[name][0]) == expected


def test_modes() -> None:
    assert POD is not None
    bad = pod(imagee="x")
    assert check(POD, bad, None) == []
    assert check(POD, bad, "Ignore") == []
    assert check(POD, bad, "Warn") == ['unknown field "spec.containers[0].imagee"']
    with pytest.raises(StatusError) as err:
        check(POD, bad, "Strict")
    assert err.value.code == 400
    assert err.value.message == 'strict decoding error: unknown field "spec.containers[0].imagee"'
    with pytest.raises(StatusError):
        check(POD, bad, "Loose")


def test_deployment_template_is_checked() -> None:
    assert DEPLOY is not None
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "img": "x"}]},
            },
        },
    }
    assert check(DEPLOY, dep, "Warn") == ['unknown field "spec.template.spec.containers[0].img"']
