"""KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1): profiles, plugin sets, plugin args.

``load_config`` turns YAML text or a dict into a validated ``SchedulerConfiguration`` whose profiles have
their plugin sets merged with kube-scheduler's defaults the way kube-scheduler merges them: the default
plugins sit in ``multiPoint``; per extension point, ``disabled`` removes defaults by name (``"*"`` removes
all of them), an ``enabled`` entry naming a default replaces it in place (keeping its position), and
other ``enabled`` entries follow the defaults. Expanding ``multiPoint`` into extension points needs the
plugin instances and is done by the ``Framework``. Bad input raises ``ConfigError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped]

from cluster.scheduler.framework.registry import Registry, default_registry, load_factory, register

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
DEFAULT_SCHEDULER_NAME = "default-scheduler"

EXTENSION_POINTS = (
    "queueSort",
    "preEnqueue",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
)
MULTI_POINT = "multiPoint"


class ConfigError(ValueError):
    """The configuration is malformed; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class PluginRef:
    """A plugin named in a plugin set; ``weight`` matters only for Score (0 means the default, 1)."""

    name: str
    weight: int = 0


@dataclass(frozen=True, slots=True)
class PluginSet:
    enabled: tuple[PluginRef, ...] = ()
    disabled: tuple[str, ...] = ()

    def enabled_names(self) -> list[str]:
        return [ref.name for ref in self.enabled]


# kube-scheduler's default profile (v1), restricted to the plugins raykube implements; PrioritySort is
# the SchedulingQueue itself; VolumeRestrictions, NodeVolumeLimits, VolumeZone and ImageLocality are not
# implemented.
DEFAULT_MULTI_POINT: tuple[PluginRef, ...] = (
    PluginRef("SchedulingGates"),
    PluginRef("NodeUnschedulable"),
    PluginRef("NodeName"),
    PluginRef("TaintToleration", 3),
    PluginRef("NodeAffinity", 2),
    PluginRef("NodePorts"),
    PluginRef("NodeResourcesFit", 1),
    PluginRef("VolumeBinding"),
    PluginRef("PodTopologySpread", 2),
    PluginRef("InterPodAffinity", 2),
    PluginRef("DefaultPreemption"),
    PluginRef("NodeResourcesBalancedAllocation", 1),
    PluginRef("DefaultBinder"),
)


@dataclass(frozen=True, slots=True)
class Profile:
    """One scheduling profile: merged plugin sets per extension point (including ``multiPoint``)."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    plugins: dict[str, PluginSet] = field(default_factory=dict)
    plugin_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None

    def plugin_set(self, point: str) -> PluginSet:
        return self.plugins.get(point, PluginSet())

    def args(self, name: str) -> dict[str, Any]:
        return dict(self.plugin_config.get(name, {}))


@dataclass(frozen=True, slots=True)
class SchedulerConfiguration:
    profiles: tuple[Profile, ...]
    percentage_of_nodes_to_score: int = 0
    # Out-of-tree plugins: (name, "package.module:factory"); an empty name means the factory's NAME.
    out_of_tree: tuple[tuple[str, str], ...] = ()

    def profile(self, scheduler_name: str) -> Profile | None:
        return next((p for p in self.profiles if p.scheduler_name == scheduler_name), None)


def default_profile(scheduler_name: str = DEFAULT_SCHEDULER_NAME) -> Profile:
    return Profile(scheduler_name, {MULTI_POINT: PluginSet(DEFAULT_MULTI_POINT)})


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: expected {names}, got {type(value).__name__}")
    return value


def _plugin_refs(raw: Any, where: str, allow_weight: bool) -> tuple[PluginRef, ...]:
    refs: list[PluginRef] = []
    for index, entry in enumerate(_expect(raw or [], list, where)):
        item = f"{where}[{index}]"
        _expect(entry, dict, item)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{item}.name: required")
        weight = _expect(entry.get("weight", 0) or 0, int, f"{item}.weight")
        if weight < 0:
            raise ConfigError(f"{item}.weight: must be a non-negative integer, got {weight}")
        if weight and not allow_weight:
            raise ConfigError(f"{item}.weight: weights apply only to score and multiPoint plugins")
        refs.append(PluginRef(name, weight))
    return tuple(refs)


def _plugin_set(raw: Any, where: str, allow_weight: bool) -> PluginSet:
    _expect(raw or {}, dict, where)
    raw = raw or {}
    unknown = set(raw) - {"enabled", "disabled"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    enabled = _plugin_refs(raw.get("enabled"), f"{where}.enabled", allow_weight)
    disabled = tuple(ref.name for ref in _plugin_refs(raw.get("disabled"), f"{where}.disabled", False))
    return PluginSet(enabled, disabled)


def merge_plugin_set(default: PluginSet, custom: PluginSet) -> PluginSet:
    """kube-scheduler's merge of a custom plugin set onto the default one (see the module docstring)."""
    disabled = set(custom.disabled) | set(default.disabled)
    custom_index = {ref.name: i for i, ref in enumerate(custom.enabled)}
    replaced: set[int] = set()
    enabled: list[PluginRef] = []
    if "*" not in disabled:
        for ref in default.enabled:
            if ref.name in disabled:
                continue
            if ref.name in custom_index:
                replaced.add(custom_index[ref.name])
                ref = custom.enabled[custom_index[ref.name]]
            enabled.append(ref)
    enabled.extend(ref for i, ref in enumerate(custom.enabled) if i not in replaced)
    return PluginSet(tuple(enabled), (*custom.disabled, *default.disabled))


