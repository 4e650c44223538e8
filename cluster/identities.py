"""Each component's own identity: a client certificate from the cluster CA, handed over in a kubeconfig.

No component of raykube holds the admin identity (``system:masters``) any more: like a kubeadm
cluster, each authenticates as the user Kubernetes' bootstrap RBAC policy (and raykube's own
``cluster.apiserver.auth.raykube_policy``) grants exactly what it does:

* the scheduler as ``system:kube-scheduler`` (kube's ``system:kube-scheduler`` and
  ``system:volume-scheduler`` roles);
* the controller manager's shared informers and its leader election as
  ``system:kube-controller-manager``, and each controller's writes as its own ServiceAccount,
  ``system:serviceaccount:kube-system:<name>`` (kube-controller-manager's
  ``--use-service-account-credentials``; Kubernetes' names, listed in
  ``cluster.controllers.registry.SERVICE_ACCOUNTS``);
* each node's service proxy as ``system:kube-proxy`` (``system:node-proxier``), its agent and network
  plugin as ``system:node:<name>`` in ``system:nodes`` (the Node authorizer);
* cluster DNS as ``kube-system/kube-dns`` and the Ingress controller as
  ``kube-system/raykube-ingress``.

ServiceAccount identities are certificates too (CN = the ServiceAccount's user name, O = its
groups), not TokenRequest tokens as kube-controller-manager fetches them: a certificate needs no
ServiceAccount object, no refresh loop and no API call before the first request, and the API server
checks it without a store read. What it gives up is revocation by deleting the ServiceAccount; the
certificates live as long as the CA's other client certificates and are re-issued at every
``raykube up``. Pure functions over the PKI: no Ray here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.apiserver.auth.user import (
    NODE_PREFIX,
    NODES,
    service_account_groups,
    service_account_username,
)
from cluster.apiserver.kubeconfig import kubeconfig_document
from cluster.apiserver.tls import Pki
from cluster.client.kubeconfig import SERVERS_EXTENSION
from cluster.machinery import pki as certutil

KUBE_SYSTEM = "kube-system"


@dataclass(frozen=True, slots=True)
class Identity:
    """A user name and its groups, as the client certificate carries them (CN and each O)."""

    user: str
    groups: tuple[str, ...] = ()

    @staticmethod
    def service_account(name: str, namespace: str = KUBE_SYSTEM) -> Identity:
        return Identity(service_account_username(namespace, name), service_account_groups(namespace))

    @staticmethod
    def node(name: str) -> Identity:
        return Identity(f"{NODE_PREFIX}{name}", (NODES,))


SCHEDULER = Identity("system:kube-scheduler")
CONTROLLER_MANAGER = Identity("system:kube-controller-manager")
KUBE_PROXY = Identity("system:kube-proxy")
DNS = Identity.service_account("kube-dns")
INGRESS = Identity.service_account("raykube-ingress")


def subject(identity: Identity) -> x509.Name:
    """CN = the user, each O a group. X.509 bounds a CN to 64 characters (RFC 5280's
    ub-common-name), which some ServiceAccount user names pass
    (``system:serviceaccount:kube-system:clusterrole-aggregation-controller`` has 68): the bound is
    not checked for those, as parsers (OpenSSL's, Go's) read longer names unchanged."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in identity.groups]
    with warnings.catch_warnings():  # cryptography still warns about the length it lets through
        warnings.simplefilter("ignore", UserWarning)
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user, _validate=False))
    return x509.Name(attributes)


def issue(pki: Pki, identity: Identity, days: int = 365) -> tuple[bytes, bytes]:
    """A client certificate for ``identity`` from the cluster CA: (certificate PEM, key PEM)."""
    cert, key = certutil.issue_leaf(
        *certutil.load_ca(pki),
        subject=subject(identity),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        now=datetime.now(UTC),
        validity=timedelta(days=days),
    )
    return certutil.cert_pem(cert), certutil.key_pem(key)


def kubeconfig_text(pki: Pki, identity: Identity, servers: list[str]) -> str:
    """A kubeconfig (YAML text) for a new certificate of ``identity``; ``servers[0]`` is the one
    kubectl uses, all of them go into the ``raykube.io/servers`` extension for our client."""
    cert_pem, key_pem = issue(pki, identity)
    document = kubeconfig_document(
        server=servers[0],
        servers=servers,
        cluster_name="raykube",
        user=identity.user,
        context="raykube",
        certificate_authority=pki.ca_cert.read_bytes(),
        client_certificate=cert_pem,
        client_key=key_pem,
    )
    return str(yaml.safe_dump(document, sort_keys=False))


def admin_servers(kubeconfig: Path) -> list[str]:
    """The API servers the admin kubeconfig (written by ``deploy_apiserver``) names, in its order."""
    document: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    cluster = document["clusters"][0]["cluster"]
    servers = [str(cluster["server"])]
    for extension in cluster.get("extensions") or ():
        if extension.get("name") == SERVERS_EXTENSION:
            servers += [str(s) for s in (extension.get("extension") or {}).get("servers") or ()]
    return list(dict.fromkeys(servers))


def component_kubeconfig(data_dir: Path, identity: Identity) -> str:
    """A kubeconfig for ``identity`` that reaches the same API servers as ``data_dir/kubeconfig``."""
    return kubeconfig_text(Pki.in_dir(data_dir / "pki"), identity, admin_servers(data_dir / "kubeconfig"))


def service_account_kubeconfigs(data_dir: Path, accounts: set[str]) -> dict[str, str]:
    """One kubeconfig per ServiceAccount name of ``kube-system`` in ``accounts``."""
    pki = Pki.in_dir(data_dir / "pki")
    servers = admin_servers(data_dir / "kubeconfig")
    return {name: kubeconfig_text(pki, Identity.service_account(name), servers) for name in sorted(accounts)}
