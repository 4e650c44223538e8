"""The plugin registry: unique names, the in-tree default registry, factories by import path."""

from __future__ import annotations

import types

import pytest

from cluster.scheduler.framework.registry import (
    default_registry,
    load_factory,
    merge,
    register,
    registry_from_modules,
)
from tests.cluster.scheduler import fakes


def test_register_rejects_duplicates() -> None:
    registry: dict[str, object] = {}
    register(registry, "A", fakes.new)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a plugin named A already exists"):
        register(registry, "A", fakes.new)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a plugin named A already exists"):
        merge({"A": fakes.new}, {"A": fakes.new})


def test_registry_from_modules() -> None:
    module = types.ModuleType("m")
    module.NAME = "M"  # type: ignore[attr-defined]
    module.new = fakes.new  # type: ignore[attr-defined]
    assert registry_from_modules([module]) == {"M": fakes.new}
    with pytest.raises(ValueError, match="already exists"):
        registry_from_modules([module, module])


def test_default_registry_is_built_from_plugins_all() -> None:
    from cluster.scheduler import plugins

    registry = default_registry()
    assert sorted(registry) == sorted(m.NAME for m in plugins.ALL)
    assert "NodeName" in registry


@pytest.mark.parametrize(
    ("path", "name"),
    [
        pytest.param("tests.cluster.scheduler.fakes:new", "ModuleNamed", id="module-name"),
        pytest.param("tests.cluster.scheduler.fakes:named_new", "FactoryNamed", id="factory-name"),
    ],
)
def test_load_factory(path: str, name: str) -> None:
    loaded_name, factory = load_factory(path)
    assert loaded_name == name and callable(factory)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("no_colon", "must look like", id="no-colon"),
        pytest.param("no.such.module:new", "cannot import", id="missing-module"),
        pytest.param("tests.cluster.scheduler.fakes:nope", "has no attribute", id="missing-attr"),
        pytest.param("tests.cluster.scheduler.fakes:NAME", "not callable", id="not-callable"),
        pytest.param("json:loads", "has no NAME", id="unnamed"),
    ],
)
def test_load_factory_errors(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_factory(path)
