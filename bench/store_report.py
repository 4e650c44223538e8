"""The store benchmark's report: machine facts, the fsync summary, raykube/etcd ratios, the table.

Pure functions of the results ``bench.store`` measured (``machine_info`` reads the machine, nothing
else reads a clock or a system), so what the report says can be checked against the results alone.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bench.etcd_peer import etcd_version

if TYPE_CHECKING:
    from bench.store import Config


def _fs_type(path: str) -> str | None:
    """Filesystem type holding path (from /proc/mounts, longest matching mount point)."""
    try:
        best, fstype = "", None
        real = os.path.realpath(path)
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    mnt = parts[1]
                    if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                        best, fstype = mnt, parts[2]
        return fstype
    except OSError:
        return None


def machine_info(cfg: Config) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_kib"] = int(line.split()[1])
                    break
    data_root = cfg.data_root or tempfile.gettempdir()
    info["data_dir_root"] = data_root
    info["data_dir_fs"] = _fs_type(data_root)
    with contextlib.suppress(Exception):
        import grpc

        info["grpcio"] = grpc.__version__
    if "etcd" in cfg.systems:
        info["etcd_version"] = etcd_version()
    info["duration_s"] = cfg.duration_s
    info["warmup_s"] = cfg.warmup_s
    return info


ETCD_FSYNC = "on: etcd's default, --unsafe-no-fsync never passed (etcd does not report a count here)"


def fsync_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per system, whether the store synced its log in every measurement, from the reported counts.

    raykube: True only if every successful measurement saw fsyncs > 0 (False if any saw none; None if
    nothing was measured); etcd: its configuration (it reports no count through the bench's API).
    """
    out: dict[str, Any] = {}
    rk = [r for r in results if r["system"] == "raykube" and not r.get("error")]
    if rk:
        out["raykube"] = all(r.get("fsync") for r in rk)
    if any(r["system"] == "etcd" for r in results):
        out["etcd"] = ETCD_FSYNC
    return out


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """raykube/etcd ops_per_s per (replicas, clients, value_bytes), from the figures in ``results``."""
    by_key: dict[tuple[int, int, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_key.setdefault((r["replicas"], r["clients"], r["value_bytes"]), {})[r["system"]] = r
    out = []
    for (replicas, clients, vb), pair in by_key.items():
        rk, et = pair.get("raykube"), pair.get("etcd")
        if rk is None or et is None:
            continue
        value = None
        if rk.get("ops_per_s") and et.get("ops_per_s"):
            value = round(rk["ops_per_s"] / et["ops_per_s"], 2)
        out.append({"replicas": replicas, "clients": clients, "value_bytes": vb, "raykube_over_etcd": value})
    return out


def ratio_lines(results: list[dict[str, Any]]) -> Iterator[str]:
    """One line per (replicas, clients, value_bytes): raykube/etcd ops_per_s."""
    by_key: dict[tuple[int, int, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_key.setdefault((r["replicas"], r["clients"], r["value_bytes"]), {})[r["system"]] = r
    for (replicas, clients, vb), pair in by_key.items():
        head = f"replicas={replicas} clients={clients} value_bytes={vb}: raykube/etcd ops_per_s = "
        rk, et = pair.get("raykube"), pair.get("etcd")
        if rk is None or et is None:
            continue
        if rk.get("ops_per_s") and et.get("ops_per_s"):
            yield head + f"{rk['ops_per_s'] / et['ops_per_s']:.2f}"
        else:
            failed = [s for s, r in (("raykube", rk), ("etcd", et)) if not r.get("ops_per_s")]
            yield head + f"n/a ({', '.join(failed)} failed)"


def render(results: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title="raykube bench store (loopback; fsync column: syncs the store reported)")
    for col in ("system", "replicas", "clients", "value_bytes"):
        table.add_column(col, justify="right" if col != "system" else "left")
    for col in ("ops/s", "p50 ms", "p99 ms", "puts", "revision +", "fsyncs"):
        table.add_column(col, justify="right")
    for r in results:
        if r.get("error"):
            cells = ["[red]error[/red]", "", "", "", "", ""]
        else:
            cells = [f"{r['ops_per_s']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"]
            counts = (r.get(k) for k in ("puts", "revision_delta", "fsyncs"))
            cells += ["-" if c is None else str(c) for c in counts]
        table.add_row(r["system"], str(r["replicas"]), str(r["clients"]), str(r["value_bytes"]), *cells)
    console.print(table)
    for r in results:
        if r.get("error"):
            console.print(
                f"[red]{r['system']} replicas={r['replicas']} clients={r['clients']} "
                f"value_bytes={r['value_bytes']}: {r['error']}[/red]",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
    for line in ratio_lines(results):
        console.print(line, highlight=False, soft_wrap=True)
