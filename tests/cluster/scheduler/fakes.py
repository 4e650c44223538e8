"""Tiny fake plugins for framework tests: each records its calls in a shared log."""

from __future__ import annotations

from typing import Any

from cluster.scheduler.framework import (
    SUCCESS,
    CycleState,
    Handle,
    NodeInfo,
    PostFilterResult,
    Status,
)

NAME = "ModuleNamed"


def node(name: str, cpu: str = "4", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}},
    }


def pod(name: str, priority: int | None = None, cpu: str = "100m", node_name: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if priority is not None:
        spec["priority"] = priority
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec}


class Fake:
    """A plugin whose behaviour per extension point comes from ``args``.

    args: ``log`` (a list to append ``"<name>.<point>"`` to), ``reject`` (node names Filter rejects),
    ``reason`` (the rejection text), ``scores`` (node -> raw score), ``normalize`` (scale to 0..100),
    ``pre_filter``/``reserve``/``permit``/``bind``/``post_filter`` (a Status to return), ``timeout``.
    """

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        self.NAME = name
        self.args = args
        self.log: list[str] = args.get("log", [])

    def name(self) -> str:
        return self.NAME

    def _record(self, point: str) -> None:
        self.log.append(f"{self.NAME}.{point}")


class FilterFake(Fake):
    def pre_filter(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        self._record("pre_filter")
        status: Status = self.args.get("pre_filter", SUCCESS)
        return status

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status:
        self._record("filter")
        if node.name in self.args.get("reject", ()):
            resolvable = self.args.get("resolvable", True)
            return Status.unschedulable(
                self.args.get("reason", f"{self.NAME} says no"), resolvable=resolvable
            )
        if node.name in self.args.get("error", ()):
            return Status.error("exploded")
        return SUCCESS


class ScoreFake(Fake):
    def pre_score(self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]) -> Status:
        self._record("pre_score")
        status: Status = self.args.get("pre_score", SUCCESS)
        return status

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> tuple[int, Status]:
        self._record("score")
        return int(self.args.get("scores", {}).get(node.name, 0)), SUCCESS

    def normalize_score(self, state: CycleState, pod: dict[str, Any], scores: dict[str, int]) -> Status:
        self._record("normalize")
        if self.args.get("normalize"):
            top = max(scores.values()) or 1
            for key, value in scores.items():
                scores[key] = value * 100 // top
        return SUCCESS


class ReserveFake(Fake):
    def reserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        self._record("reserve")
        status: Status = self.args.get("reserve", SUCCESS)
        return status

    def unreserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None:
        self._record("unreserve")

    def permit(self, state: CycleState, pod: dict[str, Any], node_name: str) -> tuple[Status, float]:
        self._record("permit")
        status: Status = self.args.get("permit", SUCCESS)
        return status, float(self.args.get("timeout", 0.0))

    def pre_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        self._record("pre_bind")
        return SUCCESS

    def bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        self._record("bind")
        status: Status = self.args.get("bind", SUCCESS)
        return status

    def post_bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None:
        self._record("post_bind")


class PostFilterFake(Fake):
    def post_filter(
        self, state: CycleState, pod: dict[str, Any], filtered: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status]:
        self._record("post_filter")
        status: Status = self.args.get("post_filter", Status.unschedulable())
        result: PostFilterResult | None = self.args.get("result")
        return result, status


def factory(cls: type[Fake], name: str) -> Any:
    def new(args: dict[str, Any], handle: Handle) -> Fake:
        return cls(name, args)

    return new


def new(args: dict[str, Any], handle: Handle) -> Fake:
    """An out-of-tree factory loadable as ``tests.cluster.scheduler.fakes:new`` (module NAME)."""
    return FilterFake(NAME, args)


def named_new(args: dict[str, Any], handle: Handle) -> Fake:
    return FilterFake("FactoryNamed", args)


named_new.NAME = "FactoryNamed"  # type: ignore[attr-defined]