def _percentage(raw: Any, where: str) -> int:
    value = _expect(raw, int, where)
    if not 0 <= value <= 100:
        raise ConfigError(f"{where}: must be in the range [0, 100], got {value}")
    return int(value)


def _profile(raw: Any, where: str) -> Profile:
    _expect(raw, dict, where)
    name = raw.get("schedulerName") or DEFAULT_SCHEDULER_NAME
    _expect(name, str, f"{where}.schedulerName")
    raw_plugins = _expect(raw.get("plugins") or {}, dict, f"{where}.plugins")
    unknown = set(raw_plugins) - {*EXTENSION_POINTS, MULTI_POINT}
    if unknown:
        raise ConfigError(f"{where}.plugins: unknown extension point(s) {sorted(unknown)}")
    plugins: dict[str, PluginSet] = {}
    for point in (MULTI_POINT, *EXTENSION_POINTS):
        allow_weight = point in (MULTI_POINT, "score")
        custom = _plugin_set(raw_plugins.get(point), f"{where}.plugins.{point}", allow_weight)
        default = PluginSet(DEFAULT_MULTI_POINT) if point == MULTI_POINT else PluginSet()
        merged = merge_plugin_set(default, custom)
        if merged.enabled or merged.disabled:
            plugins[point] = merged
    for point, plugin_set in plugins.items():
        seen: set[str] = set()
        for ref in plugin_set.enabled:
            if ref.name in seen:
                raise ConfigError(f"{where}.plugins.{point}: plugin {ref.name!r} is enabled more than once")
            seen.add(ref.name)
    plugin_config: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(_expect(raw.get("pluginConfig") or [], list, f"{where}.pluginConfig")):
        item = f"{where}.pluginConfig[{index}]"
        _expect(entry, dict, item)
        plugin = entry.get("name")
        if not isinstance(plugin, str) or not plugin:
            raise ConfigError(f"{item}.name: required")
        if plugin in plugin_config:
            raise ConfigError(f"{item}.name: repeated config for plugin {plugin!r}")
        args = _expect(entry.get("args") or {}, dict, f"{item}.args")
        plugin_config[plugin] = {k: v for k, v in args.items() if k not in ("apiVersion", "kind")}
    percentage = raw.get("percentageOfNodesToScore")
    return Profile(
        name,
        plugins,
        plugin_config,
        None if percentage is None else _percentage(percentage, f"{where}.percentageOfNodesToScore"),
    )


def load_config(source: str | dict[str, Any] | None) -> SchedulerConfiguration:
    """Parse and validate a configuration; ``None`` or an empty document gives the default profile.

    Raises ``ConfigError`` for malformed input (the message names the field).
    """
    if isinstance(source, str):
        try:
            raw = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise ConfigError(f"the configuration is not valid YAML: {exc}") from exc
    else:
        raw = source
    raw = _expect(raw or {}, dict, "configuration")
    api_version = raw.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise ConfigError(f"apiVersion: expected {API_VERSION!r}, got {api_version!r}")
    kind = raw.get("kind", KIND)
    if kind != KIND:
        raise ConfigError(f"kind: expected {KIND!r}, got {kind!r}")
    raw_profiles = _expect(raw.get("profiles") or [{}], list, "profiles")
    profiles = tuple(_profile(p, f"profiles[{i}]") for i, p in enumerate(raw_profiles))
    names = [p.scheduler_name for p in profiles]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"profiles: duplicate schedulerName {duplicates[0]!r}")
    out_of_tree: list[tuple[str, str]] = []
    for index, entry in enumerate(_expect(raw.get("registry") or [], list, "registry")):
        name = ""
        if isinstance(entry, dict):
            name = entry.get("name") or ""
            entry = entry.get("factory")
        if not isinstance(entry, str) or ":" not in entry or not isinstance(name, str):
            raise ConfigError(
                f"registry[{index}]: expected an import path 'package.module:factory' "
                "or {name: N, factory: 'package.module:factory'}"
            )
        out_of_tree.append((name, entry))
    return SchedulerConfiguration(
        profiles,
        _percentage(raw.get("percentageOfNodesToScore", 0) or 0, "percentageOfNodesToScore"),
        tuple(out_of_tree),
    )


def build_registry(config: SchedulerConfiguration, base: Registry | None = None) -> Registry:
    """``base`` (default: the in-tree registry) plus the configuration's out-of-tree plugins.

    Raises ``ConfigError`` when an import path cannot be loaded or a name is already taken.
    """
    registry = dict(default_registry() if base is None else base)
    for name, path in config.out_of_tree:
        try:
            loaded_name, factory = load_factory(path)
            register(registry, name or loaded_name, factory)
        except ValueError as exc:
            raise ConfigError(f"registry: {exc}") from exc
    return registry
