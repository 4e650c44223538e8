"""Formatting helpers shared by the Table printers, written to match kubectl's output exactly.

Role: human durations (``5m``, ``3h2m``, ``2d``), ages from ``now``, RFC 3339 parsing, label and
label-selector strings, quantities and column definitions. Pure: the caller passes ``now``.

Invariant: every helper is total over the JSON it may meet (missing keys, ``None``, malformed
timestamps) and returns kubectl's placeholder (``<unknown>``, ``<none>``) instead of raising, because a
Table for a list must never fail because one stored object is odd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from cluster.machinery import times
from cluster.machinery.meta import object_meta

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """One ``TableColumnDefinition``; ``priority`` 1 columns show only with ``-o wide``."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class TablePrinter:
    """How one resource prints: its columns and a pure function from (object, now) to the row's cells.

    ``row`` always returns the wide cells (the server renders wide; kubectl hides priority-1 columns).
    ``conditions`` optionally returns ``TableRowCondition`` dicts (pods mark Completed rows).
    """

    columns: tuple[Column, ...]
    row: Callable[[Obj, datetime], list[Any]]
    conditions: Callable[[Obj], list[dict[str, Any]]] | None = None


@cache
def field_doc(model: str, field: str) -> str:
    """The Kubernetes field description (the Go SwaggerDoc), from the kubernetes client's models.

    ``model`` is the client class name (``V1ObjectMeta``), ``field`` the wire name (``creationTimestamp``).
    Returns "" when unknown, so a column never fails for want of a description.
    """
    from kubernetes.client import models

    cls = getattr(models, model, None)
    if cls is None:
        return ""
    for name, info in cls.model_fields.items():
        if cls.attribute_map.get(name) == field:
            return info.description or ""
    return ""


def name_column() -> Column:
    return Column("Name", "string", field_doc("V1ObjectMeta", "name"), format="name")


def age_column() -> Column:
    return Column("Age", "string", field_doc("V1ObjectMeta", "creationTimestamp"))


def created_at_column() -> Column:
    return Column("Created At", "date", field_doc("V1ObjectMeta", "creationTimestamp"))


def containers_columns(selector_doc: str) -> tuple[Column, ...]:
    return (
        Column("Containers", "string", "Names of each container in the template.", priority=1),
        Column("Images", "string", "Images referenced by each container in the template.", priority=1),
        Column("Selector", "string", selector_doc, priority=1),
    )


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------


def human_duration(seconds_total: float) -> str:
    """kubectl's ``duration.HumanDuration``: coarser with age (``45s``, ``5m10s``, ``3h2m``, ``2d``)."""
    seconds = int(seconds_total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    """kubectl's ``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when unset."""
    when = times.parse_rfc3339(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def age(obj: Obj, now: datetime) -> str:
    return since(object_meta(obj).get("creationTimestamp"), now)


def rfc3339(value: Any) -> str:
    """A timestamp re-rendered in UTC RFC 3339 (``Created At`` cells), ``<unknown>`` when unset."""
    when = times.parse_rfc3339(value)
    if when is None:
        return "<unknown>"
    return times.rfc3339(when)


# ---------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------


def get(obj: Any, *path: str, default: Any = None) -> Any:
    """``obj[path[0]][path[1]]...`` tolerating missing keys and ``None`` on the way."""
    current = obj
    for key in path:
        if not isinstance(current, dict):
            return default
        current = current.get(key)
        if current is None:
            return default
    return current


def name_of(obj: Obj) -> str:
    return str(object_meta(obj).get("name", ""))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return 0


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: ``a=1,b=2`` sorted by key, ``<none>`` when empty."""
    items = as_dict(labels)
    if not items:
        return "<none>"
    return ",".join(f"{k}={items[k]}" for k in sorted(items))


def selector_string(selector: Any) -> str:
    """A ``LabelSelector`` as ``metav1.LabelSelectorAsSelector(...).String()``; "" selects everything."""
    sel = as_dict(selector)
    requirements: list[tuple[str, str]] = []
    for key, value in as_dict(sel.get("matchLabels")).items():
        requirements.append((key, f"{key}={value}"))
    for expr in as_list(sel.get("matchExpressions")):
        key = str(get(expr, "key", default=""))
        op = get(expr, "operator", default="")
        values = ",".join(sorted(str(v) for v in as_list(get(expr, "values"))))
        if op == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            requirements.append((key, key))
        elif op == "DoesNotExist":
            requirements.append((key, f"!{key}"))
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: like ``selector_string`` but ``<none>`` for an empty selector."""
    text = selector_string(selector)
    return text if text else "<none>"


def container_cells(pod_spec: Any) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, each comma-joined."""
    containers = as_list(get(pod_spec, "containers"))
    names = ",".join(str(get(c, "name", default="")) for c in containers)
    images = ",".join(str(get(c, "image", default="")) for c in containers)
    return names, images


def quantity(value: Any) -> str:
    """A resource quantity as stored (``1Gi``), ``0`` when absent."""
    if value is None or value == "":
        return "0"
    return str(value)


def load_balancer_ingress(status: Any) -> str:
    """``loadBalancerStatusStringer`` (wide): ingress IPs and hostnames, comma-joined."""
    parts: list[str] = []
    for ingress in as_list(get(status, "loadBalancer", "ingress")):
        if get(ingress, "ip"):
            parts.append(str(ingress["ip"]))
        elif get(ingress, "hostname"):
            parts.append(str(ingress["hostname"]))
    return ",".join(parts)


_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def access_modes(modes: Any) -> str:
    """``GetAccessModesAsString``: RWO, ROX, RWX, RWOP in that order, comma-joined."""
    present = {str(m) for m in as_list(modes)}
    return ",".join(short for full, short in _ACCESS_MODES if full in present)
