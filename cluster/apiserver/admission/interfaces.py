"""What an admission plugin sees and the one interface it implements (kube-apiserver's
``k8s.io/apiserver/pkg/admission``: ``Attributes``, ``MutationInterface.Admit``,
``ValidationInterface.Validate``, ``Handles(operation)``).

A plugin never imports the registry: what it needs from the cluster (a namespace, whether a marker
key exists) comes in through the small Protocols below, which the registry implements. Plugins reject
a request by raising ``StatusError``; the first rejection ends the chain, so a request invalid in two
ways reports the first check in chain order.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.resources import ResourceInfo


class Operation(enum.StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


@dataclass(frozen=True, slots=True)
class Attributes:
    """One write request as admission sees it. ``object`` is the object so far (each mutating plugin
    hands the next one a new ``Attributes`` with its result); ``old_object`` is the stored object on
    UPDATE. ``now`` is the request's one clock reading, so creationTimestamp and managedFields agree.
    ``user`` is who asks (after impersonation; None for the server's own writes), for the plugins
    that depend on it (NodeRestriction, RBAC's escalation check, PodSecurity's exemptions)."""

    operation: Operation
    resource: ResourceInfo
    namespace: str | None
    name: str
    object: dict[str, Any]
    now: datetime
    old_object: dict[str, Any] | None = None
    subresource: str | None = None
    dry_run: bool = False
    user: UserInfo | None = None

    @property
    def kind(self) -> tuple[str, str]:
        """(group, kind) of the resource: what most plugins dispatch on."""
        return self.resource.group, self.resource.kind


@dataclass(frozen=True, slots=True)
class Admitted:
    """A mutating plugin's result: the new object, and marker keys the store must create in the same
    transaction as the object (allocated Service IPs and node ports), so two objects never get one."""

    object: dict[str, Any]
    reserve: tuple[str, ...] = ()


class Handler:
    """Which operations a plugin takes part in (kube's ``admission.NewHandler(ops...)``)."""

    NAME: ClassVar[str]
    OPERATIONS: ClassVar[frozenset[Operation]]

    def handles(self, operation: Operation) -> bool:
        return operation in self.OPERATIONS


class MutatingPlugin(Handler, abc.ABC):
    @abc.abstractmethod
    async def admit(self, attrs: Attributes) -> Admitted:
        """The object the next plugin gets: ``attrs.object`` changed in place, or a new one (as
        Kubernetes' ``Admit`` changes the object it is given); raise ``StatusError`` to reject."""


class ValidatingPlugin(Handler, abc.ABC):
    @abc.abstractmethod
    async def validate(self, attrs: Attributes) -> None:
        """Raise ``StatusError`` to reject; never changes the object."""


Plugin = MutatingPlugin | ValidatingPlugin


class NamespaceLookup(Protocol):
    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        """The Namespace object, or None when there is none."""
        ...


class KeyLookup(Protocol):
    async def exists(self, key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The object after a chain ran, the keys its plugins reserved, and the field manager's
    baseline: the object as it left the plugin named by ``baseline_after`` in ``run``."""

    object: dict[str, Any]
    reserve: tuple[str, ...]
    baseline: dict[str, Any] | None


async def run(
    plugins: Sequence[Plugin], attrs: Attributes, *, baseline_after: str | None = None
) -> ChainResult:
    """Run ``plugins`` in order on ``attrs``: each that handles the operation either admits (its object
    goes on to the next) or validates. ``baseline_after`` names the plugin after which the object is
    copied as the field manager's baseline (None: no copy; see ``chain.FIELD_MANAGER_BASELINE``)."""
    reserve: list[str] = []
    baseline: dict[str, Any] | None = None
    for plugin in plugins:
        if plugin.handles(attrs.operation):
            if isinstance(plugin, MutatingPlugin):
                admitted = await plugin.admit(attrs)
                attrs = dataclasses.replace(attrs, object=admitted.object)
                reserve.extend(admitted.reserve)
            else:
                await plugin.validate(attrs)
        if baseline_after is not None and baseline_after == plugin.NAME:
            baseline = copy.deepcopy(attrs.object)  # later plugins may change the object in place
    return ChainResult(attrs.object, tuple(reserve), baseline)
