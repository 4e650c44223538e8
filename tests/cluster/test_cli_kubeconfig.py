"""`raykube kubeconfig --server URL [--out FILE]`: an admin kubeconfig for a machine that reaches the API
server by another address (a laptop and the head's public IP), checked with the real kubectl against a
TLS server holding the data directory's serving certificate. No Ray: the command only reads the PKI."""

from __future__ import annotations

import asyncio
import base64
import stat
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from aiohttp import web
from kubernetes import client, config

from cluster.apiserver.kubeconfig import write_kubeconfig
from cluster.apiserver.tls import Pki, ensure_pki, server_ssl_context
from cluster.cli import main

KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
# A second loopback address stands in for the head's public one: reachable here, and not in the
# certificate until `raykube up --tls-san` adds it.
PUBLIC = "127.0.0.2"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory as `raykube up` leaves it: the PKI and the kubeconfig naming 127.0.0.1."""
    data = tmp_path / "data"
    pki = ensure_pki(data / "pki", hosts=["10.0.0.5", "head-1"])
    write_kubeconfig(data / "kubeconfig", server="https://127.0.0.1:6443", pki=pki)
    return data


def kubeconfig_cmd(data_dir: Path, *args: str) -> int:
    return main(["kubeconfig", "--data-dir", str(data_dir), *args])


def kubectl_version(kubeconfig: Path, pki: Pki, host: str) -> subprocess.CompletedProcess[str]:
    """Run `kubectl version` with ``kubeconfig`` against a TLS server on ``host`` serving ``pki``'s
    certificate (the kubeconfig's server is pointed at its port, only known once it listens)."""

    async def scenario() -> subprocess.CompletedProcess[str]:
        async def version(_: web.Request) -> web.Response:
            return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0"})

        app = web.Application()
        app.router.add_get("/version", version)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, ssl_context=server_ssl_context(pki))
        await site.start()
        port = runner.addresses[0][1]
        doc = yaml.safe_load(kubeconfig.read_text())
        doc["clusters"][0]["cluster"]["server"] = f"https://{host}:{port}"
        kubeconfig.write_text(yaml.safe_dump(doc))
        try:
            process = await asyncio.create_subprocess_exec(
                str(KUBECTL), "--kubeconfig", str(kubeconfig), "version", "-o", "json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            await runner.cleanup()
        return subprocess.CompletedProcess([], process.returncode or 0, out.decode(), err.decode())

    return asyncio.run(scenario())


def test_without_server_prints_the_local_kubeconfig_path(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kubeconfig_cmd(data_dir) == 0
    assert capsys.readouterr().out.strip() == str(data_dir / "kubeconfig")


def test_out_file_names_the_server_and_holds_the_admin_credentials(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "laptop" / "raykube.kubeconfig"
    out.parent.mkdir()
    assert kubeconfig_cmd(data_dir, "--server", "https://10.0.0.5:6443", "--out", str(out)) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert captured.err == ""  # 10.0.0.5 is in the certificate: no warning
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = yaml.safe_load(out.read_text())
    cluster = doc["clusters"][0]["cluster"]
    pki = Pki.in_dir(data_dir / "pki")
    assert cluster["server"] == "https://10.0.0.5:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    assert base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]) == pki.admin_cert.read_bytes()
    # The data directory's own kubeconfig is untouched.
    local = yaml.safe_load((data_dir / "kubeconfig").read_text())
    assert local["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    # The Python client reads it as kubectl does.
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(out), client_configuration=configuration)
    assert configuration.host == "https://10.0.0.5:6443"


def test_without_out_prints_the_kubeconfig(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kubeconfig_cmd(data_dir, "--server", "https://head-1:6443") == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["kind"] == "Config"
    assert doc["clusters"][0]["cluster"]["server"] == "https://head-1:6443"
    assert doc["current-context"] == "raykube"


@pytest.mark.parametrize("server", ["10.0.0.5:6443", "http://10.0.0.5:6443", "https://:6443"])
def test_a_server_that_is_not_an_https_url_is_refused(
    data_dir: Path, tmp_path: Path, server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k"
    assert kubeconfig_cmd(data_dir, "--server", server, "--out", str(out)) == 2
    assert "https://203.0.113.7:6443" in capsys.readouterr().out
    assert not out.exists()


def test_no_data_directory_says_to_run_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kubeconfig_cmd(tmp_path / "none", "--server", "https://10.0.0.5:6443") == 1
    assert "raykube up" in capsys.readouterr().out


def test_kubectl_reaches_the_server_by_an_address_the_certificate_names(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The public address works once the certificate names it (what `raykube up --tls-san` does);
    before, the command warns and says how to fix it, and kubectl indeed refuses the server."""
    out = tmp_path / "laptop.kubeconfig"
    pki = Pki.in_dir(data_dir / "pki")

    assert kubeconfig_cmd(data_dir, "--server", f"https://{PUBLIC}:6443", "--out", str(out)) == 0
    warning = capsys.readouterr().err
    assert f"not {PUBLIC}" in warning and f"--tls-san {PUBLIC}" in warning
    refused = kubectl_version(out, pki, PUBLIC)
    assert refused.returncode != 0
    assert "x509" in refused.stderr and PUBLIC in refused.stderr, refused.stderr

    ensure_pki(data_dir / "pki", hosts=["10.0.0.5", "head-1", PUBLIC])  # as `--tls-san 127.0.0.2` does
    assert kubeconfig_cmd(data_dir, "--server", f"https://{PUBLIC}:6443", "--out", str(out)) == 0
    assert capsys.readouterr().err == ""
    served = kubectl_version(out, pki, PUBLIC)
    assert served.returncode == 0, served.stderr
    assert '"gitVersion": "v1.33.0"' in served.stdout
