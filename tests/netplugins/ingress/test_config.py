"""The renderer's Ingress semantics, checked the honest way: the rendered configuration runs in a
real nginx (Debian's, under a private prefix on loopback) in front of small local HTTP backends,
and each case is a request whose answer says which backend (or status) the rule chose."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netplugins.ingress.config import NginxSettings, locations, render, server_name
from netplugins.ingress.model import build_model
from netplugins.ingress.nginx import NginxProcess, nginx_binary
from tests.capabilities import require
from tests.netplugins.ingress import kit
from tests.netplugins.ingress.kit import backend, rule

NS = "web"


def _no_nginx() -> str | None:
    return None if nginx_binary() else "no nginx binary"


def world(b: dict[str, kit.Backend]) -> dict[str, list[dict[str, Any]]]:
    """Services a (port 80 'http'), b (8080 named 'web'), c, d and down (no ready endpoint); a's
    slice also lists b's server as not ready, which must never get traffic."""
    services = [
        kit.service(NS, "a", [("http", 80)]),
        kit.service(NS, "b", [("web", 8080)]),
        kit.service(NS, "c", [("", 80)]),
        kit.service(NS, "d", [("", 80)]),
        kit.service(NS, "down", [("", 80)]),
    ]
    slices = [
        kit.endpoint_slice(NS, "a", "http", [("127.0.0.1", b["A"].port, True)], name="a-1"),
        kit.endpoint_slice(NS, "a", "http", [("127.0.0.1", b["B"].port, False)], name="a-2"),
        kit.endpoint_slice(NS, "b", "web", [("127.0.0.1", b["B"].port, True)]),
        kit.endpoint_slice(NS, "c", "", [("127.0.0.1", b["C"].port, True)]),
        kit.endpoint_slice(NS, "d", "", [("127.0.0.1", b["D"].port, True)]),
        kit.endpoint_slice(NS, "down", "", [("127.0.0.1", b["D"].port, False)]),
    ]
    routes = kit.ingress(
        NS,
        "routes",
        [
            rule(
                "foo.example.com",
                ("/foo", "Prefix", backend("a", 80)),
                ("/foo", "Exact", backend("b", "web")),
                ("/foo/bar/", "Prefix", backend("c", 80)),
                ("/impl", "ImplementationSpecific", backend("a", "http")),
                ("/down", "Prefix", backend("down", 80)),
            ),
            rule("*.example.com", ("/", "Prefix", backend("c", 80))),
            rule(None, ("/hostless", "Prefix", backend("a", 80))),
        ],
    )
    fallback = kit.ingress(
        NS, "fallback", [], created="2026-01-02T00:00:00Z", defaultBackend=backend("d", 80)
    )
    foreign = kit.ingress(NS, "foreign", [rule("other.test", ("/", "Prefix", backend("a", 80)))])
    foreign["spec"]["ingressClassName"] = "someone-else"
    return {
        "ingresses": [routes, fallback, foreign],
        "classes": [kit.INGRESS_CLASS],
        "services": services,
        "slices": slices,
        "secrets": [],
    }


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[NginxProcess, NginxSettings, asyncio.AbstractEventLoop]]:
    require("nginx", _no_nginx())
    loop = asyncio.new_event_loop()
    settings = NginxSettings(str(tmp_path / "nginx"), "127.0.0.1", kit.free_port(), kit.free_port())
    proc = NginxProcess(settings.prefix)
    try:
        yield proc, settings, loop
    finally:
        loop.run_until_complete(proc.stop())
        loop.close()


CASES = [
    pytest.param("foo.example.com", "/foo", "B /foo", id="exact-beats-prefix-on-equal-path"),
    pytest.param("foo.example.com", "/foo/", "A /foo/", id="prefix-trailing-slash"),
    pytest.param("foo.example.com", "/foo/x", "A /foo/x", id="prefix-below"),
    pytest.param("foo.example.com", "/foobar", 404, id="prefix-is-element-wise"),
    pytest.param("foo.example.com", "/foo/bar", "C /foo/bar", id="longest-prefix-wins"),
    pytest.param("foo.example.com", "/foo/bar/baz", "C /foo/bar/baz", id="longest-prefix-below"),
    pytest.param("foo.example.com", "/foo/barbaz", "A /foo/barbaz", id="longer-prefix-element-wise"),
    pytest.param("foo.example.com", "/impl/x", "A /impl/x", id="implementation-specific-is-prefix"),
    pytest.param("foo.example.com", "/down", 503, id="no-ready-endpoint-503"),
    pytest.param("foo.example.com", "/nothing", 404, id="no-path-no-default-404"),
    pytest.param("bar.example.com", "/x", "C /x", id="wildcard-one-label"),
    pytest.param("a.b.example.com", "/x", "D /x", id="wildcard-not-two-labels"),
    pytest.param("example.com", "/x", "D /x", id="wildcard-not-zero-labels"),
    pytest.param("unknown.test", "/hostless/y", "A /hostless/y", id="hostless-rule"),
    pytest.param("unknown.test", "/else", "D /else", id="default-backend"),
    pytest.param("other.test", "/", "D /", id="other-class-ignored"),
]


