"""ServiceAccount admission: default account, existence, the kube-api-access token volume, image
pull secrets, mirror pods."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cluster.apiserver.admission.service_account import (
    MIRROR_ANNOTATION,
    TOKEN_MOUNT_PATH,
    ServiceAccount,
    token_volume_source,
)
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, run


class Accounts:
    def __init__(self, **accounts: dict[str, Any]) -> None:
        self.accounts = accounts
        self.asked = 0

    async def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked += 1
        return self.accounts.get(name)


def plugin(accounts: Accounts) -> ServiceAccount:
    return ServiceAccount(accounts, rng=random.Random(1), retry_interval=0)


def test_a_pod_gets_the_default_account_and_its_token_volume() -> None:
    body = pod(initContainers=[{"name": "init", "image": "busybox"}])
    out = run(plugin(Accounts(default={})).admit(attrs(body))).object
    spec = out["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = spec["volumes"]
    assert (
        volume["name"].startswith("kube-api-access-") and len(volume["name"]) == len("kube-api-access-") + 5
    )
    assert volume["projected"] == token_volume_source()
    assert volume["projected"]["sources"][0] == {
        "serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}
    }
    mount = {"name": volume["name"], "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["initContainers"][0]["volumeMounts"] == [mount]


@pytest.mark.parametrize(
    ("pod_says", "account_says", "mounted"),
    [
        pytest.param(None, None, True, id="neither"),
        pytest.param(None, False, False, id="account-false"),
        pytest.param(True, False, True, id="pod-wins-true"),
        pytest.param(False, True, False, id="pod-wins-false"),
    ],
)
def test_automount(pod_says: bool | None, account_says: bool | None, mounted: bool) -> None:
    account: dict[str, Any] = {} if account_says is None else {"automountServiceAccountToken": account_says}
    spec: dict[str, Any] = {} if pod_says is None else {"automountServiceAccountToken": pod_says}
    out = run(plugin(Accounts(default=account)).admit(attrs(pod(**spec)))).object
    assert bool(out["spec"].get("volumes")) is mounted


def test_an_existing_mount_at_the_token_path_is_kept() -> None:
    body = pod(volumes=[{"name": "mine", "emptyDir": {}}])
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]
    out = run(plugin(Accounts(default={})).admit(attrs(body))).object
    assert out["spec"]["volumes"] == [{"name": "mine", "emptyDir": {}}]


def test_a_missing_account_is_refused_with_kubes_text() -> None:
    accounts = Accounts()
    message = refused(plugin(accounts).admit(attrs(pod(serviceAccountName="builder"))))
    assert message == (
        'pods "web" is forbidden: error looking up service account team/builder: '
        'serviceaccount "builder" not found'
    )
    assert accounts.asked == 1
    defaults = Accounts()
    refused(plugin(defaults).admit(attrs(pod())))
    assert defaults.asked == 10  # "default" is made by a controller: looked up again a few times


def test_image_pull_secrets_come_from_the_account_unless_the_pod_has_some() -> None:
    account = {"imagePullSecrets": [{"name": "regcred"}], "automountServiceAccountToken": False}
    out = run(plugin(Accounts(default=account)).admit(attrs(pod()))).object
    assert out["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    own = run(plugin(Accounts(default=account)).admit(attrs(pod(imagePullSecrets=[{"name": "x"}])))).object
    assert own["spec"]["imagePullSecrets"] == [{"name": "x"}]


def mirror(**spec: Any) -> dict[str, Any]:
    body = pod(**spec)
    body["metadata"]["annotations"] = {MIRROR_ANNOTATION: "hash"}
    return body


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"serviceAccountName": "default"}, "a mirror pod may not reference service accounts", id="sa"
        ),
        pytest.param(
            {"volumes": [{"name": "s", "secret": {"secretName": "x"}}]},
            "a mirror pod may not reference secrets",
            id="secret",
        ),
        pytest.param(
            {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
            "a mirror pod may not use ServiceAccountToken volume projections",
            id="token",
        ),
    ],
)
def test_mirror_pods(spec: dict[str, Any], message: str) -> None:
    assert refused(plugin(Accounts()).admit(attrs(mirror(**spec)))) == f'pods "web" is forbidden: {message}'


def test_a_plain_mirror_pod_is_left_alone() -> None:
    out = run(plugin(Accounts()).admit(attrs(mirror()))).object
    assert "serviceAccountName" not in out["spec"] and "volumes" not in out["spec"]
