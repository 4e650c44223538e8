"""A container's final argv, environment and working directory, as the kubelet computes them.

Inputs are the pod and container (JSON dicts), the ConfigMaps and Secrets of the pod's namespace the
caller fetched, the node's allocatable resources, the pod's IPs and the image's defaults; the output is
a ``ContainerCommand`` value. Nothing here does I/O.

Invariants, as Kubernetes defines them:
- ``command`` replaces the image ENTRYPOINT, ``args`` replaces its CMD; with ``command`` set and no
  ``args`` the image CMD is dropped.
- ``$(VAR)`` expands against the variables defined so far; an undefined reference stays literal; ``$$``
  is a literal ``$``. Values from ``valueFrom`` are never expanded.
- Order: every ``envFrom`` source in order (keys sorted within a source, prefix prepended), then ``env``
  in order; a later definition overrides an earlier one in place.
- A missing non-optional ConfigMap/Secret (or key) raises ``CreateContainerConfigError`` with the
  kubelet's message (``configmap "x" not found``); the pod worker reports it as the container's waiting
  reason ``CreateContainerConfigError``.

Of Kubernetes' service environment variables only the API server's are produced, as the kubelet
gives them to every pod whatever ``enableServiceLinks`` says (``KUBERNETES_SERVICE_HOST``,
``KUBERNETES_SERVICE_PORT``, ``KUBERNETES_PORT_443_TCP`` ...: ``master_service_env``): they come first,
so ``env`` may override them and ``$(KUBERNETES_SERVICE_HOST)`` expands; other Services' ``FOO_SERVICE_HOST``
variables are deliberately not produced.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cluster.machinery.quantity import QuantityError, parse_quantity

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"


class CreateContainerConfigError(Exception):
    """The container's configuration cannot be built; ``str(err)`` is the kubelet's message."""

    reason = CREATE_CONTAINER_CONFIG_ERROR


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What the image says to run when the pod does not: ENTRYPOINT, CMD, WorkingDir, Env."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EnvSources:
    """The outside facts env resolution may read; the caller fetches them before calling."""

    config_maps: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    secrets: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    node_allocatable: Mapping[str, Any] = field(default_factory=dict)
    host_ips: tuple[str, ...] = ()
    pod_ips: tuple[str, ...] = ()
    service_env: tuple[tuple[str, str], ...] = ()  # the kubernetes Service's (master_service_env)


@dataclass(frozen=True, slots=True)
class ContainerCommand:
    """What the runtime runs: the full argv, the env in order, the working directory (may be empty)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str


