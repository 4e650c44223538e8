"""The Ingress controller's control loop: informers in, nginx configuration and API writes out.

``IngressController(client, nginx, settings, events)`` watches Ingresses, IngressClasses,
Services, EndpointSlices and Secrets. Handlers only wake the loop; the loop waits ``debounce``
seconds for a burst of changes to settle, then reconciles the whole state (level-triggered):

1. ensure our IngressClass ``raykube`` (created once, default-annotated; never overwritten), the
   LoadBalancer Service ``kube-system/raykube-ingress`` (http 80 / https 443 to nginx's ports, no
   selector) and its EndpointSlice pointing at nginx (``host_ip``);
2. render the model (``model.build_model``) into nginx's configuration (``config.render``); if it
   differs from what nginx serves, ``NginxProcess.apply`` it: a refused configuration is logged,
   becomes a Warning Event (``ReloadRefused``) on the Ingresses that changed since the last good
   one, and the old configuration keeps serving;
3. copy the Service's ``status.loadBalancer.ingress`` (ip/hostname) into every served Ingress'
   status when it differs.

Model warnings (a missing Service or Secret, a skipped path) become Warning Events once each. A
failing reconcile is logged and retried after ``retry`` seconds; the loop never dies of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from cluster.client import events as ev
from cluster.client.errors import ApiError
from cluster.client.event_recorder import EventSink
from cluster.client.informer import Informer
from cluster.client.rest import ApiClient
from cluster.machinery.tasks import cancel_and_wait
from netplugins.ingress.config import NginxSettings, Rendered, render
from netplugins.ingress.model import (
    CONTROLLER,
    DEFAULT_CLASS_ANNOTATION,
    SERVICE_NAME_LABEL,
    IngressModel,
    Server,
    build_model,
)
from netplugins.ingress.nginx import NginxProcess

log = logging.getLogger("raykube.ingress")

CLASS_NAME = "raykube"
SERVICE_NAMESPACE = "kube-system"
SERVICE_NAME = "raykube-ingress"
MANAGED_BY = "raykube-ingress-controller"  # a label value: no "/"
NET = "networking.k8s.io/v1"


def ingress_class() -> dict[str, Any]:
    return {
        "apiVersion": NET,
        "kind": "IngressClass",
        "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": CONTROLLER},
    }


def service_ports(s: NginxSettings) -> list[dict[str, Any]]:
    return [
        {"name": "http", "port": 80, "targetPort": s.http_port, "protocol": "TCP"},
        {"name": "https", "port": 443, "targetPort": s.https_port, "protocol": "TCP"},
    ]


def publish_service(s: NginxSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE_NAME,
            "namespace": SERVICE_NAMESPACE,
            "labels": {"app.kubernetes.io/name": SERVICE_NAME},
        },
        "spec": {"type": "LoadBalancer", "ports": service_ports(s)},
    }


def publish_slice(s: NginxSettings) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SERVICE_NAME,
            "namespace": SERVICE_NAMESPACE,
            "labels": {
                SERVICE_NAME_LABEL: SERVICE_NAME,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv6" if ":" in s.listen_host else "IPv4",
        "endpoints": [{"addresses": [s.listen_host], "conditions": {"ready": True}}],
        "ports": [
            {"name": "http", "port": s.http_port, "protocol": "TCP"},
            {"name": "https", "port": s.https_port, "protocol": "TCP"},
        ],
    }


def lb_status(service: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The Service's load-balancer addresses as Ingress status entries (ip/hostname only)."""
    entries = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [
        {k: str(e[k]) for k in ("ip", "hostname") if e.get(k)}
        for e in entries
        if e.get("ip") or e.get("hostname")
    ]


