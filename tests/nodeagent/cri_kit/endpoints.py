"""The kit's endpoint registry: the ``Endpoint`` value and discovery of ``endpoint_*.py`` modules.

See the package docstring for the convention. ``load()`` imports every ``endpoint_*`` module next to
this file and returns them by ``NAME``; ``selected()`` applies ``RAYKUBE_CRI_ENDPOINTS``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

# Pods get a private network namespace: containers of one pod share localhost, other pods cannot reach it.
CAP_POD_NETWORK = "pod-network"
# Containers get their own PID namespace (their command is PID 1).
CAP_PID_NAMESPACE = "pid-namespace"
# The sandbox has its own UTS namespace with the hostname set (``hostname`` prints it).
CAP_UTS = "uts"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a CRI endpoint under test offers."""

    name: str
    socket: str
    # Images holding sh/echo/sleep/cat/pwd/hostname and ``busybox nc``.
    long_image: str
    short_image: str
    # An image the kit may pull and remove; None skips the remove case.
    removable_image: str | None
    # Host directory for the sandboxes' log directories (must be readable by the tests).
    log_root: str
    # A directory that exists inside containers, used as working_dir.
    workdir: str = "/tmp"
    capabilities: frozenset[str] = field(default_factory=frozenset)


EndpointFactory = Callable[[Path], contextlib.AbstractAsyncContextManager[Endpoint]]


def load() -> dict[str, ModuleType]:
    """Every ``endpoint_*`` module of this package, by its ``NAME``."""
    out: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith("endpoint_"):
            mod = importlib.import_module(f"{__package__}.{info.name}")
            out[mod.NAME] = mod
    return out


def selected() -> list[str]:
    """Endpoint names to run: ``RAYKUBE_CRI_ENDPOINTS`` (comma-separated) or all registered."""
    names = list(load())
    want = os.environ.get("RAYKUBE_CRI_ENDPOINTS", "").strip()
    if want:
        names = [n for n in want.split(",") if n]
    return names
