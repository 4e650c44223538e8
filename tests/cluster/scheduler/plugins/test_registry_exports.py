from __future__ import annotations

import pytest

from cluster.scheduler import plugins

BASIC = [
    "NodeName",
    "NodeUnschedulable",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "NodeResourcesBalancedAllocation",
    "DefaultBinder",
]


def test_all_names_are_unique() -> None:
    names = [module.NAME for module in plugins.ALL]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in BASIC])
def test_basic_plugin_is_exported_and_builds(name: str) -> None:
    modules = {module.NAME: module for module in plugins.ALL}
    assert name in modules
    plugin = modules[name].new({}, object())
    assert plugin.name() == name == plugin.NAME
