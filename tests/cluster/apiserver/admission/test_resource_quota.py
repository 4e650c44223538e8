"""ResourceQuota admission: usage charged to status.used with a resourceVersion precondition, kube's
refusals, and no double spending by concurrent creates."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from cluster.apiserver.admission.interfaces import Operation
from cluster.apiserver.admission.resource_quota import QuotaConflict, ResourceQuota
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, resource, run

SERVICES = resource("", "v1", "services")


class Quotas:
    """Quotas with a resourceVersion each; ``update_quota_status`` is a compare-and-swap."""

    def __init__(self, *quotas: dict[str, Any]) -> None:
        self.quotas = {q["metadata"]["name"]: q for q in quotas}
        for q in quotas:
            q["metadata"].setdefault("resourceVersion", "1")
        self.writes = 0
        self.conflicts = 0

    async def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)  # let a concurrent create read the same version
        return copy.deepcopy(list(self.quotas.values()))

    async def update_quota_status(self, quota: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        current = self.quotas[quota["metadata"]["name"]]
        if current["metadata"]["resourceVersion"] != quota["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise QuotaConflict(quota["metadata"]["name"])
        stored = copy.deepcopy(quota)
        stored["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.quotas[quota["metadata"]["name"]] = stored
        self.writes += 1
        return stored


def quota(
    name: str, hard: dict[str, str], used: dict[str, str] | None = None, known: bool = True
) -> dict[str, Any]:
    status = {"hard": hard, "used": used or dict.fromkeys(hard, "0")} if known else {}
    return {"metadata": {"name": name, "namespace": "team"}, "spec": {"hard": hard}, "status": status}


def limited(cpu: str) -> dict[str, Any]:
    body = pod()
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    return body


def test_a_create_is_charged() -> None:
    quotas = Quotas(quota("q", {"pods": "2", "requests.cpu": "1"}))
    run(ResourceQuota(quotas).validate(attrs(limited("250m"))))
    assert quotas.quotas["q"]["status"]["used"] == {"pods": "1", "requests.cpu": "250m"}


def test_over_the_quota_is_refused_with_kubes_text() -> None:
    quotas = Quotas(quota("q", {"pods": "2", "requests.cpu": "1"}, {"pods": "2", "requests.cpu": "900m"}))
    assert refused(ResourceQuota(quotas).validate(attrs(limited("250m")))) == (
        'pods "web" is forbidden: exceeded quota: q, requested: pods=1,requests.cpu=250m, '
        "used: pods=2,requests.cpu=900m, limited: pods=2,requests.cpu=1"
    )
    assert quotas.writes == 0


def test_unknown_status_and_missing_requests() -> None:
    assert refused(ResourceQuota(Quotas(quota("q", {"pods": "1"}, known=False))).validate(attrs(pod()))) == (
        'pods "web" is forbidden: status unknown for quota: q, resources: pods'
    )
    assert refused(
        ResourceQuota(Quotas(quota("compute", {"limits.cpu": "2", "requests.memory": "1Gi"}))).validate(
            attrs(pod())
        )
    ) == (
        'pods "web" is forbidden: failed quota: compute: '
        "must specify limits.cpu for: web; requests.memory for: web"
    )


def test_quotas_that_do_not_count_the_object_are_untouched() -> None:
    quotas = Quotas(quota("q", {"services": "1"}))
    run(ResourceQuota(quotas).validate(attrs(pod())))
    assert quotas.writes == 0
    service = {"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    run(ResourceQuota(quotas).validate(attrs(service, SERVICES)))
    assert quotas.quotas["q"]["status"]["used"] == {"services": "1"}


def test_dry_run_charges_nothing() -> None:
    quotas = Quotas(quota("q", {"pods": "1"}))
    run(ResourceQuota(quotas).validate(attrs(pod(), dry_run=True)))
    assert quotas.writes == 0


def test_two_concurrent_creates_cannot_both_take_the_last_pod() -> None:
    quotas = Quotas(quota("q", {"pods": "1"}))
    plugin = ResourceQuota(quotas)

    async def both() -> list[Any]:
        return await asyncio.gather(
            plugin.validate(attrs(pod("a"))), plugin.validate(attrs(pod("b"))), return_exceptions=True
        )

    results = asyncio.run(both())
    assert sorted(r is None for r in results) == [False, True], results
    assert quotas.conflicts >= 1  # the loser read the quota before the winner's write, and re-read it
    assert quotas.quotas["q"]["status"]["used"] == {"pods": "1"}
    (loser,) = [r for r in results if r is not None]
    assert "exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1" in str(loser)


def test_a_growing_claim_is_charged_the_difference() -> None:
    claims = resource("", "v1", "persistentvolumeclaims")

    def claim(size: str) -> dict[str, Any]:
        return {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": size}}}}

    quotas = Quotas(quota("q", {"requests.storage": "10Gi"}, {"requests.storage": "8Gi"}))
    plugin = ResourceQuota(quotas)
    run(plugin.validate(attrs(claim("2Gi"), claims, operation=Operation.UPDATE, old=claim("1Gi"))))
    assert quotas.quotas["q"]["status"]["used"] == {"requests.storage": "9Gi"}
    assert refused(
        plugin.validate(attrs(claim("4Gi"), claims, operation=Operation.UPDATE, old=claim("2Gi")))
    ) == (
        'persistentvolumeclaims "data" is forbidden: exceeded quota: q, requested: requests.storage=2Gi, '
        "used: requests.storage=9Gi, limited: requests.storage=10Gi"
    )
    run(
        plugin.validate(attrs(claim("1Gi"), claims, operation=Operation.UPDATE, old=claim("2Gi")))
    )  # shrinking
    run(plugin.validate(attrs(pod(), operation=Operation.UPDATE, old=pod())))  # pods: nothing on update
    assert quotas.writes == 1
