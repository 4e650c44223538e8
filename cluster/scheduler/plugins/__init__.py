"""The in-tree scheduler plugins, one module per plugin, each exporting ``NAME`` and ``new(args, handle)``.

``ALL`` lists the modules for ``framework.registry.default_registry``. The plugins written separately
(InterPodAffinity, PodTopologySpread, DefaultPreemption) are included only once their modules exist, so
neither set of plugins blocks the other.
"""

from __future__ import annotations

import importlib
import types

from cluster.scheduler.plugins import (
    balanced_allocation,
    default_binder,
    node_affinity,
    node_name,
    node_ports,
    node_resources_fit,
    node_unschedulable,
    scheduling_gates,
    taint_toleration,
    volume_binding,
)

_OPTIONAL = ("inter_pod_affinity", "pod_topology_spread", "default_preemption")


def _optional_modules() -> list[types.ModuleType]:
    found: list[types.ModuleType] = []
    for module_name in _OPTIONAL:
        full_name = f"{__name__}.{module_name}"
        try:
            found.append(importlib.import_module(full_name))
        except ModuleNotFoundError as err:
            if err.name != full_name:
                raise  # the plugin exists but one of its own imports is missing: do not hide that

    return found


ALL: list[types.ModuleType] = [
    scheduling_gates,
    node_name,
    node_unschedulable,
    taint_toleration,
    node_affinity,
    node_ports,
    node_resources_fit,
    volume_binding,
    balanced_allocation,
    *_optional_modules(),
    default_binder,
]
