"""NamespaceLifecycle's texts, as kube-apiserver words them."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from cluster.apiserver.errors import StatusError
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, run


class Namespaces:
    def __init__(self, **namespaces: dict[str, Any]) -> None:
        self.namespaces = namespaces

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        return self.namespaces.get(name)


def test_terminating_namespace() -> None:
    plugin = NamespaceLifecycle(
        Namespaces(team={"metadata": {"name": "team"}, "status": {"phase": "Terminating"}})
    )
    assert refused(plugin.validate(attrs(pod()))) == (
        'pods "web" is forbidden: '
        "unable to create new content in namespace team because it is being terminated"
    )


def test_missing_namespace() -> None:
    with pytest.raises(StatusError) as err:
        run(NamespaceLifecycle(Namespaces()).validate(attrs(pod())))
    assert (err.value.code, err.value.message) == (404, 'namespaces "team" not found')


def test_without_a_name_the_resource_alone_is_named() -> None:
    plugin = NamespaceLifecycle(
        Namespaces(team={"metadata": {"name": "team"}, "status": {"phase": "Terminating"}})
    )
    nameless = pod()
    nameless["metadata"]["name"] = ""
    assert refused(plugin.validate(attrs(nameless))).startswith(
        "pods is forbidden: unable to create new content"
    )