@pytest.mark.parametrize(("host", "path", "want"), CASES)
def test_matching_through_nginx(nginx: Any, host: str, path: str, want: str | int) -> None:
    proc, settings, loop = nginx
    with kit.backends("A", "B", "C", "D") as b:
        loop.run_until_complete(proc.start(render(build_model(**world(b)), settings)))
        for _ in range(4):  # the not-ready endpoint of a would show up in a round robin
            status, body = kit.get(settings.http_port, host, path)
            assert (status if isinstance(want, int) else body) == want, (status, body)


def test_render_shapes() -> None:
    assert server_name("*.example.com") == "~^[^.]+\\.example\\.com$"
    assert server_name("") == "_"
    with kit.backends("A", "B", "C", "D") as b:
        model = build_model(**world(b))
    served = set(model.served)
    assert served == {"web/routes", "web/fallback"}
    foo = next(s for s in model.servers if s.host == "foo.example.com")
    locs = {(m, p): u for m, p, u, _ in locations(foo)}
    assert locs[("=", "/foo")] == "web-b-8080" and locs[("", "/foo/")] == "web-a-80"


def test_class_selection() -> None:
    with kit.backends("A", "B", "C", "D") as b:
        w = world(b)
    unclassed = kit.ingress(NS, "unclassed", [rule("u.test", ("/", "Prefix", backend("a", 80)))])
    del unclassed["spec"]["ingressClassName"]
    w["ingresses"] = [unclassed]
    assert build_model(**w).served == ("web/unclassed",)
    not_default = {**kit.INGRESS_CLASS, "metadata": {"name": "raykube"}}
    w["classes"] = [not_default]
    assert build_model(**w).served == ()


def test_tls_sni(nginx: Any, tmp_path: Path) -> None:
    proc, settings, loop = nginx
    cert, key = kit.self_signed("secure.example.com")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert)
    with kit.backends("A", "B", "C", "D") as b:
        w = world(b)
        w["secrets"] = [kit.tls_secret(NS, "secure-tls", cert, key)]
        w["ingresses"].append(
            kit.ingress(
                NS,
                "secure",
                [rule("secure.example.com", ("/", "Prefix", backend("c", 80)))],
                tls=[{"hosts": ["secure.example.com"], "secretName": "secure-tls"}],
            )
        )
        loop.run_until_complete(proc.start(render(build_model(**w), settings)))
        assert kit.get_tls(settings.https_port, "secure.example.com", "/s", str(ca)) == (200, "C /s")
        assert kit.get(settings.http_port, "secure.example.com", "/s") == (200, "C /s")
        with pytest.raises(ssl.SSLError):  # no certificate for that name: the handshake is refused
            kit.get_tls(settings.https_port, "foo.example.com", "/foo", str(ca))
        files = list((Path(settings.prefix) / "certs").iterdir())
        assert len(files) == 2 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)


def test_reload_keeps_in_flight_request(nginx: Any) -> None:
    proc, settings, loop = nginx
    with kit.backends("A", "B", "C", "D") as b:
        w = world(b)
        loop.run_until_complete(proc.start(render(build_model(**w), settings)))
        result: list[tuple[int, str]] = []
        import threading

        t = threading.Thread(
            target=lambda: result.append(kit.get(settings.http_port, "bar.example.com", "/slow"))
        )
        t.start()
        assert b["C"].slow_started.wait(30)
        w["ingresses"] = [i for i in w["ingresses"] if i["metadata"]["name"] != "routes"]
        applied = loop.run_until_complete(proc.apply(render(build_model(**w), settings)))
        assert applied.ok and proc.reloads == 1
        assert kit.get(settings.http_port, "bar.example.com", "/x") == (200, "D /x")  # new config serves
        b["C"].release.set()
        t.join(30)
        assert result == [(200, "C /slow")]  # the request that was in flight finished on the old worker


def test_bad_config_keeps_old_one(nginx: Any) -> None:
    proc, settings, loop = nginx
    with kit.backends("A", "B", "C", "D") as b:
        w = world(b)
        loop.run_until_complete(proc.start(render(build_model(**w), settings)))
        before = proc.conf.read_text()
        w["secrets"] = [kit.tls_secret(NS, "broken", b"not a certificate", b"not a key")]
        w["ingresses"][0]["spec"]["tls"] = [{"hosts": ["foo.example.com"], "secretName": "broken"}]
        w["ingresses"][0]["spec"]["rules"][0]["http"]["paths"][0]["backend"] = backend("d", 80)
        applied = loop.run_until_complete(proc.apply(render(build_model(**w), settings)))
        assert not applied.ok and "PEM" in applied.message
        assert proc.conf.read_text() == before and proc.reloads == 0
        assert kit.get(settings.http_port, "foo.example.com", "/foo/x") == (200, "A /foo/x")  # old config
