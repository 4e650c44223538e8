"""The plugin registry: plugin name -> factory ``factory(args, handle)``.

Invariants: names are unique (registering one twice raises ``ValueError``); the default registry is
built from ``cluster.scheduler.plugins.ALL``, a list of modules that each export ``NAME`` and ``new``.
Out-of-tree plugins are loaded by import path ``"package.module:factory"``.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

from cluster.scheduler.framework.interface import PluginFactory

Registry = dict[str, PluginFactory]


def register(registry: Registry, name: str, factory: PluginFactory) -> None:
    """Add ``factory`` under ``name``; raises ``ValueError`` when the name is taken."""
    if name in registry:
        raise ValueError(f"a plugin named {name} already exists")
    registry[name] = factory


def merge(registry: Registry, other: Registry) -> Registry:
    """A new registry with both sets of plugins; raises ``ValueError`` on a name in both."""
    out = dict(registry)
    for name, factory in other.items():
        register(out, name, factory)
    return out


def registry_from_modules(modules: list[types.ModuleType]) -> Registry:
    """A registry from plugin modules that each export ``NAME`` and ``new(args, handle)``."""
    out: Registry = {}
    for module in modules:
        register(out, str(module.NAME), module.new)
    return out


def default_registry() -> Registry:
    """The in-tree plugins listed in ``cluster.scheduler.plugins.ALL``."""
    try:
        plugins = importlib.import_module("cluster.scheduler.plugins")
    except ImportError:
        return {}
    return registry_from_modules(list(getattr(plugins, "ALL", [])))


def load_factory(path: str) -> tuple[str, PluginFactory]:
    """Import ``"package.module:attr"`` and return ``(plugin name, factory)``.

    The name is the factory's ``NAME`` attribute, else its module's ``NAME``. Raises ``ValueError``
    with the path in the message when it cannot be imported or names no callable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"plugin import path {path!r} must look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import plugin module {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"plugin module {module_name!r} has no attribute {attr!r}")
    if not callable(target):
        raise ValueError(f"plugin factory {path!r} is not callable")
    name = getattr(target, "NAME", None) or getattr(module, "NAME", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"plugin factory {path!r} has no NAME (set NAME on the factory or its module)")
    factory: PluginFactory = target
    return name, factory
