"""The API server benchmark: summary math, paced schedule, SLO verdicts, CLI parsing, kubeconfig TLS,
and one end-to-end quick run against a real raykube (integration)."""

from __future__ import annotations

import argparse
import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from bench.api import (
    GOAL_PACED_P99_MS,
    MEASUREMENTS,
    OPS,
    _int_list,
    _ops,
    main,
    paced_offsets_ns,
    slo_summary,
    ssl_context_from_kubeconfig,
    summarize,
)
from bench.api_authz import MIX, compare

MS = 1_000_000


@pytest.mark.parametrize(
    ("latencies_ns", "elapsed_ns", "errors", "want"),
    [
        pytest.param(
            [ms * MS for ms in reversed(range(1, 201))],
            500_000_000,
            0,
            {"ops_per_s": 400.0, "p50_ms": 100.0, "p99_ms": 198.0, "errors": 0},
            id="200-ops-in-half-a-second",
        ),
        pytest.param(
            [3 * MS],
            1_000_000_000,
            2,
            {"ops_per_s": 1.0, "p50_ms": 3.0, "p99_ms": 3.0, "errors": 2},
            id="one-op",
        ),
        pytest.param(
            [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000],
            10_000,
            0,
            {"ops_per_s": 1_000_000.0, "p50_ms": 0.0, "p99_ms": 0.001, "errors": 0},
            id="nearest-rank-p99-is-the-max-of-ten",
        ),
        pytest.param(
            [],
            1_000_000_000,
            5,
            {"ops_per_s": None, "p50_ms": None, "p99_ms": None, "errors": 5},
            id="all-failed",
        ),
        pytest.param(
            [MS], 0, 0, {"ops_per_s": None, "p50_ms": None, "p99_ms": None, "errors": 0}, id="no-elapsed-time"
        ),
    ],
)
def test_summarize(latencies_ns: list[int], elapsed_ns: int, errors: int, want: dict[str, Any]) -> None:
    assert summarize("get", 16, latencies_ns, elapsed_ns, errors) == {"op": "get", "clients": 16, **want}


@pytest.mark.parametrize(
    ("rate", "duration", "want"),
    [
        pytest.param(200.0, 0.02, [0, 5_000_000, 10_000_000, 15_000_000], id="200-per-s"),
        pytest.param(3.0, 1.0, [0, 333_333_333, 666_666_667], id="rounded-to-ns"),
        pytest.param(1.0, 0.1, [0], id="at-least-one"),
    ],
)
def test_paced_offsets(rate: float, duration: float, want: list[int]) -> None:
    assert paced_offsets_ns(rate, duration) == want


def test_paced_offsets_fixed_count_for_ten_seconds() -> None:
    offsets = paced_offsets_ns(200.0, 10.0)
    assert len(offsets) == 2000
    assert offsets[-1] == 9_995_000_000


@pytest.mark.parametrize(
    ("rate", "duration"), [pytest.param(0, 1, id="zero-rate"), pytest.param(1, 0, id="zero-s")]
)
def test_paced_offsets_reject(rate: float, duration: float) -> None:
    with pytest.raises(ValueError):
        paced_offsets_ns(rate, duration)


def _row(op: str, clients: int, ops: float | None, errors: int = 0) -> dict[str, Any]:
    return {"op": op, "clients": clients, "ops_per_s": ops, "p50_ms": 1.0, "p99_ms": 2.0, "errors": errors}


def _paced(p99: float | None, errors: int = 0) -> dict[str, Any]:
    return {"target_rate": 200.0, "achieved_rate": 199.0, "p50_ms": 1.0, "p99_ms": p99, "errors": errors}


