"""The measurements of the API benchmark: one HTTPS client, the closed and open loops, the ops.

Split from ``bench/api.py`` (which runs the suite, renders and parses arguments); see its docstring.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.etcd_workloads import percentile

OPS = ("create", "create_pod", "get", "list", "update", "watch_event")
MEASUREMENTS = (*OPS, "paced")
FULL_DURATION_S, QUICK_DURATION_S = 5.0, 1.5
FULL_WARMUP_S, QUICK_WARMUP_S = 1.0, 0.3
FULL_PACED_S, QUICK_PACED_S = 10.0, 5.0
PACED_RATE = 200.0
LIST_SIZE = 100
GOAL_PACED_P99_MS = 50.0
K8S_SLO_P99_MS = 1000.0  # Kubernetes' API call latency SLO for mutating calls
GOAL_PEAK_POD_CREATES = 1000.0
RUN_SLACK_S = 60.0
WATCH_DRAIN_S = 15.0  # how long watchers may lag behind the writer before missing events are errors
ACTOR_HOPS_PER_CREATE = (
    "1 actor call apiserver→store leader per batch of creates (the propose of the create txns; "
    "namespace admission reads the API server's watch cache, with a live read only on a cache miss); "
    "then per Raft round leader→followers (none with 1 replica) and the apply on each replica. The "
    "watch event takes another path: the API server's watch cache long-polls the leader (wait_events)."
)

Op = Callable[[int], Awaitable[int]]  # worker index -> retries spent (raises OpError on failure)


class OpError(Exception):
    """An operation that did not succeed (non-2xx reply or transport error)."""


# ---- summary (pure) -------------------------------------------------------------------------


def summarize(
    op: str, clients: int, latencies_ns: Sequence[int], elapsed_ns: int, errors: int
) -> dict[str, Any]:
    """One result row: ops_per_s of the successful ops over the elapsed time, p50/p99 in ms."""
    row: dict[str, Any] = {"op": op, "clients": clients}
    if not latencies_ns or elapsed_ns <= 0:
        return {**row, "ops_per_s": None, "p50_ms": None, "p99_ms": None, "errors": errors}
    lat = sorted(latencies_ns)
    return {
        **row,
        "ops_per_s": round(len(lat) / (elapsed_ns / 1e9), 1),
        "p50_ms": round(percentile(lat, 50) / 1e6, 3),
        "p99_ms": round(percentile(lat, 99) / 1e6, 3),
        "errors": errors,
    }


def paced_offsets_ns(rate: float, duration_s: float) -> list[int]:
    """Scheduled start times (ns after the start) of an open-loop run at ``rate`` ops/s."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    count = max(1, round(rate * duration_s))
    return [round(i * 1e9 / rate) for i in range(count)]


def slo_summary(results: Sequence[dict[str, Any]], paced: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's goals, judged from the results: paced create p99 and peak pod creates/s."""
    slo: dict[str, Any] = {"actor_hops_per_create": ACTOR_HOPS_PER_CREATE}
    if paced is not None:
        p99 = paced.get("p99_ms")
        slo["paced_create"] = {
            **paced,
            "goal_p99_ms": GOAL_PACED_P99_MS,
            "kubernetes_slo_p99_ms": K8S_SLO_P99_MS,
            "met": p99 is not None and p99 <= GOAL_PACED_P99_MS and paced.get("errors") == 0,
        }
    pods = [r for r in results if r["op"] == "create_pod" and r.get("ops_per_s")]
    if pods:
        top = max(pods, key=lambda r: r["clients"])  # closed loop at the most clients measured
        slo["peak_pod_creates"] = {
            "clients": top["clients"],
            "ops_per_s": top["ops_per_s"],
            "goal_ops_per_s": GOAL_PEAK_POD_CREATES,
            "met": top["ops_per_s"] >= GOAL_PEAK_POD_CREATES and top["errors"] == 0,
        }
    return slo


# ---- objects --------------------------------------------------------------------------------


def configmap(name: str, value: str = "v") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"key": value}}


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
    }


# ---- HTTPS client ---------------------------------------------------------------------------


def ssl_context_from_kubeconfig(kubeconfig: Path, scratch: Path) -> tuple[str, ssl.SSLContext]:
    """(server URL, client TLS context) from a kubeconfig with embedded ``*-data`` credentials."""
    import yaml  # type: ignore[import-untyped]

    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    user = doc["users"][0]["user"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
    )
    cert, key = scratch / "bench-client.crt", scratch / "bench-client.key"
    for path, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
        path.write_bytes(base64.b64decode(user[field]))
        path.chmod(0o600)
    ctx.load_cert_chain(str(cert), str(key))
    return str(cluster["server"]), ctx


