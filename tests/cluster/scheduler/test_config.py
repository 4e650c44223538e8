"""KubeSchedulerConfiguration parsing: defaults, merges, weights, args, out-of-tree plugins, errors."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.config import (
    DEFAULT_MULTI_POINT,
    MULTI_POINT,
    ConfigError,
    PluginRef,
    PluginSet,
    build_registry,
    load_config,
    merge_plugin_set,
)
from tests.cluster.scheduler import fakes

DEFAULT_NAMES = [ref.name for ref in DEFAULT_MULTI_POINT]


def test_empty_config_is_the_default_profile() -> None:
    for source in (
        None,
        "",
        {},
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n",
    ):
        config = load_config(source)
        assert len(config.profiles) == 1
        profile = config.profiles[0]
        assert profile.scheduler_name == "default-scheduler"
        assert profile.plugin_set(MULTI_POINT).enabled == DEFAULT_MULTI_POINT
        assert config.percentage_of_nodes_to_score == 0
    weights = {ref.name: ref.weight for ref in DEFAULT_MULTI_POINT if ref.weight}
    assert weights == {
        "TaintToleration": 3,
        "NodeAffinity": 2,
        "NodeResourcesFit": 1,
        "NodeResourcesBalancedAllocation": 1,
        "InterPodAffinity": 2,
        "PodTopologySpread": 2,
    }


@pytest.mark.parametrize(
    ("default", "custom", "expected"),
    [
        pytest.param(
            [PluginRef("A"), PluginRef("B"), PluginRef("C")],
            PluginSet(disabled=("B",)),
            ["A", "C"],
            id="disable-one",
        ),
        pytest.param(
            [PluginRef("A"), PluginRef("B")], PluginSet((PluginRef("X"),), ("*",)), ["X"], id="disable-all"
        ),
        pytest.param(
            [PluginRef("A"), PluginRef("B", 2)],
            PluginSet((PluginRef("X"), PluginRef("B", 5))),
            ["A", "B:5", "X"],
            id="reconfigure-in-place",
        ),
        pytest.param([PluginRef("A")], PluginSet((PluginRef("Z"),)), ["A", "Z"], id="append"),
    ],
)
def test_merge_plugin_set(default: list[PluginRef], custom: PluginSet, expected: list[str]) -> None:
    merged = merge_plugin_set(PluginSet(tuple(default)), custom)
    assert [f"{r.name}:{r.weight}" if r.weight else r.name for r in merged.enabled] == expected


YAML = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
registry:
  - tests.cluster.scheduler.fakes:new
  - {name: Renamed, factory: "tests.cluster.scheduler.fakes:named_new"}
profiles:
  - schedulerName: default-scheduler
  - schedulerName: bin-packer
    percentageOfNodesToScore: 100
    plugins:
      multiPoint:
        enabled:
          - {name: TaintToleration, weight: 7}
        disabled:
          - {name: NodeResourcesBalancedAllocation}
      score:
        disabled:
          - {name: NodeAffinity}
      filter:
        enabled:
          - {name: ModuleNamed}
    pluginConfig:
      - name: NodeResourcesFit
        args:
          apiVersion: kubescheduler.config.k8s.io/v1
          kind: NodeResourcesFitArgs
          scoringStrategy: {type: MostAllocated}
"""


def test_full_config() -> None:
    config = load_config(YAML)
    assert config.percentage_of_nodes_to_score == 30
    assert [p.scheduler_name for p in config.profiles] == ["default-scheduler", "bin-packer"]
    packer = config.profile("bin-packer")
    assert packer is not None and config.profile("nope") is None
    assert packer.percentage_of_nodes_to_score == 100
    multi = packer.plugin_set(MULTI_POINT)
    assert "NodeResourcesBalancedAllocation" not in multi.enabled_names()
    assert PluginRef("TaintToleration", 7) in multi.enabled
    assert multi.enabled_names().index("TaintToleration") == DEFAULT_NAMES.index("TaintToleration")
    assert packer.plugin_set("score").disabled == ("NodeAffinity",)
    assert packer.plugin_set("filter").enabled_names() == ["ModuleNamed"]
    assert packer.args("NodeResourcesFit") == {"scoringStrategy": {"type": "MostAllocated"}}
    assert packer.args("Other") == {}
    assert config.out_of_tree == (
        ("", "tests.cluster.scheduler.fakes:new"),
        ("Renamed", "tests.cluster.scheduler.fakes:named_new"),
    )
    registry = build_registry(config, base={"NodeName": fakes.new})
    assert sorted(registry) == ["ModuleNamed", "NodeName", "Renamed"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("a: [", "not valid YAML", id="yaml"),
        pytest.param("- 1", "configuration: expected dict", id="not-a-mapping"),
        pytest.param({"apiVersion": "kubescheduler.config.k8s.io/v1beta3"}, "apiVersion", id="api-version"),
        pytest.param({"kind": "Pod"}, "kind", id="kind"),
        pytest.param({"percentageOfNodesToScore": 101}, r"range \[0, 100\]", id="percentage"),
        pytest.param({"profiles": [{}, {}]}, "duplicate schedulerName 'default-scheduler'", id="dup-profile"),
        pytest.param(
            {"profiles": [{"plugins": {"fliter": {}}}]},
            r"unknown extension point\(s\) \['fliter'\]",
            id="typo",
        ),
        pytest.param(
            {"profiles": [{"plugins": {"filter": {"enabled": [{"weight": 1}]}}}]},
            r"profiles\[0\].plugins.filter.enabled\[0\].name: required",
            id="no-name",
        ),
        pytest.param(
            {"profiles": [{"plugins": {"filter": {"enabled": [{"name": "A", "weight": 2}]}}}]},
            "weights apply only to score",
            id="filter-weight",
        ),
        pytest.param(
            {"profiles": [{"plugins": {"score": {"enabled": [{"name": "A", "weight": -1}]}}}]},
            "non-negative",
            id="negative-weight",
        ),
        pytest.param(
            {"profiles": [{"plugins": {"score": {"enabled": [{"name": "A"}, {"name": "A"}]}}}]},
            "enabled more than once",
            id="duplicate-plugin",
        ),
        pytest.param(
            {"profiles": [{"pluginConfig": [{"name": "A"}, {"name": "A"}]}]},
            "repeated config for plugin 'A'",
            id="repeated-args",
        ),
        pytest.param({"registry": ["no-colon"]}, r"registry\[0\]", id="registry-path"),
    ],
)
def test_bad_config(source: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(source)


def test_build_registry_errors() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        build_registry(load_config({"registry": ["nowhere:new"]}), base={})
    with pytest.raises(ConfigError, match="already exists"):
        build_registry(
            load_config({"registry": ["tests.cluster.scheduler.fakes:new"]}), base={"ModuleNamed": fakes.new}
        )
