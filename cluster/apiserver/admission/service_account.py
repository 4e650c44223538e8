"""ServiceAccount: kube-apiserver's admission plugin of that name, for new pods.

* A pod without ``serviceAccountName`` gets ``default``; the account must exist in the pod's
  namespace (``error looking up service account ns/name: serviceaccount "name" not found``). The
  ``default`` account is made by the serviceaccount controller a moment after its namespace, so,
  as kube does, a missing ``default`` is looked up live a few more times before the pod is refused.
* Unless the pod (first) or the account says ``automountServiceAccountToken: false``, the pod gets
  the projected volume ``kube-api-access-<5 random>``: a bound token (``expirationSeconds`` 3607, the
  node agent asks TokenRequest for it and renews it), ``ca.crt`` from the ``kube-root-ca.crt``
  ConfigMap the root-ca-cert-publisher keeps in every namespace, and the namespace from the downward
  API; every container and init container that has nothing at ``/var/run/secrets/kubernetes.io/
  serviceaccount`` mounts it there read-only.
* A pod without ``imagePullSecrets`` gets its account's.
* Mirror pods (the node agent's copies of static pods) are left as they are, but may reference no
  service account, Secret or token projection (the node could read what the pod cannot).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, ClassVar, Protocol

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import Admitted, Attributes, MutatingPlugin, Operation

DEFAULT_SERVICE_ACCOUNT = "default"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607  # kube's WarnOnlyBoundTokenExpirationSeconds
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PROJECTED_DEFAULT_MODE = 0o644
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet
DEFAULT_ACCOUNT_ATTEMPTS = 10  # kube's: the controller creates "default" shortly after the namespace


class ServiceAccountLookup(Protocol):
    async def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ServiceAccount, or None when there is none."""
        ...


def token_volume_source() -> dict[str, Any]:
    """The projected source of ``kube-api-access-*`` (kube's ``TokenVolumeSource``)."""
    return {
        "defaultMode": PROJECTED_DEFAULT_MODE,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }


def should_automount(account: dict[str, Any], pod: dict[str, Any]) -> bool:
    """The pod's preference wins, then the account's; true when neither says."""
    spec_value = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if spec_value is not None:
        return bool(spec_value)
    account_value = account.get("automountServiceAccountToken")
    return True if account_value is None else bool(account_value)


def mount_token(pod: dict[str, Any], volume_name: str) -> dict[str, Any]:
    """Mount the token volume (in place) in every container without a mount at the token path, and
    add the volume when some container needs it and the pod has no ``kube-api-access-*`` yet."""
    spec = pod.setdefault("spec", {})
    volumes = spec.get("volumes") or []
    existing = next(
        (v.get("name") for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None
    )
    name = existing or volume_name
    needed = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [
                *mounts,
                {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH},
            ]
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]
    return pod


def _mirror_refusal(pod: dict[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        return "a mirror pod may not reference service accounts"
    if _references_secrets(spec):
        return "a mirror pod may not reference secrets"
    for volume in spec.get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("serviceAccountToken") is not None:
                return "a mirror pod may not use ServiceAccountToken volume projections"
    return None


def _references_secrets(spec: dict[str, Any]) -> bool:
    if spec.get("imagePullSecrets"):
        return True
    for volume in spec.get("volumes") or []:
        if volume.get("secret") is not None:
            return True
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("secret") is not None:
                return True
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            if any((e.get("valueFrom") or {}).get("secretKeyRef") for e in container.get("env") or []):
                return True
            if any(e.get("secretRef") for e in container.get("envFrom") or []):
                return True
    return False


class ServiceAccount(MutatingPlugin):
    NAME: ClassVar[str] = "ServiceAccount"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    def __init__(
        self,
        accounts: ServiceAccountLookup,
        rng: random.Random | None = None,
        retry_interval: float = 0.2,  # kube waits 100-200 ms between its 10 tries
    ) -> None:
        self._accounts = accounts
        self._rng = rng or random.SystemRandom()
        self._retry_interval = retry_interval

    async def _account(self, namespace: str, name: str) -> dict[str, Any] | None:
        attempts = DEFAULT_ACCOUNT_ATTEMPTS if name == DEFAULT_SERVICE_ACCOUNT else 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._retry_interval)
            account = await self._accounts.get_service_account(namespace, name)
            if account is not None:
                return account
        return None

    async def admit(self, attrs: Attributes) -> Admitted:
        pod = attrs.object
        if attrs.kind != ("", "Pod") or attrs.subresource or not isinstance(pod.get("spec"), dict):
            return Admitted(pod)
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if MIRROR_ANNOTATION in annotations:
            refusal = _mirror_refusal(pod)
            if refusal:
                raise admission_forbidden(attrs, refusal)
            return Admitted(pod)
        spec = pod["spec"]
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        name = spec["serviceAccountName"]
        namespace = attrs.namespace or "default"
        account = await self._account(namespace, name)
        if account is None:
            raise admission_forbidden(
                attrs,
                f'error looking up service account {namespace}/{name}: serviceaccount "{name}" not found',
            )
        if should_automount(account, pod):
            suffix = "".join(self._rng.choice(_NAME_CHARS) for _ in range(5))
            mount_token(pod, VOLUME_PREFIX + suffix)
        if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name")} for s in account["imagePullSecrets"]]
        return Admitted(pod)