class Api:
    """Thin JSON-over-HTTPS helper on one keep-alive session."""

    def __init__(self, session: Any, server: str) -> None:
        self.session, self.server = session, server

    async def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        import orjson

        data = orjson.dumps(body) if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        async with self.session.request(method, self.server + path, data=data, headers=headers) as resp:
            raw = await resp.read()
            if resp.status not in ok:
                raise OpError(f"{method} {path}: HTTP {resp.status} {raw[:200]!r}")
            return (resp.status, orjson.loads(raw)) if raw else (resp.status, None)


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


# ---- drivers --------------------------------------------------------------------------------


async def drive(op: Op, clients: int, duration_s: float) -> tuple[list[int], int, int, int]:
    """``clients`` workers run ``op`` back to back for ``duration_s``.

    Returns (latencies_ns of successful ops, elapsed_ns, errors, retries).
    """
    latencies: list[int] = []
    errors = retries = 0
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(duration_s * 1e9)

    async def worker(i: int) -> None:
        nonlocal errors, retries
        while clock() < deadline:
            t0 = clock()
            try:
                retries += await op(i)
            except (OpError, OSError, TimeoutError) as e:
                errors += 1
                if errors == 1:
                    print(f"bench api: first error: {e}", file=sys.stderr)
                await asyncio.sleep(0.01)  # a failing server must not turn the loop into a spin
                continue
            latencies.append(clock() - t0)

    async with asyncio.timeout(duration_s + RUN_SLACK_S), asyncio.TaskGroup() as tg:
        for i in range(clients):
            tg.create_task(worker(i))
    return latencies, clock() - start, errors, retries


