"""nginx configuration from an ``IngressModel``: a pure renderer (text in, text out, no I/O).

``render(model, settings)`` returns the ``nginx.conf`` text and the certificate files it refers to
(relative paths under the prefix directory; the caller writes them 0600 before testing the config).

How Ingress semantics map onto nginx (each checked against a running nginx in the tests):
- Hosts: an exact host is an exact ``server_name`` (nginx prefers those over regexes); a wildcard
  ``*.example.com`` becomes the regex ``~^[^.]+\\.example\\.com$``: one DNS label, as the Ingress
  spec says (nginx's own ``*.example.com`` would match any depth). Rules without a host, and hosts
  that match no server, land in the catch-all ``default_server``.
- Paths: ``Exact /p`` is ``location = /p``. ``Prefix /p`` is element-wise (``/p``, ``/p/``,
  ``/p/x``, never ``/px``): ``location = /p`` plus ``location /p/``; ``Prefix /`` is
  ``location /``. nginx takes an exact location first and otherwise the longest prefix, which is
  Kubernetes' "longest path wins, Exact before Prefix for equal paths". When an Exact and a Prefix
  share a path, the Exact owns ``= /p``. ``ImplementationSpecific`` arrives here as Prefix.
- Backends: ``proxy_pass`` to an ``upstream`` of the Service port's ready endpoints (keep-alive
  connections); no ready endpoint: ``return 503``. A path no rule matches goes to the server's
  fallback (the default backend), else ``return 404``.
- TLS: a server whose host has a certificate also listens on the https port with that
  certificate (chosen by SNI via ``server_name``); the https catch-all rejects the handshake of
  names without a certificate (``ssl_reject_handshake``). Plain HTTP stays served for those hosts.

Certificate files are named by a hash of their content, so a new certificate never overwrites one
the running configuration still uses (a refused config leaves the old files intact).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from netplugins.ingress.model import IngressModel, PathRule, Server, TlsCert, Upstream

PROXY_HEADERS = (
    ("Host", "$host"),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ("X-Forwarded-Host", "$host"),
    ("X-Forwarded-Proto", "$scheme"),
    ("Upgrade", "$http_upgrade"),
    ("Connection", "$proxy_connection"),
)


@dataclass(frozen=True, slots=True)
class NginxSettings:
    """Where nginx lives and listens. ``prefix``: its private directory (absolute); ``user``: the
    workers' user (only meaningful when nginx starts as root)."""

    prefix: str
    listen_host: str
    http_port: int
    https_port: int
    user: str | None = None
    worker_processes: int = 1
    worker_connections: int = 4096
    access_log: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    files: dict[str, bytes]  # path relative to the prefix -> content (certificates, keys)


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_name(host: str) -> str:
    """nginx's ``server_name`` for an Ingress host; see the module docstring."""
    if host == "":
        return "_"
    if host.startswith("*."):
        return "~^[^.]+" + host[1:].replace(".", "\\.") + "$"
    return host


def cert_files(cert: TlsCert) -> tuple[str, str]:
    digest = hashlib.sha256(cert.cert_pem + b"\0" + cert.key_pem).hexdigest()[:24]
    return f"certs/{digest}.crt", f"certs/{digest}.key"


def locations(server: Server) -> list[tuple[str, str, str | None, bool]]:
    """``(modifier, path, upstream, has_upstream)`` per nginx location, in a stable order; ``=``
    locations first. ``has_upstream`` False with upstream None means 404, True with None 503."""
    exact: dict[str, tuple[str | None, bool]] = {}
    prefix: dict[str, tuple[str | None, bool]] = {}
    ordered: list[PathRule] = sorted(server.paths, key=lambda r: (r.path_type != "Exact", r.path))
    for rule in ordered:
        target = (rule.upstream, True)
        if rule.path_type == "Exact":
            exact.setdefault(rule.path, target)
        elif rule.path == "/":
            prefix.setdefault("/", target)
        else:
            exact.setdefault(rule.path, target)
            prefix.setdefault(rule.path + "/", target)
    prefix.setdefault("/", (server.fallback, server.fallback_set))
    return [("=", p, *t) for p, t in sorted(exact.items())] + [("", p, *t) for p, t in sorted(prefix.items())]


def _location(modifier: str, path: str, upstream: str | None, has_upstream: bool) -> list[str]:
    head = f"location {modifier} {path}" if modifier else f"location {path}"
    if upstream is not None:
        body = f"proxy_pass http://{upstream};"
    else:
        body = "return 503;" if has_upstream else "return 404;"
    return [f"    {head} {{", f"      {body}", "    }"]


def _server(server: Server, s: NginxSettings, files: dict[str, bytes]) -> list[str]:
    default = " default_server" if server.host == "" else ""
    lines = ["  server {", f"    listen {_addr(s.listen_host, s.http_port)}{default};"]
    if server.tls is not None:
        crt, key = cert_files(server.tls)
        files[crt], files[key] = server.tls.cert_pem, server.tls.key_pem
        lines += [
            f"    listen {_addr(s.listen_host, s.https_port)} ssl;",
            f"    ssl_certificate {s.prefix}/{crt};",
            f"    ssl_certificate_key {s.prefix}/{key};",
        ]
    elif server.host == "":
        lines += [
            f"    listen {_addr(s.listen_host, s.https_port)} ssl default_server;",
            "    ssl_reject_handshake on;",
        ]
    lines.append(f"    server_name {server_name(server.host)};")
    for loc in locations(server):
        lines += _location(*loc)
    return [*lines, "  }"]


def _upstream(u: Upstream) -> list[str]:
    servers = [f"    server {_addr(ip, port)} max_fails=0;" for ip, port in u.addresses]
    # ingress-nginx's defaults: 320 idle kept-alive connections per worker, 10000 requests each.
    return [
        "  upstream " + u.name + " {",
        *servers,
        "    keepalive 320;",
        "    keepalive_requests 10000;",
        "  }",
    ]


def render(model: IngressModel, s: NginxSettings) -> Rendered:
    """The whole ``nginx.conf`` for ``model``; see the module docstring."""
    files: dict[str, bytes] = {}
    p = s.prefix
    lines = [
        "# Generated by the raykube Ingress controller (netplugins/ingress); do not edit.",
        *([f"user {s.user};"] if s.user else []),
        f"worker_processes {s.worker_processes};",
        f"pid {p}/nginx.pid;",
        f"error_log {p}/logs/error.log notice;",
        "worker_shutdown_timeout 240s;",
        f"events {{ worker_connections {s.worker_connections}; }}",
        "http {",
        f"  access_log {p + '/logs/access.log' if s.access_log else 'off'};",
        *(f"  {k}_temp_path {p}/tmp/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        "  server_names_hash_bucket_size 128;",
        "  server_tokens off;",
        # Workers (nobody, when nginx starts as root) cannot reach the private prefix: never spool
        # request or response bodies to temp files, stream them instead.
        "  proxy_request_buffering off;",
        "  proxy_max_temp_file_size 0;",
        "  proxy_http_version 1.1;",
        "  proxy_next_upstream error timeout;",
        '  map $http_upgrade $proxy_connection { default upgrade; "" ""; }',
        *(f'  proxy_set_header {h} "{v}";' for h, v in PROXY_HEADERS),
    ]
    for u in model.upstreams:
        if u.addresses:
            lines += _upstream(u)
    for server in model.servers:
        lines += _server(server, s, files)
    lines.append("}")
    return Rendered("\n".join(lines) + "\n", files)