def _same_ports(have: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    def key(ports: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (p.get("name"), p.get("port"), p.get("targetPort"), p.get("protocol", "TCP")) for p in ports
        )

    return key(have) == key(want)


class IngressController:
    def __init__(
        self,
        client: ApiClient,
        nginx: NginxProcess,
        settings: NginxSettings,
        events: EventSink,
        *,
        debounce: float = 0.2,
        retry: float = 2.0,
    ) -> None:
        self.client = client
        self.nginx = nginx
        self.settings = settings
        self.events = events
        self.debounce = debounce
        self.retry = retry
        self.informers = {
            "ingresses": Informer(client, NET, "ingresses"),
            "ingressclasses": Informer(client, NET, "ingressclasses"),
            "services": Informer(client, "v1", "services"),
            "endpointslices": Informer(client, "discovery.k8s.io/v1", "endpointslices"),
            "secrets": Informer(client, "v1", "secrets"),
        }
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.serving: Rendered | None = None
        self.model: IngressModel | None = None
        self.refused: str | None = None  # nginx's message for the last refused configuration
        self._good_versions: dict[str, str] = {}  # Ingress key -> resourceVersion in the serving config
        self._warned: set[tuple[str, str]] = set()
        self.reconciles = 0

    def _changed(self, *_: Any) -> None:
        self._wake.set()

    async def start(self, timeout: float = 60.0) -> None:
        """Start the informers, wait for their first list, reconcile once (starting nginx)."""
        for inf in self.informers.values():
            inf.add_handler(self._changed, self._changed, self._changed)
            self._tasks.append(asyncio.create_task(inf.run()))
        for name, inf in self.informers.items():
            if not await inf.wait_synced(timeout):
                raise TimeoutError(f"the {name} informer did not sync within {timeout}s")
        # nginx starts empty (everything 404), so a first configuration nginx refuses is handled
        # like any later one: refused, reported, and the empty one keeps serving.
        empty = render(IngressModel((Server("", ()),), (), ()), self.settings)
        await self.nginx.start(empty)
        self.serving = empty
        await self.reconcile()
        self._tasks.append(asyncio.create_task(self._loop()))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        await self.nginx.stop()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.debounce)  # let a burst of changes settle into one reload
            self._wake.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingress reconcile failed; retrying in %ss", self.retry)
                await asyncio.sleep(self.retry)
                self._wake.set()

    def _list(self, name: str) -> list[dict[str, Any]]:
        return self.informers[name].store.list()

    async def reconcile(self) -> None:
        """One pass over the whole state; see the module docstring."""
        self.reconciles += 1
        await self._ensure_api_objects()
        ingresses = self._list("ingresses")
        model = build_model(
            ingresses,
            self._list("ingressclasses"),
            self._list("services"),
            self._list("endpointslices"),
            self._list("secrets"),
        )
        self._warn(model, ingresses)
        rendered = render(model, self.settings)
        versions = {_key(i): str(i["metadata"].get("resourceVersion")) for i in ingresses}
        if rendered != self.serving:
            applied = await self.nginx.apply(rendered)
            if applied.ok:
                self._served(rendered, model, versions)
            elif applied.message != self.refused:
                self.refused = applied.message
                self._refused(applied.message, ingresses, model)
        await self._publish_status(ingresses)

    def _served(self, rendered: Rendered, model: IngressModel, versions: dict[str, str]) -> None:
        self.serving, self.model, self.refused = rendered, model, None
        self._good_versions = versions
        log.info("nginx serves %d Ingress(es) on %d server(s)", len(model.served), len(model.servers))

    def _refused(self, message: str, ingresses: list[dict[str, Any]], model: IngressModel) -> None:
        changed = [
            i
            for i in ingresses
            if _key(i) in model.served
            and self._good_versions.get(_key(i)) != str(i["metadata"].get("resourceVersion"))
        ]
        for ing in changed or [i for i in ingresses if _key(i) in model.served]:
            self.events.event(
                _ref(ing),
                "Warning",
                "ReloadRefused",
                f"nginx refused the configuration; the previous one keeps serving: {message}"[:1000],
            )

    def _warn(self, model: IngressModel, ingresses: list[dict[str, Any]]) -> None:
        by_key = {_key(i): i for i in ingresses}
        for key, message in model.warnings:
            if (key, message) in self._warned or key not in by_key:
                continue
            self._warned.add((key, message))
            self.events.event(_ref(by_key[key]), "Warning", "IngressProblem", message)

    async def _ensure_api_objects(self) -> None:
        classes = self.informers["ingressclasses"].store
        if classes.get(None, CLASS_NAME) is None:
            await self._create(NET, "ingressclasses", ingress_class(), None)
        svc = self.informers["services"].store.get(SERVICE_NAMESPACE, SERVICE_NAME)
        want = publish_service(self.settings)
        if svc is None:
            await self._create("v1", "services", want, SERVICE_NAMESPACE)
        elif (svc.get("spec") or {}).get("type") != "LoadBalancer" or not _same_ports(
            (svc.get("spec") or {}).get("ports") or [], want["spec"]["ports"]
        ):
            await self.client.patch("v1", "services", SERVICE_NAME, {"spec": want["spec"]}, SERVICE_NAMESPACE)
        slc = self.informers["endpointslices"].store.get(SERVICE_NAMESPACE, SERVICE_NAME)
        want_slice = publish_slice(self.settings)
        if slc is None:
            await self._create("discovery.k8s.io/v1", "endpointslices", want_slice, SERVICE_NAMESPACE)
        elif any(slc.get(k) != want_slice[k] for k in ("addressType", "endpoints", "ports")):
            body = {
                **want_slice,
                "metadata": {**want_slice["metadata"], "resourceVersion": slc["metadata"]["resourceVersion"]},
            }
            await self.client.update("discovery.k8s.io/v1", "endpointslices", body, SERVICE_NAMESPACE)

    async def _create(self, gv: str, plural: str, body: dict[str, Any], namespace: str | None) -> None:
        try:
            await self.client.create(gv, plural, body, namespace)
        except ApiError as err:
            if err.status != 409:  # someone (a previous controller) made it meanwhile: fine
                raise

    async def _publish_status(self, ingresses: list[dict[str, Any]]) -> None:
        want = lb_status(self.informers["services"].store.get(SERVICE_NAMESPACE, SERVICE_NAME))
        if not want or self.model is None:
            return  # no load-balancer address yet (the service-lb-controller assigns it)
        served = set(self.model.served)
        for ing in ingresses:
            have = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if _key(ing) not in served or have == want:
                continue
            meta = ing["metadata"]
            await self.client.patch(
                NET,
                "ingresses",
                meta["name"],
                {"status": {"loadBalancer": {"ingress": want}}},
                meta["namespace"],
                subresource="status",
            )


def _ref(ing: Mapping[str, Any]) -> ev.ObjectRef:
    meta = ing.get("metadata") or {}  # list items carry no kind/apiVersion
    return ev.ObjectRef(
        "Ingress", str(meta.get("name")), str(meta.get("namespace") or ""), str(meta.get("uid") or ""), NET
    )


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"
