"""The Pod Security Standards' checks (``k8s.io/pod-security-admission/policy``, latest version), pure.

``evaluate(level, pod_meta, pod_spec)`` returns the failed checks of a level as (reason, detail)
pairs, in the order Kubernetes reports them: the baseline checks, then for ``restricted`` the
restricted ones, each group in check-ID order; the baseline checks a restricted check replaces
(capabilities, hostPath volumes, seccomp) only run at ``baseline``. ``privileged`` checks nothing.
Containers are visited init containers first, then containers, then ephemeral containers, and named
as kube does (``container "a"``, ``containers "a", "b"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Result = tuple[str, str]  # (forbidden reason, forbidden detail)
Check = Callable[[Mapping[str, Any], Mapping[str, Any]], Result | None]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)

BASELINE_CAPABILITIES = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE"}
    | {"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)
ALLOWED_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies"}
    | {"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports"}
    | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl"}
    | {"net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    | {"image"}
)
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def pluralize(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def join_quote(items: list[str]) -> str:
    return ", ".join(f'"{i}"' for i in items)


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or []


def _named(names: list[str]) -> str:
    return f"{pluralize('container', 'containers', len(names))} {join_quote(names)}"


def _sc(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("securityContext") or {}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _relaxed_for_user_namespace(spec: Mapping[str, Any]) -> bool:
    return spec.get("hostUsers") is False


# -- baseline ---------------------------------------------------------------------------------------


def app_armor(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    bad: list[str] = []
    for key, profile in sorted((meta.get("annotations") or {}).items()):
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not (
            not profile or profile == "runtime/default" or str(profile).startswith("localhost/")
        ):
            bad.append(f'{key}="{profile}"')
    pod_type = (_sc(spec).get("appArmorProfile") or {}).get("type")
    if pod_type not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f'pod must not set securityContext.appArmorProfile.type to "{pod_type}"')
    for c in containers(spec):
        kind = (_sc(c).get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            bad.append(
                f'container "{c.get("name")}" must not set securityContext.appArmorProfile.type to "{kind}"'
            )
    if not bad:
        return None
    return pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad)), ", ".join(bad)


def capabilities_baseline(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    names: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        added = [
            a for a in (_sc(c).get("capabilities") or {}).get("add") or [] if a not in BASELINE_CAPABILITIES
        ]
        if added:
            names.append(c.get("name", ""))
            caps.update(added)
    if not names:
        return None
    return "non-default capabilities", (
        f"{_named(names)} must not include {join_quote(sorted(caps))} in securityContext.capabilities.add"
    )


def host_namespaces(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    set_ = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    return ("host namespaces", ", ".join(set_)) if set_ else None


def host_path_volumes(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    if not names:
        return None
    return "hostPath volumes", f"{pluralize('volume', 'volumes', len(names))} {join_quote(names)}"


def host_ports(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    names: list[str] = []
    ports: list[str] = []
    for c in containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            names.append(c.get("name", ""))
            ports.extend(used)
    if not names:
        return None
    ports = _unique(ports)
    return "hostPort", (
        f"{_named(names)} {pluralize('uses', 'use', len(names))} "
        f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(ports)}"
    )


def privileged(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    names = [c.get("name", "") for c in containers(spec) if _sc(c).get("privileged") is True]
    return ("privileged", f"{_named(names)} must not set securityContext.privileged=true") if names else None


def proc_mount(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    if _relaxed_for_user_namespace(spec):
        return None
    names: list[str] = []
    values: list[str] = []
    for c in containers(spec):
        mount = _sc(c).get("procMount")
        if mount not in (None, "", "Default"):
            names.append(c.get("name", ""))
            values.append(str(mount))
    if not names:
        return None
    return "procMount", (
        f"{_named(names)} must not set securityContext.procMount to {join_quote(sorted(set(values)))}"
    )


def se_linux_options(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(opts: Mapping[str, Any]) -> bool:
        ok = True
        if (opts.get("type") or "") not in SELINUX_TYPES:
            bad_types.add(str(opts.get("type")))
            ok = False
        for field in ("user", "role"):
            if opts.get(field):
                flags[field], ok = True, False
        return ok

    setters: list[str] = []
    if _sc(spec).get("seLinuxOptions") and not valid(_sc(spec)["seLinuxOptions"]):
        setters.append("pod")
    names = [
        c.get("name", "")
        for c in containers(spec)
        if _sc(c).get("seLinuxOptions") and not valid(_sc(c)["seLinuxOptions"])
    ]
    if names:
        setters.append(_named(names))
    if not setters:
        return None
    data: list[str] = []
    if bad_types:
        data.append(f"{pluralize('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
    if flags["user"]:
        data.append("user may not be set")
    if flags["role"]:
        data.append("role may not be set")
    return "seLinuxOptions", (
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}"
    )


def _seccomp_setters(
    spec: Mapping[str, Any], allowed: Callable[[str | None], bool]
) -> tuple[list[str], list[str]]:
    setters: list[str] = []
    values: set[str] = set()
    pod_type = (_sc(spec).get("seccompProfile") or {}).get("type")
    if pod_type is not None and not allowed(pod_type):
        setters.append("pod")
        values.add(pod_type)
    names: list[str] = []
    for c in containers(spec):
        kind = (_sc(c).get("seccompProfile") or {}).get("type")
        if kind is not None and not allowed(kind):
            names.append(c.get("name", ""))
            values.add(kind)
    if names:
        setters.append(_named(names))
    return setters, sorted(values)


def seccomp_baseline(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    setters, values = _seccomp_setters(spec, lambda t: t != "Unconfined")
    if not setters:
        return None
    return "seccompProfile", (
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {join_quote(values)}"
    )


def sysctls(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    bad = [s.get("name", "") for s in _sc(spec).get("sysctls") or [] if s.get("name") not in ALLOWED_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


# -- restricted -------------------------------------------------------------------------------------


def allow_privilege_escalation(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    names = [
        c.get("name", "") for c in containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if not names:
        return None
    return "allowPrivilegeEscalation != false", (
        f"{_named(names)} must set securityContext.allowPrivilegeEscalation=false"
    )


def capabilities_restricted(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        capabilities = _sc(c).get("capabilities")
        if capabilities is None:
            missing_drop.append(c.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(c.get("name", ""))
        added = [a for a in capabilities.get("add") or [] if a != "NET_BIND_SERVICE"]
        if added:
            adding.append(c.get("name", ""))
            caps.update(added)
    details: list[str] = []
    if missing_drop:
        details.append(f'{_named(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{_named(adding)} must not include {join_quote(sorted(caps))} "
            "in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def restricted_volumes(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    names: list[str] = []
    kinds: set[str] = set()
    for volume in spec.get("volumes") or []:
        sources = [k for k in volume if k != "name"]
        if sources and all(k in RESTRICTED_VOLUME_SOURCES for k in sources):
            continue
        names.append(volume.get("name", ""))
        kinds.update(k for k in sources if k not in RESTRICTED_VOLUME_SOURCES)
    if not names:
        return None
    return "restricted volume types", (
        f"{pluralize('volume', 'volumes', len(names))} {join_quote(names)} "
        f"{pluralize('uses', 'use', len(names))} "
        f"{pluralize('restricted volume type', 'restricted volume types', len(kinds))} "
        f"{join_quote(sorted(kinds))}"
    )


def run_as_non_root(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    if _relaxed_for_user_namespace(spec):
        return None
    setters: list[str] = []
    pod_value = _sc(spec).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            explicit.append(c.get("name", ""))
        elif value is None and pod_value is not True:
            implicit.append(c.get("name", ""))
    if explicit:
        setters.append(_named(explicit))
    if setters:
        return (
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return "runAsNonRoot != true", f"pod or {_named(implicit)} must set securityContext.runAsNonRoot=true"
    return None


def run_as_user(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    if _relaxed_for_user_namespace(spec):
        return None
    setters = ["pod"] if _sc(spec).get("runAsUser") == 0 else []
    names = [c.get("name", "") for c in containers(spec) if _sc(c).get("runAsUser") == 0]
    if names:
        setters.append(_named(names))
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def seccomp_restricted(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Result | None:
    setters, values = _seccomp_setters(spec, lambda t: t in ("RuntimeDefault", "Localhost"))
    if setters:
        return "seccompProfile", (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{join_quote(values)}"
        )
    if (_sc(spec).get("seccompProfile") or {}).get("type") is not None:
        return None
    implicit = [
        c.get("name", "")
        for c in containers(spec)
        if (_sc(c).get("seccompProfile") or {}).get("type") is None
    ]
    if not implicit:
        return None
    return "seccompProfile", (
        f"pod or {_named(implicit)} must set securityContext.seccompProfile.type to "
        '"RuntimeDefault" or "Localhost"'
    )


BASELINE_CHECKS: tuple[Check, ...] = (
    app_armor,
    host_namespaces,
    host_ports,
    privileged,
    proc_mount,
    se_linux_options,
    sysctls,
)
# baseline checks a restricted check replaces: run at baseline only
OVERLAPPING_BASELINE_CHECKS: tuple[Check, ...] = (capabilities_baseline, host_path_volumes, seccomp_baseline)
RESTRICTED_CHECKS: tuple[Check, ...] = (
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
)


def evaluate(level: str, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Result]:
    """The failed checks of ``level`` for a pod (or pod template) with ``meta`` and ``spec``."""
    if level == PRIVILEGED:
        return []
    checks = BASELINE_CHECKS + (OVERLAPPING_BASELINE_CHECKS if level == BASELINE else RESTRICTED_CHECKS)
    return [r for check in checks if (r := check(meta, spec)) is not None]


def describe(results: list[Result]) -> str:
    """``reason (detail), reason (detail)``: the tail of PodSecurity's messages."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in results)
