"""``raykube kubeconfig --server URL`` and ``--user NAME``: kubeconfig files made from the data
directory's PKI, written (0600) to ``--out`` or printed. ``say`` prints the errors (the CLI's console);
each returns the command's exit code."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from cluster.apiserver.kubeconfig import kubeconfig_for_user as write_user_kubeconfig
from cluster.apiserver.kubeconfig import write_kubeconfig
from cluster.apiserver.tls import Pki, issue_client_cert
from cluster.client.kubeconfig import load_kubeconfig
from cluster.machinery.pki import certificate_hosts, normalize_host

Say = Callable[[str], object]


def kubeconfig_for_server(data_dir: Path, server: str, out: Path | None, *, say: Say = print) -> int:
    """An admin kubeconfig naming ``server`` (e.g. the head's public address, for a laptop), written
    to ``out`` (0600) or printed. The data directory's own kubeconfig keeps naming 127.0.0.1."""
    url = urlsplit(server)
    if url.scheme != "https" or not url.hostname:
        say(f"error: --server takes the API server's URL, such as https://203.0.113.7:6443 (got {server!r})")
        return 2
    pki = Pki.in_dir(data_dir / "pki")
    names = certificate_hosts(x509.load_pem_x509_certificate(pki.server_cert.read_bytes()))
    if normalize_host(url.hostname) not in names:
        print(
            f"warning: the API server's certificate names {', '.join(sorted(names))}, not {url.hostname}: "
            f"kubectl will refuse it. Add `--tls-san {url.hostname}` to `raykube up` (in deploy/*.yaml, the "
            "head's last start command) and run it again",
            file=sys.stderr,
        )
    if out is not None:
        print(write_kubeconfig(out, server=server, pki=pki))
        return 0
    with tempfile.TemporaryDirectory(prefix="raykube-kubeconfig-") as tmp:  # 0700, removed at once
        sys.stdout.write(write_kubeconfig(Path(tmp) / "kubeconfig", server=server, pki=pki).read_text())
    return 0


def kubeconfig_for_user(
    data_dir: Path,
    user: str,
    groups: list[str],
    days: int,
    server: str | None,
    out: Path | None,
    *,
    say: Say = print,
) -> int:
    """A kubeconfig for ``user`` in ``groups``: a client certificate from the cluster CA (CN = user,
    O = each group, ``days`` long), the admin kubeconfig's servers unless ``server`` is given; written
    to ``out`` (0600) or printed. What the user may do is up to RBAC bindings for the name or groups."""
    if not user.strip() or days <= 0:
        say("error: --user needs a name and --days a positive number")
        return 2
    admin = load_kubeconfig(str(data_dir / "kubeconfig"))
    servers = [server] if server else list(admin.servers or (admin.server,))
    pki = Pki.in_dir(data_dir / "pki")
    cert_pem, key_pem = issue_client_cert(pki, user, groups, days)

    def write(path: Path) -> Path:
        return write_user_kubeconfig(
            path, server=servers[0], pki=pki, user=user, cert_pem=cert_pem, key_pem=key_pem, servers=servers
        )

    if out is not None:
        print(write(out))
        return 0
    with tempfile.TemporaryDirectory(prefix="raykube-kubeconfig-") as tmp:  # 0700, removed at once
        sys.stdout.write(write(Path(tmp) / "kubeconfig").read_text())
    return 0
