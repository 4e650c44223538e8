"""The root-ca-cert-publisher: kube-root-ca.crt with the cluster CA in every active namespace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.controllers.root_ca_publisher import (
    CONFIGMAP,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    RootCACertPublisher,
    desired_configmap,
)
from cluster.controllers.runtime import ControllerContext, ControllerOptions, SharedInformers
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def configmap(data: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": CONFIGMAP, "namespace": "team", "resourceVersion": "7"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_desired_configmap() -> None:
    made = desired_configmap("team", CA, None)
    assert made is not None
    assert made["data"] == {"ca.crt": CA}
    assert made["metadata"] == {
        "name": CONFIGMAP,
        "namespace": "team",
        "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
    }
    assert (
        desired_configmap("team", CA, configmap({"ca.crt": CA}, {DESCRIPTION_ANNOTATION: DESCRIPTION}))
        is None
    )
    fixed = desired_configmap("team", CA, configmap({"ca.crt": "other", "extra": "x"}, {"keep": "me"}))
    assert fixed is not None
    assert fixed["data"] == {"ca.crt": CA}
    assert fixed["metadata"]["annotations"] == {"keep": "me", DESCRIPTION_ANNOTATION: DESCRIPTION}
    assert fixed["metadata"]["resourceVersion"] == "7"  # an update of what was read


def run(
    ca: str, namespace: dict[str, Any] | None, existing: dict[str, Any] | None
) -> tuple[FakeClient, float | None]:
    client = FakeClient()
    informers = SharedInformers(client)  # type: ignore[arg-type]
    ctx = ControllerContext(
        client,  # type: ignore[arg-type]
        informers,
        FakeClock(),  # type: ignore[arg-type]
        lambda _: FakeRecorder(),
        ControllerOptions(root_ca_pem=ca),
    )
    controller = RootCACertPublisher(ctx)
    if namespace is not None:
        informers.lister("v1", "namespaces").upsert(namespace)
    if existing is not None:
        client.put("v1", "configmaps", existing)
        informers.lister("v1", "configmaps").upsert(existing)
    return client, asyncio.run(controller.reconcile("team"))


ACTIVE = {"metadata": {"name": "team"}, "status": {"phase": "Active"}}
TERMINATING = {"metadata": {"name": "team"}, "status": {"phase": "Terminating"}}


@pytest.mark.parametrize(
    ("ca", "namespace", "existing", "writes"),
    [
        pytest.param(CA, ACTIVE, None, [("create", "v1", "configmaps", "team", CONFIGMAP)], id="creates"),
        pytest.param(
            CA, ACTIVE, configmap({"ca.crt": CA}, {DESCRIPTION_ANNOTATION: DESCRIPTION}), [], id="up-to-date"
        ),
        pytest.param(
            CA,
            ACTIVE,
            configmap({"ca.crt": "old"}),
            [("update", "v1", "configmaps", "team", CONFIGMAP)],
            id="fixes",
        ),
        pytest.param(CA, TERMINATING, None, [], id="terminating"),
        pytest.param(CA, None, None, [], id="gone"),
        pytest.param("", ACTIVE, None, [], id="no-ca"),
    ],
)
def test_reconcile(
    ca: str, namespace: dict[str, Any] | None, existing: dict[str, Any] | None, writes: list[Any]
) -> None:
    client, again = run(ca, namespace, existing)
    assert again is None
    assert [c[:5] for c in client.calls if c[0] in ("create", "update")] == writes
    if writes:
        stored = client.stored("v1", "configmaps", CONFIGMAP, "team")
        assert stored is not None and stored["data"] == {"ca.crt": CA}