@pytest.mark.parametrize(
    ("results", "paced", "paced_met", "peak"),
    [
        pytest.param(
            [_row("create_pod", 1, 300.0), _row("create_pod", 64, 1200.0), _row("create", 64, 5000.0)],
            _paced(GOAL_PACED_P99_MS),
            True,
            (64, 1200.0, True),
            id="both-met-peak-at-most-clients",
        ),
        pytest.param(
            [_row("create_pod", 16, 2000.0), _row("create_pod", 64, 900.0)],
            _paced(GOAL_PACED_P99_MS + 0.001),
            False,
            (64, 900.0, False),
            id="both-missed",
        ),
        pytest.param(
            [_row("create_pod", 64, 1500.0, errors=1)],
            _paced(10.0, errors=1),
            False,
            (64, 1500.0, False),
            id="errors-fail-the-goals",
        ),
        pytest.param([_row("get", 64, 9000.0)], _paced(None), False, None, id="no-pods-no-latencies"),
        pytest.param([_row("create_pod", 64, None)], None, None, None, id="failed-point-and-no-paced-run"),
    ],
)
def test_slo_summary(
    results: list[dict[str, Any]],
    paced: dict[str, Any] | None,
    paced_met: bool | None,
    peak: tuple[int, float, bool] | None,
) -> None:
    slo = slo_summary(results, paced)
    assert slo["actor_hops_per_create"].startswith("1 actor call")
    if paced_met is None:
        assert "paced_create" not in slo
    else:
        assert slo["paced_create"]["met"] is paced_met
        assert slo["paced_create"]["goal_p99_ms"] == 50.0
    if peak is None:
        assert "peak_pod_creates" not in slo
    else:
        got = slo["peak_pod_creates"]
        assert (got["clients"], got["ops_per_s"], got["met"]) == peak


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("1,16,64", [1, 16, 64], id="default"),
        pytest.param("4, 4,1", [4, 1], id="deduplicated-in-order"),
    ],
)
def test_int_list(text: str, want: list[int]) -> None:
    assert _int_list(text) == want


@pytest.mark.parametrize(
    "text", [pytest.param("0", id="zero"), pytest.param("a", id="nan"), pytest.param("", id="empty")]
)
def test_int_list_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _int_list(text)


def test_ops_filter() -> None:
    assert _ops("get,paced,get") == ["get", "paced"]
    assert set(OPS) < set(MEASUREMENTS)
    with pytest.raises(argparse.ArgumentTypeError):
        _ops("get,delete")


def test_ssl_context_from_embedded_kubeconfig(tmp_path: Path) -> None:
    from cluster.apiserver.kubeconfig import write_kubeconfig
    from cluster.apiserver.tls import ensure_pki

    pki = ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server="https://127.0.0.1:1234", pki=pki)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    server, ctx = ssl_context_from_kubeconfig(kubeconfig, scratch)
    assert server == "https://127.0.0.1:1234"
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1
    assert (scratch / "bench-client.crt").read_bytes() == pki.admin_cert.read_bytes()
    assert (scratch / "bench-client.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_quick_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    rc = main(["--quick", "--duration", "0.5", "--clients", "1,4", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == 0
    assert doc["suite"] == "api"
    assert set(doc) == {"suite", "results", "slo", "machine", "authorization"}
    authz = doc["authorization"]
    assert [(o["op"], o["clients"]) for o in authz["ops"]] == [(op, 4) for op in MIX]
    for o in authz["ops"]:
        assert o["errors"] == 0 and o["always_allow_ops_per_s"] > 0 and o["rbac_ops_per_s"] > 0, o
    assert authz["throughput_ratio"] > 0 and isinstance(authz["met"], bool)
    got = [(r["op"], r["clients"]) for r in doc["results"]]
    assert got == [(op, c) for op in OPS for c in (1, 4)]
    for r in doc["results"]:
        assert r["errors"] == 0, r
        assert r["ops_per_s"] > 0 and r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"], r
    assert next(r for r in doc["results"] if r["op"] == "update")["retries"] == 0
    paced = doc["slo"]["paced_create"]
    assert paced["errors"] == 0 and paced["target_rate"] == 200.0
    assert paced["achieved_rate"] > 0 and 0 < paced["p50_ms"] <= paced["p99_ms"]
    assert isinstance(paced["met"], bool)
    peak = doc["slo"]["peak_pod_creates"]
    assert peak["clients"] == 4 and peak["ops_per_s"] > 0
    assert "apiserver→store leader" in doc["slo"]["actor_hops_per_create"]
    assert doc["machine"]["cpu_count"] > 0


def test_authorization_row_compares_per_op() -> None:
    row = lambda op, ops: {"op": op, "clients": 16, "ops_per_s": ops, "p99_ms": 1.0, "errors": 0}  # noqa: E731
    got = compare([row("get", 1000.0), row("list", 100.0)], [row("get", 900.0), row("list", 100.0)])
    assert [o["ratio"] for o in got["ops"]] == [0.9, 1.0]
    assert got["throughput_ratio"] == pytest.approx((0.9 * 1.0) ** 0.5)
    assert got["cost_pct"] == 5.1 and got["met"] is True
    assert compare([row("get", 1000.0)], [row("get", None)])["met"] is False
