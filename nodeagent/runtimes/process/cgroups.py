"""Resource limits through cgroup v1 where the hierarchy is writable; a clean no-op elsewhere.

``CgroupManager.probe(base)`` finds the writable v1 controllers (memory, cpu, pids) under
``/sys/fs/cgroup/<controller>/<base>``. ``limits_for`` turns CRI LinuxContainerResources fields into
controller files (pure); ``create`` makes the per-container groups and writes them; the container's
first process joins them from ``preexec`` (before exec), so no child escapes the limits.

Invariants: a failure to write a limit or to join a group never fails the container; the runtime
reports it instead (``ContainerStatus`` reason ``ResourceLimitsNotApplied`` with ``limits_message``,
which the agent turns into a Warning event; the runtime's ``ResourceLimits`` condition when no
controller is writable at all). ``remove`` is idempotent and only removes empty groups.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")


def limits_for(
    memory_limit: int, cpu_period: int, cpu_quota: int, cpu_shares: int
) -> dict[str, dict[str, str]]:
    """Controller -> {file: value} for the non-zero CRI resource fields."""
    out: dict[str, dict[str, str]] = {}
    if memory_limit > 0:
        out.setdefault("memory", {})["memory.limit_in_bytes"] = str(memory_limit)
    if cpu_quota > 0:
        cpu = out.setdefault("cpu", {})
        cpu["cpu.cfs_period_us"] = str(cpu_period or 100_000)
        cpu["cpu.cfs_quota_us"] = str(cpu_quota)
    if cpu_shares > 0:
        out.setdefault("cpu", {})["cpu.shares"] = str(max(2, cpu_shares))
    return out


LIMITS_NOT_APPLIED = "ResourceLimitsNotApplied"


def limits_message(errors: list[str], reason: str = "") -> str:
    """``ContainerStatus.message`` for a container running without (some of) its limits."""
    text = "resource limits not applied: " + "; ".join(errors)
    return f"{text} ({reason})" if reason else text


@dataclass(frozen=True, slots=True)
class CgroupManager:
    """Per-container cgroups under ``<root>/<controller>/<base>/<container id>``."""

    base: str
    writable: tuple[str, ...]
    reason: str = ""
    root: Path = field(default=CGROUP_ROOT)

    @staticmethod
    def probe(base: str = "raykube", root: Path = CGROUP_ROOT) -> CgroupManager:
        writable = []
        for ctl in CONTROLLERS:
            d = root / ctl
            if not (d / "cgroup.procs").exists():
                continue
            try:
                (d / base).mkdir(exist_ok=True)
            except OSError:
                continue
            if os.access(d / base, os.W_OK):
                writable.append(ctl)
        reason = "" if writable else f"no writable cgroup v1 controllers under {root}"
        return CgroupManager(base, tuple(writable), reason, root)

    def paths(self, cid: str) -> list[Path]:
        return [self.root / ctl / self.base / cid for ctl in self.writable]

    def create(self, cid: str, limits: dict[str, dict[str, str]]) -> list[str]:
        """Make the groups and write limits; return the errors (empty when all applied)."""
        errors = []
        for ctl in self.writable:
            d = self.root / ctl / self.base / cid
            try:
                d.mkdir(exist_ok=True)
                for name, value in limits.get(ctl, {}).items():
                    (d / name).write_text(value)
            except OSError as e:
                errors.append(f"{ctl}: {e}")
        errors += [f"{ctl}: not writable" for ctl in limits if ctl not in self.writable]
        return errors

    def procs_files(self, cid: str) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths(cid)]

    def remove(self, cid: str) -> None:
        for p in self.paths(cid):
            with contextlib.suppress(OSError):
                p.rmdir()
