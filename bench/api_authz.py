"""The authorization row of ``raykube bench api``: what RBAC costs in throughput.

Two throw-away raykubes up side by side in the same run, identical but for
``--authorization-mode``: ``AlwaysAllow`` (the baseline) and the default ``Node,RBAC``. Each gets
the same objects: the bench's namespaces and ConfigMaps, and 1,000 Roles with 1,000 RoleBindings
(997 for other users, spread over 100 namespaces, and three that bind the bench's client, a plain
user ``bench-user`` with its own client certificate, to read and write ConfigMaps in the bench
namespaces: it is not an admin, so every request goes through the rules). Then the same
closed-loop mix (create, get, list, update of ConfigMaps) runs against each as ``bench-user``, op
by op, alternating between the two (``ROUNDS`` times each, so load drifting on the machine weighs
on both alike). The row reports both throughputs and their ratio per op, and the geometric mean of
the ratios (``throughput_ratio``; goal: RBAC costs under 10%, a ratio of at least 0.9).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.api_measure import Api, Bench, OpError, summarize
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.tls import Pki, issue_client_cert

MIX = ("create", "get", "list", "update")
ROLES = 1000
BENCH_USER = "bench-user"
BENCH_NAMESPACES = ("bench-create", "bench-rw", "bench-list")
OTHER_NAMESPACES = 100
GOAL_RATIO = 0.9
MODES = {"AlwaysAllow": SecurityOptions(authorization_modes=("AlwaysAllow",)), "RBAC": SecurityOptions()}

RBAC_PATH = "/apis/rbac.authorization.k8s.io/v1/namespaces"


def _role(name: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}],
    }


def _binding(name: str, role: str, user: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


async def make_policy(api: Api) -> None:
    """1,000 Roles and 1,000 RoleBindings; three of each give ``bench-user`` its ConfigMaps."""
    sem = asyncio.Semaphore(16)

    async def post(path: str, body: dict[str, Any]) -> None:
        async with sem:
            await api.call("POST", path, body, ok=(201, 409))

    for i in range(OTHER_NAMESPACES):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-authz-{i}"}}
        await post("/api/v1/namespaces", body)
    writes = []
    for ns in BENCH_NAMESPACES:
        role = _role("bench-configmaps", ["configmaps"], ["create", "get", "list", "update"])
        writes.append((f"{RBAC_PATH}/{ns}/roles", role))
        writes.append(
            (f"{RBAC_PATH}/{ns}/rolebindings", _binding("bench-user", "bench-configmaps", BENCH_USER))
        )
    for i in range(ROLES - len(BENCH_NAMESPACES)):
        ns = f"bench-authz-{i % OTHER_NAMESPACES}"
        writes.append((f"{RBAC_PATH}/{ns}/roles", _role(f"role-{i}", ["pods", "secrets"], ["get", "list"])))
        writes.append((f"{RBAC_PATH}/{ns}/rolebindings", _binding(f"binding-{i}", f"role-{i}", f"user-{i}")))
    await asyncio.gather(*(post(path, body) for path, body in writes))


def user_context(data_dir: Path, scratch: Path) -> ssl.SSLContext:
    """A client TLS context for ``bench-user`` (certificate from the bench cluster's CA)."""
    pki = Pki.in_dir(data_dir / "pki")
    cert, key = issue_client_cert(pki, BENCH_USER, [], days=1)
    cert_file, key_file = scratch / "bench-user.crt", scratch / "bench-user.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


ROUNDS = 2  # measurements per op and mode, alternating between the modes


async def measure_alternating(
    targets: dict[str, tuple[str, ssl.SSLContext, ssl.SSLContext]],
    clients: int,
    duration_s: float,
    warmup_s: float,
    say: Callable[[str], None],
) -> dict[str, list[dict[str, Any]]]:
    """Set up every target (server, admin TLS, bench-user TLS), then measure each op ``ROUNDS``
    times per target, alternating; per op and target one row (``combine``)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with contextlib.AsyncExitStack() as stack:
        benches = {}
        for mode, (server, admin_ctx, user_ctx) in targets.items():
            admin = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin_ctx), timeout=timeout)
            )
            admin_bench = Bench(Api(admin, server), clients)
            say(f"authz ({mode}): namespaces, ConfigMaps, 1,000 Roles and RoleBindings")
            await admin_bench.setup()
            await make_policy(Api(admin, server))
            limit = 2 * clients + 8
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=user_ctx, limit=limit, limit_per_host=limit),
                    timeout=timeout,
                )
            )
            bench = Bench(Api(session, server), clients)
            bench.rv = dict(admin_bench.rv)
            await _wait_authorized(bench.api)
            benches[mode] = bench
        rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in benches}
        for op in MIX:
            rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in benches}
            for r in range(ROUNDS):
                for mode, bench in benches.items():
                    say(f"authz: {op} clients={clients} as {BENCH_USER} ({mode}, round {r + 1})")
                    try:
                        rounds[mode].append(await bench.closed_loop(op, clients, duration_s, warmup_s))
                    except (OpError, OSError, TimeoutError) as e:
                        error = f"{type(e).__name__}: {e}"[:300]
                        rounds[mode].append({**summarize(op, clients, [], 0, 1), "error": error})
            for mode, got in rounds.items():
                rows[mode].append(combine(got))
    return rows


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several rounds of one op: mean throughput, summed errors, the worst p99."""
    ok = [r for r in rounds if r.get("ops_per_s")]
    out = dict(rounds[0])
    out["ops_per_s"] = sum(r["ops_per_s"] for r in ok) / len(ok) if len(ok) == len(rounds) else None
    out["errors"] = sum(r.get("errors") or 0 for r in rounds)
    p99s = [r["p99_ms"] for r in ok if r.get("p99_ms") is not None]
    out["p99_ms"] = max(p99s) if p99s else None
    out["rounds"] = [r.get("ops_per_s") for r in rounds]
    return out


async def _wait_authorized(api: Api, timeout: float = 30.0) -> None:
    """Until RBAC's watch has seen bench-user's bindings (a bound, never a measured figure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await api.call("GET", "/api/v1/namespaces/bench-list/configmaps?limit=1", ok=(200,))
            return
        except OpError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


def compare(baseline: list[dict[str, Any]], rbac: list[dict[str, Any]]) -> dict[str, Any]:
    """The authorization row: per op both throughputs and RBAC's share of the baseline's."""
    per_op = []
    ratios = []
    for allow, checked in zip(baseline, rbac, strict=True):
        a, r = allow.get("ops_per_s"), checked.get("ops_per_s")
        ratio = (r / a) if a and r else None
        if ratio is not None:
            ratios.append(ratio)
        per_op.append(
            {
                "op": allow["op"],
                "clients": allow["clients"],
                "always_allow_ops_per_s": a,
                "rbac_ops_per_s": r,
                "always_allow_p99_ms": allow.get("p99_ms"),
                "rbac_p99_ms": checked.get("p99_ms"),
                "ratio": ratio,
                "always_allow_rounds": allow.get("rounds"),
                "rbac_rounds": checked.get("rounds"),
                "errors": (allow.get("errors") or 0) + (checked.get("errors") or 0),
            }
        )
    mean = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
    return {
        "roles": ROLES,
        "role_bindings": ROLES,
        "client": f"{BENCH_USER} (bound by 3 of the RoleBindings; not an admin)",
        "ops": per_op,
        "throughput_ratio": mean,
        "cost_pct": None if mean is None else round((1 - mean) * 100, 1),
        "goal_ratio": GOAL_RATIO,
        "met": mean is not None and mean >= GOAL_RATIO and len(ratios) == len(per_op),
    }
