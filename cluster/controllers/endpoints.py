"""The Endpoints controller: the legacy ``v1 Endpoints`` object of each Service with a selector.

As kube-controller-manager's ``endpoint`` controller does, each Service with a selector has an Endpoints
object of the same name whose subsets group its pods by resolved port list: Ready pods under
``addresses``, the others under ``notReadyAddresses`` (all under ``addresses`` with
``publishNotReadyAddresses``). Terminating pods are left out unless ``publishNotReadyAddresses``; pods
without an IP or in a terminal phase always are. The object carries the Service's labels, plus
``endpoints.kubernetes.io/managed-by: endpoint-controller`` and ``service.kubernetes.io/headless`` for
headless Services. It is written only when its subsets or labels differ; when the Service is deleted
its Endpoints go too (whoever wrote them, as in kube). Services without a selector are left to whoever
writes their Endpoints.

:func:`desired_subsets` and :func:`endpoints_changes` are pure; ``EndpointsController`` is the shell.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.endpointslice.reconciler import (
    HEADLESS_LABEL,
    endpoint_ports,
    pod_ip,
    port_key,
    selector_matches,
    service_has_selector,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from cluster.controllers.pods import is_pod_ready
from cluster.controllers.runtime import Controller, ControllerContext

MANAGED_BY_LABEL = "endpoints.kubernetes.io/managed-by"
MANAGED_BY = "endpoint-controller"


def endpoint_address(pod: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    address: dict[str, Any] = {
        "ip": pod_ip(pod),
        "targetRef": {
            "kind": "Pod",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
    }
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    if should_set_hostname(pod, service):
        address["hostname"] = spec["hostname"]
    return address


def _address_order(address: Mapping[str, Any]) -> tuple[str, str]:
    return (str(address.get("ip") or ""), str((address.get("targetRef") or {}).get("uid") or ""))


def desired_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Service's subsets: one per distinct port list, addresses sorted, subsets in port order."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    headless_without_ports = (service.get("spec") or {}).get("clusterIP") == "None" and not (
        service.get("spec") or {}
    ).get("ports")
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=publish):
            continue
        ports = endpoint_ports(service, pod)
        if not ports and not headless_without_ports:
            continue  # no port of the Service resolves in this pod
        key = port_key(ports)
        subset = groups.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": ports})
        which = "addresses" if publish or is_pod_ready(pod) else "notReadyAddresses"
        subset[which].append(endpoint_address(pod, service))
    subsets = []
    for key in sorted(groups):
        subset = groups[key]
        out: dict[str, Any] = {}
        for which in ("addresses", "notReadyAddresses"):
            if subset[which]:
                out[which] = sorted(subset[which], key=_address_order)
        if subset["ports"]:
            out["ports"] = sorted(subset["ports"], key=lambda p: (p["name"], p["port"], p["protocol"]))
        subsets.append(out)
    return subsets


def endpoints_labels(service: Mapping[str, Any]) -> dict[str, str]:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    labels = dict(meta.get("labels") or {})
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def endpoints_changes(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], current: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The Endpoints object to write (create when ``current`` is None), or None when it is right."""
    subsets = desired_subsets(service, pods)
    labels = endpoints_labels(service)
    if current is not None:
        same_labels = (current.get("metadata") or {}).get("labels") == labels
        if same_labels and (current.get("subsets") or []) == subsets:
            return None
        updated = copy.deepcopy(dict(current))
        updated["metadata"]["labels"] = labels
        updated["subsets"] = subsets
        return updated
    meta = service.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "labels": labels},
        "subsets": subsets,
    }


class EndpointsController(Controller):
    """Keeps the Endpoints of every selector Service in line with its pods."""

    NAME = "endpoint"
    COMPONENT = "endpoint-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = self.watch(
            "v1",
            "services",
            on_add=self.enqueue,
            on_update=lambda _o, n: self.enqueue(n),
            on_delete=self.enqueue,
        )
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed
        )
        self.endpoints = self.watch(
            "v1", "endpoints", on_add=None, on_update=lambda _o, n: self.enqueue(n), on_delete=self.enqueue
        )

    def _service_keys(self, pod: Mapping[str, Any]) -> set[str]:
        meta = pod.get("metadata") or {}
        return {
            f"{s['metadata']['namespace']}/{s['metadata']['name']}"
            for s in self.services.list(meta.get("namespace"))
            if service_has_selector(s) and selector_matches(s["spec"]["selector"], meta.get("labels"))
        }

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        for key in sorted(self._service_keys(pod)):
            self.enqueue(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for key in sorted(self._service_keys(old) | self._service_keys(new)):
            self.enqueue(key)

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        service = self.services.get(namespace, name)
        current = self.endpoints.get(namespace, name)
        if service is None:
            if current is not None:  # as kube: a deleted Service takes its Endpoints along
                try:
                    await self.client.delete("v1", "endpoints", name, namespace)
                except ApiError as e:
                    if not e.not_found:
                        raise
            return None
        if not service_has_selector(service) or service["metadata"].get("deletionTimestamp"):
            return None
        selector = service["spec"]["selector"]
        pods = [
            p for p in self.pods.list(namespace) if selector_matches(selector, p["metadata"].get("labels"))
        ]
        body = endpoints_changes(service, pods, current)
        if body is None:
            return None
        try:
            if current is None:
                await self.client.create("v1", "endpoints", body, namespace)
            else:
                await self.client.update("v1", "endpoints", body, namespace)
        except ApiError as e:
            if current is None and e.already_exists:
                return 0.1  # the cache has not seen it yet: look again with the object in hand
            self.recorder.event(
                service, "Warning", "FailedToUpdateEndpoint", f"Failed to update endpoint {key}: {e}"
            )
            raise
        return None