def master_service_env(service: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The variables the kubelet derives from the ``default/kubernetes`` Service (its ``https`` port)."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP")
    ports = spec.get("ports") or []
    if not ip or ip == "None" or not ports:
        return ()
    env = [("KUBERNETES_SERVICE_HOST", str(ip)), ("KUBERNETES_SERVICE_PORT", str(ports[0].get("port")))]
    for port in ports:
        if port.get("name"):
            env.append(
                (f"KUBERNETES_SERVICE_PORT_{str(port['name']).upper().replace('-', '_')}", str(port["port"]))
            )
    first = ports[0]
    protocol = str(first.get("protocol") or "TCP")
    env.append(("KUBERNETES_PORT", f"{protocol.lower()}://{ip}:{first['port']}"))
    for port in ports:
        proto = str(port.get("protocol") or "TCP")
        prefix = f"KUBERNETES_PORT_{port['port']}_{proto.upper()}"
        env += [
            (prefix, f"{proto.lower()}://{ip}:{port['port']}"),
            (f"{prefix}_PROTO", proto.lower()),
            (f"{prefix}_PORT", str(port["port"])),
            (f"{prefix}_ADDR", str(ip)),
        ]
    return tuple(env)


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand ``$(VAR)`` references in ``text``; ``$$`` is an escaped ``$``; other ``$`` stay as they are."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # incomplete reference: keep "$(" and carry on after it
                out.append("$(")
                i += 2
            else:
                out.append(mapping(text[i + 2 : close]))
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """A lookup over ``contexts`` in order; an unknown name maps back to its literal ``$(name)``."""

    def lookup(name: str) -> str:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"

    return lookup


def expand_command_and_args(
    container: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The container's ``command`` and ``args`` with ``$(VAR)`` expanded against ``env``."""
    lookup = mapping_for(env)
    command = tuple(expand(str(c), lookup) for c in container.get("command") or ())
    args = tuple(expand(str(a), lookup) for a in container.get("args") or ())
    return command, args


def final_argv(command: Sequence[str], args: Sequence[str], image: ImageConfig) -> tuple[str, ...]:
    """Docker/OCI semantics: command replaces ENTRYPOINT (and drops CMD), args replaces CMD."""
    if command:
        return (*command, *args)
    if args:
        return (*image.entrypoint, *args)
    return (*image.entrypoint, *image.cmd)


def make_environment(
    pod: Mapping[str, Any], container: Mapping[str, Any], sources: EnvSources
) -> dict[str, str]:
    """The container's variables in definition order (dicts keep insertion order).

    Raises ``CreateContainerConfigError`` for a missing non-optional ConfigMap, Secret or key, and for
    an unsupported fieldRef or resourceFieldRef.
    """
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    env: dict[str, str] = dict(sources.service_env)
    for src in container.get("envFrom") or ():
        prefix = src.get("prefix") or ""
        if "configMapRef" in src:
            ref = src["configMapRef"]
            cm = _lookup(sources.config_maps, "configmap", ref)
            if cm is None:
                continue
            for key in sorted(cm.get("data") or {}):
                env[prefix + key] = str(cm["data"][key])
        elif "secretRef" in src:
            ref = src["secretRef"]
            secret = _lookup(sources.secrets, "secret", ref)
            if secret is None:
                continue
            for key in sorted(secret.get("data") or {}):
                env[prefix + key] = _b64(secret["data"][key])
    for var in container.get("env") or ():
        name = var["name"]
        value_from = var.get("valueFrom")
        if value_from is None:
            raw = var.get("value") or ""
            env[name] = expand(raw, mapping_for(env)) if raw else ""
            continue
        resolved = _value_from(pod, container, value_from, namespace, sources)
        if resolved is not None:
            env[name] = resolved
    return env


def container_command(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    sources: EnvSources,
    image: ImageConfig = ImageConfig(),
) -> ContainerCommand:
    """Everything the runtime needs to start ``container``: argv, env (image env first), workingDir."""
    env = make_environment(pod, container, sources)
    command, args = expand_command_and_args(container, env)
    merged = dict(image.env)
    merged.update(env)
    return ContainerCommand(
        argv=final_argv(command, args, image),
        env=tuple(merged.items()),
        working_dir=container.get("workingDir") or image.working_dir,
    )


def _lookup(
    objects: Mapping[str, dict[str, Any]], kind: str, ref: Mapping[str, Any]
) -> dict[str, Any] | None:
    name = ref.get("name") or ""
    obj = objects.get(name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise CreateContainerConfigError(f'{kind} "{name}" not found')
    return obj


def _value_from(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    value_from: Mapping[str, Any],
    namespace: str,
    sources: EnvSources,
) -> str | None:
    """One ``valueFrom``; ``None`` means an optional source was missing and the variable is skipped."""
    if "fieldRef" in value_from:
        return field_ref_value(pod, value_from["fieldRef"].get("fieldPath", ""), sources)
    if "resourceFieldRef" in value_from:
        return resource_field_ref_value(pod, container, value_from["resourceFieldRef"], sources)
    for ref_kind, kind, objects, label in (
        ("configMapKeyRef", "configmap", sources.config_maps, "ConfigMap"),
        ("secretKeyRef", "secret", sources.secrets, "Secret"),
    ):
        if ref_kind not in value_from:
            continue
        ref = value_from[ref_kind]
        obj = _lookup(objects, kind, ref)
        if obj is None:
            return None
        key = ref.get("key", "")
        data = obj.get("data") or {}
        if key not in data:
            if ref.get("optional"):
                return None
            raise CreateContainerConfigError(
                f"couldn't find key {key} in {label} {namespace}/{ref.get('name', '')}"
            )
        return _b64(data[key]) if kind == "secret" else str(data[key])
    return ""


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def field_ref_value(pod: Mapping[str, Any], path: str, sources: EnvSources) -> str:
    """The downward API value of one ``fieldRef.fieldPath``."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": sources.host_ips[0] if sources.host_ips else "",
        "status.hostIPs": ",".join(sources.host_ips),
        "status.podIP": sources.pod_ips[0] if sources.pod_ips else "",
        "status.podIPs": ",".join(sources.pod_ips),
    }
    if path in simple:
        return str(simple[path])
    sub = _SUBSCRIPT.match(path)
    if sub:
        return str((meta.get(sub.group(1)) or {}).get(sub.group(2), ""))
    raise CreateContainerConfigError(f"unsupported fieldPath: {path}")


_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def resource_field_ref_value(
    pod: Mapping[str, Any], container: Mapping[str, Any], ref: Mapping[str, Any], sources: EnvSources
) -> str:
    """``limits.*``/``requests.*`` of a container divided by ``divisor`` and rounded up.

    A missing limit is the node's allocatable amount, as the kubelet does; a missing request is 0.
    """
    target = container
    wanted = ref.get("containerName")
    if wanted and wanted != container.get("name"):
        spec = pod.get("spec") or {}
        found = [
            c for c in (*spec.get("containers", ()), *spec.get("initContainers", ())) if c["name"] == wanted
        ]
        if not found:
            raise CreateContainerConfigError(f"container {wanted} not found")
        target = found[0]
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in _RESOURCES:
        raise CreateContainerConfigError(f"unsupported container resource : {resource}")
    section = (target.get("resources") or {}).get(kind) or {}
    raw = section.get(name)
    if raw is None and kind == "limits":
        raw = sources.node_allocatable.get(name)
    try:
        amount = Fraction(parse_quantity(raw if raw is not None else 0))
        divisor = Fraction(parse_quantity(ref.get("divisor") or 1))
    except QuantityError as err:
        raise CreateContainerConfigError(str(err)) from err
    if divisor <= 0:
        raise CreateContainerConfigError(f"invalid divisor {ref.get('divisor')}")
    if name == "cpu":  # the kubelet works in whole millicores
        amount = Fraction(math.ceil(amount * 1000), 1000)
    else:
        amount = Fraction(math.ceil(amount))
    return str(math.ceil(amount / divisor))


def _b64(value: Any) -> str:
    return base64.b64decode(str(value)).decode("utf-8", errors="replace")
