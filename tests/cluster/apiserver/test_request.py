"""URL paths to targets: ``namespaces/<name>/status`` and ``/finalize`` are the Namespace's own
subresources, every other ``namespaces/<ns>/<resource>`` a resource inside a namespace."""

from __future__ import annotations

import pytest

from cluster.apiserver.errors import StatusError
from cluster.apiserver.request import parse_path


@pytest.mark.parametrize(
    ("group", "parts", "expected"),
    [
        pytest.param("", ["namespaces", "x", "status"], ("namespaces", None, "x", "status"), id="ns-status"),
        pytest.param(
            "", ["namespaces", "x", "finalize"], ("namespaces", None, "x", "finalize"), id="ns-finalize"
        ),
        pytest.param("", ["namespaces", "x"], ("namespaces", None, "x", None), id="ns"),
        pytest.param("", ["namespaces", "x", "pods"], ("pods", "x", None, None), id="pods-in-ns"),
        pytest.param(
            "", ["namespaces", "x", "pods", "p", "status"], ("pods", "x", "p", "status"), id="pod-status"
        ),
        pytest.param("", ["nodes", "n", "status"], ("nodes", None, "n", "status"), id="node-status"),
    ],
)
def test_parse_path(
    group: str, parts: list[str], expected: tuple[str, str | None, str | None, str | None]
) -> None:
    t = parse_path(group, "v1", parts)
    assert (t.info.plural, t.namespace, t.name, t.subresource) == expected


def test_no_namespaced_resource_is_called_status() -> None:
    with pytest.raises(StatusError) as err:
        parse_path("apps", "v1", ["namespaces", "x", "status"])
    assert err.value.code == 404
