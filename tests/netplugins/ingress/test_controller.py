"""netplugins.ingress.controller against the fake API server and a recording nginx: what it creates
at start, that a burst of changes becomes one reload, that a refused configuration keeps the old one
and becomes an Event, and that the Service's load-balancer address reaches the Ingress status."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.client import events as ev
from cluster.client.rest import ApiClient
from netplugins.ingress.config import NginxSettings, Rendered
from netplugins.ingress.controller import IngressController
from netplugins.ingress.nginx import Applied
from tests.cluster.client.fake_apiserver import FakeApiServer
from tests.netplugins.ingress import kit
from tests.netplugins.ingress.kit import backend, rule

SETTINGS = NginxSettings("/nonexistent/nginx", "192.0.2.7", 30080, 30443)


class RecordingNginx:
    """Stands in for ``NginxProcess``: records what it was given; ``refuse`` refuses applies."""

    def __init__(self) -> None:
        self.started: Rendered | None = None
        self.applied: list[Rendered] = []
        self.refuse = False
        self.reloads = 0
        self.pid: int | None = None

    async def start(self, rendered: Rendered) -> None:
        self.started, self.pid = rendered, 1

    async def apply(self, rendered: Rendered) -> Applied:
        if self.refuse:
            return Applied(False, "nginx: [emerg] PEM_read_bio_X509_AUX() failed")
        self.applied.append(rendered)
        self.reloads += 1
        return Applied(True)

    async def stop(self) -> None:
        self.pid = None


class RecordingEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, ref: ev.ObjectRef, event_type: str, reason: str, message: str) -> None:
        self.events.append((ref.name, event_type, reason))


def web_ingress(host: str) -> dict[str, Any]:
    return kit.ingress("default", "web", [rule(host, ("/", "Prefix", backend("a", 80)))])


async def until(pred: Any) -> None:
    while not pred():
        await asyncio.sleep(0.01)


def run(scenario: Any) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        client = ApiClient(await fake.start())
        fake.put("services", kit.service("default", "a", [("http", 80)]))
        fake.put("endpointslices", kit.endpoint_slice("default", "a", "http", [("10.244.0.5", 8080, True)]))
        fake.put("ingresses", web_ingress("one.test"))
        nginx, events = RecordingNginx(), RecordingEvents()
        controller = IngressController(client, nginx, SETTINGS, events, debounce=0.3, retry=0.1)  # type: ignore[arg-type]
        try:
            await controller.start()
            await asyncio.wait_for(scenario(fake, controller, nginx, events), 10)
        finally:
            await controller.stop()
            await client.close()
            await fake.stop()

    asyncio.run(main())


def test_start_creates_class_service_and_slice_and_serves() -> None:
    async def scenario(fake: FakeApiServer, c: IngressController, nginx: RecordingNginx, _: Any) -> None:
        assert nginx.started is not None and "one.test" not in nginx.started.text  # starts empty
        assert "server_name one.test;" in nginx.applied[-1].text
        assert "server 10.244.0.5:8080" in nginx.applied[-1].text
        cls = fake.objects["ingressclasses"][("", "raykube")]
        assert cls["spec"]["controller"] == "raykube.io/ingress-nginx"
        svc = fake.objects["services"][("kube-system", "raykube-ingress")]
        assert svc["spec"]["type"] == "LoadBalancer"
        assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 30080), (443, 30443)]
        slc = fake.objects["endpointslices"][("kube-system", "raykube-ingress")]
        assert slc["endpoints"][0]["addresses"] == ["192.0.2.7"]
        assert c.model is not None and c.model.served == ("default/web",)

    run(scenario)


def test_a_burst_is_one_reload() -> None:
    async def scenario(fake: FakeApiServer, c: IngressController, nginx: RecordingNginx, _: Any) -> None:
        before = nginx.reloads
        for i in range(5):
            fake.put("ingresses", web_ingress(f"host{i}.test"))
        await until(lambda: nginx.reloads > before)
        await asyncio.sleep(0.6)  # a second reload would come within one more debounce
        assert nginx.reloads == before + 1
        assert "server_name host4.test;" in nginx.applied[-1].text

    run(scenario)


def test_refused_config_keeps_the_old_one_and_is_an_event() -> None:
    async def scenario(fake: FakeApiServer, c: IngressController, nginx: RecordingNginx, ev: Any) -> None:
        serving = c.serving
        nginx.refuse = True
        fake.put("ingresses", web_ingress("two.test"))
        await until(lambda: c.refused is not None)
        assert c.serving == serving
        assert ("web", "Warning", "ReloadRefused") in ev.events

    run(scenario)


def test_lb_address_reaches_the_ingress_status() -> None:
    async def scenario(fake: FakeApiServer, c: IngressController, nginx: RecordingNginx, _: Any) -> None:
        svc = dict(fake.objects["services"][("kube-system", "raykube-ingress")])
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": "172.29.0.1"}]}}
        fake.put("services", svc)

        def published() -> bool:
            ing = fake.objects["ingresses"][("default", "web")]
            return (ing.get("status") or {}).get("loadBalancer", {}).get("ingress") == [{"ip": "172.29.0.1"}]

        await until(published)

    run(scenario)
