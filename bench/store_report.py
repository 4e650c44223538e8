"""The store benchmark's report: machine facts, the fsync summary, raykube/etcd ratios, goals, the table.

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
    info["conns"] = cfg.conns
    return info


def fsync_summary(results: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Per system, whether its log synced in every measurement that wrote, from the counts it reported.

    True only if every successful measurement with writes saw fsyncs > 0; False if any saw none;
    None if nothing was measured or the system reported no count.
    """
    out: dict[str, bool | None] = {}
    for system in dict.fromkeys(r["system"] for r in results):
        rows = [r for r in results if r["system"] == system and not r.get("error") and r.get("writes")]
        counts = [r.get("fsync") for r in rows]
        out[system] = None if not counts or None in counts else all(counts)
    return out


Key = tuple[str, int, int, int]


def _key(r: dict[str, Any]) -> Key:
    return (r.get("workload", "put"), r["replicas"], r["clients"], r["value_bytes"])


def _pairs(results: list[dict[str, Any]]) -> dict[Key, dict[str, dict[str, Any]]]:
    by_key: dict[Key, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_key.setdefault(_key(r), {})[r["system"]] = r
    return by_key


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if a and b else None


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (workload, replicas, clients, value_bytes) measured on both systems: raykube over etcd for
    ops_per_s (above 1: raykube faster) and for p50/p99 latency (above 1: raykube slower)."""
    out = []
    for (workload, replicas, clients, vb), pair in _pairs(results).items():
        rk, et = pair.get("raykube"), pair.get("etcd")
        if rk is None or et is None:
            continue
        out.append(
            {
                "workload": workload,
                "replicas": replicas,
                "clients": clients,
                "value_bytes": vb,
                "raykube_over_etcd": _ratio(rk.get("ops_per_s"), et.get("ops_per_s")),
                "p50_ratio": _ratio(rk.get("p50_ms"), et.get("p50_ms")),
                "p99_ratio": _ratio(rk.get("p99_ms"), et.get("p99_ms")),
            }
        )
    return out


# Issue 17's goals, each a test on one ratio of the rows it names (a row not measured: not judged).
GOALS: list[tuple[str, dict[str, Any], str, str, float]] = [
    ("3 replicas, 64 clients, 256 B puts: >= 1.0x etcd", {"workload": "put", "replicas": 3, "clients": 64,
     "value_bytes": 256}, "raykube_over_etcd", ">=", 1.0),
    ("3 replicas, 1 client, 256 B puts: p50 <= 2x etcd's", {"workload": "put", "replicas": 3, "clients": 1,
     "value_bytes": 256}, "p50_ratio", "<=", 2.0),
    ("linearizable gets at 64 clients: >= 1.0x etcd", {"workload": "get", "clients": 64},
     "raykube_over_etcd", ">=", 1.0),
]  # fmt: skip


def goals(ratio_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal with the ratios of the rows it covers and whether every one of them meets it
    (None when no covered row has a ratio)."""
    out = []
    for name, where, field, op, bound in GOALS:
        rows = [r for r in ratio_rows if all(r.get(k) == v for k, v in where.items())]
        values = [r[field] for r in rows]
        judged = [v for v in values if v is not None]
        met = None
        if judged and len(judged) == len(values):
            met = all(v >= bound if op == ">=" else v <= bound for v in judged)
        elif judged:
            met = False  # a covered row failed: not met
        out.append(
            {
                "goal": name,
                "ratio": field,
                "rows": [
                    {k: r[k] for k in ("replicas", "clients", "value_bytes")} | {field: r[field]}
                    for r in rows
                ],
                "met": met,
            }
        )
    return out


def ratio_lines(results: list[dict[str, Any]]) -> Iterator[str]:
    """One line per configuration measured on both systems: the raykube/etcd ratios."""
    for (workload, replicas, clients, vb), pair in _pairs(results).items():
        rk, et = pair.get("raykube"), pair.get("etcd")
        if rk is None or et is None:
            continue
        head = f"{workload} replicas={replicas} clients={clients} value_bytes={vb}: raykube/etcd "
        if rk.get("ops_per_s") and et.get("ops_per_s"):
            yield head + (
                f"ops_per_s = {rk['ops_per_s'] / et['ops_per_s']:.2f}, "
                f"p50 = {rk['p50_ms'] / et['p50_ms']:.2f}, p99 = {rk['p99_ms'] / et['p99_ms']:.2f}"
            )
        else:
            failed = [s for s, r in (("raykube", rk), ("etcd", et)) if not r.get("ops_per_s")]
            yield head + f"n/a ({', '.join(failed)} failed)"


def _counts(r: dict[str, Any]) -> str:
    """The facts a row carries besides its figures, in a few words."""
    parts = [f"rev+{r.get('revision_delta')}/{r.get('writes')}w"]
    if r.get("fsyncs") is not None:
        parts.append(f"{r['fsyncs']} syncs")
    if "cas_succeeded" in r:
        parts.append(f"cas {r['cas_succeeded']}/{r['cas_succeeded'] + r['cas_failed']}")
    if "events" in r:
        parts.append(f"{r['events']}/{r['events_expected']} events, {r['puts_per_s']:,.0f} puts/s")
    return ", ".join(parts)


def render(results: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title="raykube bench store (loopback; one etcd v3 gRPC client for both systems)")
    for col in ("workload", "system", "replicas", "clients", "value_bytes"):
        table.add_column(col, justify="left" if col in ("workload", "system") else "right")
    for col in ("ops/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    table.add_column("counts (revision+ / writes, syncs, ...)")
    for r in results:
        if r.get("error"):
            cells = ["[red]error[/red]", "", "", ""]
        else:
            cells = [f"{r['ops_per_s']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", _counts(r)]
        table.add_row(
            r.get("workload", "put"),
            r["system"],
            str(r["replicas"]),
            str(r["clients"]),
            str(r["value_bytes"]),
            *cells,
        )
    console.print(table)
    for r in results:
        if r.get("error"):
            where = f"replicas={r['replicas']} clients={r['clients']} value_bytes={r['value_bytes']}"
            console.print(
                f"[red]{r.get('workload', 'put')} {r['system']} {where}: {r['error']}[/red]",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
    for line in ratio_lines(results):
        console.print(line, highlight=False, soft_wrap=True)