class Bench:
    """The measurements against one running API server; namespaces are prepared by ``setup``."""

    def __init__(self, api: Api, max_clients: int) -> None:
        self.api = api
        self.max_clients = max_clients
        self.names = itertools.count()
        self.rv: dict[int, str] = {}

    async def setup(self) -> None:
        for ns in ("bench-create", "bench-pods", "bench-rw", "bench-list", "bench-watch", "bench-paced"):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            await self.api.call("POST", "/api/v1/namespaces", body, ok=(201, 409))
            # The bench runs no controller manager, so no ServiceAccount controller: make the
            # default account pods are admitted with (ServiceAccount admission refuses them without).
            account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
            await self.api.call("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", account, ok=(201, 409))
        sem = asyncio.Semaphore(16)

        async def make(ns: str, name: str) -> dict[str, Any]:
            async with sem:
                return (await self.api.call("POST", cm_path(ns), configmap(name), ok=(201,)))[1]

        await asyncio.gather(*(make("bench-list", f"item-{i}") for i in range(LIST_SIZE)))
        await asyncio.gather(*(make("bench-rw", f"get-{i}") for i in range(self.max_clients)))
        made = await asyncio.gather(*(make("bench-rw", f"upd-{i}") for i in range(self.max_clients)))
        self.rv = {i: o["metadata"]["resourceVersion"] for i, o in enumerate(made)}

    def op(self, name: str) -> Op:
        api, names = self.api, self.names

        async def create(i: int) -> int:
            await api.call("POST", cm_path("bench-create"), configmap(f"cm-{next(names)}"), ok=(201,))
            return 0

        async def create_pod(i: int) -> int:
            path = "/api/v1/namespaces/bench-pods/pods"
            await api.call("POST", path, pod(f"pod-{next(names)}"), ok=(201,))
            return 0

        async def get(i: int) -> int:
            await api.call("GET", cm_path("bench-rw", f"get-{i}"), ok=(200,))
            return 0

        async def list_(i: int) -> int:
            _, body = await api.call("GET", cm_path("bench-list"), ok=(200,))
            if len(body["items"]) != LIST_SIZE:
                raise OpError(f"list returned {len(body['items'])} items, not {LIST_SIZE}")
            return 0

        async def update(i: int) -> int:
            name, retries = f"upd-{i}", 0
            while True:
                obj = configmap(name, str(next(names)))
                obj["metadata"]["resourceVersion"] = self.rv[i]
                status, body = await api.call("PUT", cm_path("bench-rw", name), obj, ok=(200, 409))
                if status == 200:
                    self.rv[i] = body["metadata"]["resourceVersion"]
                    return retries
                retries += 1
                _, cur = await api.call("GET", cm_path("bench-rw", name), ok=(200,))
                self.rv[i] = cur["metadata"]["resourceVersion"]

        return {"create": create, "create_pod": create_pod, "get": get, "list": list_, "update": update}[name]

    async def closed_loop(
        self, name: str, clients: int, duration_s: float, warmup_s: float
    ) -> dict[str, Any]:
        op = self.op(name)
        if warmup_s > 0:
            await drive(op, clients, warmup_s)
        latencies, elapsed, errors, retries = await drive(op, clients, duration_s)
        row = summarize(name, clients, latencies, elapsed, errors)
        if name == "update":
            row["retries"] = retries
        return row

    async def watch_event(self, watchers: int, duration_s: float) -> dict[str, Any]:
        """``watchers`` open watches; one writer creates for ``duration_s``; see the module doc."""
        import orjson

        api, clock = self.api, time.perf_counter_ns
        _, listed = await api.call("GET", cm_path("bench-watch"), ok=(200,))
        rv = listed["metadata"]["resourceVersion"]
        prefix = f"w{watchers}-{uuid.uuid4().hex[:6]}-"
        replies: dict[str, int] = {}
        arrivals: list[tuple[str, int]] = []
        created = 0
        writer_done = asyncio.Event()
        all_seen = [asyncio.Event() for _ in range(watchers)]
        responses = []
        url = api.server + cm_path("bench-watch") + f"?watch=1&resourceVersion={rv}"
        for _ in range(watchers):
            resp = await api.session.get(url, headers={"Accept": "application/json"})
            if resp.status != 200:
                raise OpError(f"watch: HTTP {resp.status}")
            responses.append(resp)

        seen_by = [0] * watchers

        async def watcher(k: int, resp: Any) -> None:
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                t = clock()
                ev = orjson.loads(line)
                name = ev["object"].get("metadata", {}).get("name", "")
                if ev["type"] == "ADDED" and name.startswith(prefix):
                    arrivals.append((name, t))
                    seen_by[k] += 1
                    if writer_done.is_set() and seen_by[k] >= created:
                        all_seen[k].set()

        async def writer() -> int:
            nonlocal created
            errors, deadline = 0, clock() + int(duration_s * 1e9)
            while clock() < deadline:
                name = f"{prefix}{next(self.names)}"
                try:
                    await api.call("POST", cm_path("bench-watch"), configmap(name), ok=(201,))
                except (OpError, OSError) as e:
                    errors += 1
                    print(f"bench api: watch writer error: {e}", file=sys.stderr)
                    continue
                replies[name] = clock()
                created += 1
            return errors

        start = clock()
        tasks = [asyncio.create_task(watcher(k, r)) for k, r in enumerate(responses)]
        try:
            errors = await writer()
            writer_done.set()
            for k in range(watchers):  # a watcher may have seen everything before writer_done was set
                if seen_by[k] >= created:
                    all_seen[k].set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCH_DRAIN_S):
                    await asyncio.gather(*(e.wait() for e in all_seen))
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for r in responses:
                r.close()
        delivered = [(n, t) for n, t in arrivals if n in replies]
        errors += created * watchers - len(delivered)
        latencies = [max(0, t - replies[n]) for n, t in delivered]
        last = max((t for _, t in delivered), default=start)
        return summarize("watch_event", watchers, latencies, last - start, errors)

    async def paced(self, rate: float, duration_s: float) -> dict[str, Any]:
        """Open-loop creates at ``rate``/s; latency from each create's scheduled time."""
        api, clock = self.api, time.perf_counter_ns
        latencies: list[int] = []
        errors = 0

        async def one(scheduled: int) -> None:
            nonlocal errors
            try:
                await api.call("POST", cm_path("bench-paced"), configmap(f"p-{next(self.names)}"), ok=(201,))
            except (OpError, OSError):
                errors += 1
                return
            latencies.append(clock() - scheduled)

        start = clock()
        tasks: list[asyncio.Task[None]] = []
        for offset in paced_offsets_ns(rate, duration_s):
            delay = (start + offset - clock()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(start + offset)))
        # A server slower than the rate drains its backlog here; what is still open after the slack
        # counts as failed (open loop: the schedule never waits for the server).
        _, pending = await asyncio.wait(tasks, timeout=RUN_SLACK_S)
        for t in pending:
            t.cancel()
        errors += len(pending)
        row = summarize("paced", 1, latencies, clock() - start, errors)
        return {
            "target_rate": rate,
            "duration_s": duration_s,
            "achieved_rate": row["ops_per_s"],
            "p50_ms": row["p50_ms"],
            "p99_ms": row["p99_ms"],
            "errors": errors,
        }
