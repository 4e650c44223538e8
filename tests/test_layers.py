"""The tree keeps its layers: the rules of tests/layers.py hold for every import (AST only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import layers

ROOT = Path(__file__).resolve().parent.parent


def test_the_tree_keeps_its_layers() -> None:
    found = layers.scan(ROOT)
    assert len(found) > 100, "the scan found almost no imports: is ROOT right?"
    problems = layers.violations(found)
    assert not problems, "imports that break the layers (tests/layers.py):\n" + "\n".join(problems)


def test_every_component_has_its_rules() -> None:
    assert set(layers.COMPONENTS.values()) == set(layers.ALLOWED)
    for name, allowed in layers.ALLOWED.items():
        assert allowed <= set(layers.ALLOWED), name
    assert layers.ALLOWED["machinery"] == frozenset(), "the leaf imports nothing of raykube"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in {p.parent for p in tmp_path.rglob("*.py")}:
        (pkg / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"cluster/machinery/q.py": "", "cluster/client/rest.py": "from cluster.machinery import q\n"},
            [],
            id="client-imports-the-leaf",
        ),
        pytest.param(
            {"cluster/machinery/q.py": "from cluster.client import rest\n", "cluster/client/rest.py": ""},
            ["cluster.machinery.q:1 -> cluster.client.rest: machinery may not import client"],
            id="leaf-imports-client",
        ),
        pytest.param(
            {
                "cluster/apiserver/proxy.py": "from nodeagent.server import relay\n",
                "nodeagent/server/relay.py": "",
            },
            ["cluster.apiserver.proxy:1 -> nodeagent.server.relay: apiserver may not import nodeagent"],
            id="apiserver-imports-the-node-agent",
        ),
        pytest.param(
            {"nodeagent/kubelet/env.py": "from cluster.apiserver.validation import quantity\n"}
            | {"cluster/apiserver/validation/quantity.py": ""},
            [
                "nodeagent.kubelet.env:1 -> cluster.apiserver.validation.quantity: "
                "nodeagent may not import apiserver"
            ],
            id="node-agent-imports-the-apiserver",
        ),
        pytest.param(
            {"cluster/scheduler/core.py": "import ray\n"},
            ["cluster.scheduler.core:1 -> ray: only Ray glue modules import ray or actor modules"],
            id="core-imports-ray",
        ),
        pytest.param(
            {"cluster/scheduler/actor.py": "import ray\n", "cluster/bootstrap.py": "import ray\n"},
            [],
            id="glue-imports-ray",
        ),
        pytest.param(
            {"cluster/apiserver/h.py": "from cluster.store.actor import X\n", "cluster/store/actor.py": ""},
            [
                "cluster.apiserver.h:1 -> cluster.store.actor: "
                "only Ray glue modules import ray or actor modules"
            ],
            id="core-imports-an-actor",
        ),
        pytest.param(
            {
                "cluster/client/a.py": "def f():\n    from cluster.client import b\n",
                "cluster/client/b.py": "",
            },
            [
                "cluster.client.a:2 -> cluster.client.b: import inside a function "
                "(move it to the top, or list it in LAZY)"
            ],
            id="function-local-import",
        ),
        pytest.param(
            {"cluster/cli.py": "def bench():\n    import bench.store\n", "bench/store.py": ""},
            [],
            id="cli-bench-dispatch-is-lazy",
        ),
        pytest.param(
            {"cluster/cli.py": "import bench.store\n", "bench/store.py": ""},
            ["cluster.cli:1 -> bench.store: the CLI imports bench only inside its bench dispatch"],
            id="cli-imports-bench-at-the-top",
        ),
        pytest.param(
            {"cluster/bootstrap.py": "import bench.store\n", "bench/store.py": ""},
            ["cluster.bootstrap:1 -> bench.store: bootstrap may not import bench"],
            id="project-imports-bench",
        ),
        pytest.param(
            {
                "cluster/client/a.py": "from cluster.client import b\n",
                "cluster/client/b.py": "from . import a\n",
            },
            ["cycle: cluster.client.a -> cluster.client.b"],
            id="cycle-with-a-relative-import",
        ),
        pytest.param(
            {
                "cluster/client/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from cluster.client import b\n",
                "cluster/client/b.py": "from cluster.client import a\n",
            },
            [],
            id="type-only-import-closes-no-cycle",
        ),
    ],
)
def test_planted_imports(tmp_path: Path, files: dict[str, str], expected: list[str]) -> None:
    assert layers.violations(layers.scan(_tree(tmp_path, files))) == expected
