"""The API server's authorizer chain from ``--authorization-mode`` (kube's
``pkg/kubeapiserver/authorizer``): the modes in the order given, asked in turn (``Union``).

``Authorization`` holds what the modes need from the watch cache (the RBAC policy index, the Node
graph) and ``start`` fills them before the server serves: until every followed cache holds its
initial list, a request could be denied for a binding not yet seen.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.auth import node_authorizer, rbac
from cluster.apiserver.auth.authorizer import AlwaysAllow, AlwaysDeny, Authorizer, Union
from cluster.apiserver.auth.node_authorizer import NodeAuthorizer
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.auth.rbac import RBACAuthorizer


class Authorization:
    """The authorizers of one API server and the chain ``build_authorizer`` made of them."""

    def __init__(self, options: SecurityOptions) -> None:
        self.modes = options.authorization_modes
        self.rbac = RBACAuthorizer()
        self.node = NodeAuthorizer()
        self.authorizer = build_authorizer(options, rbac_authorizer=self.rbac, node=self.node)
        self._rbac_followed: list[Any] = []

    async def start(self, caches: Any) -> None:
        """Follow the watch cache and wait for its initial lists (call before serving). The RBAC
        index is followed whatever the modes, for the escalation checks and rules reviews."""
        self._rbac_followed = rbac.follow(self.rbac.index, caches)
        await rbac.loaded(self.rbac.index, self._rbac_followed)
        if "Node" in self.modes:
            followed = node_authorizer.follow(self.node.graph, caches)
            await node_authorizer.loaded(self.node.graph, followed)

    async def caught_up(self) -> None:
        """Wait until the RBAC index holds every write acknowledged before this call (after the
        bootstrap policy's reconcile)."""
        await rbac.loaded(self.rbac.index, self._rbac_followed, consistent=True)


def build_authorizer(
    options: SecurityOptions,
    *,
    rbac_authorizer: RBACAuthorizer | None = None,
    node: NodeAuthorizer | None = None,
) -> Union:
    """The chain for ``options.authorization_modes`` (default ``Node,RBAC``)."""
    chain: list[Authorizer] = []
    for mode in options.authorization_modes:
        if mode == "Node":
            chain.append(node or NodeAuthorizer())
        elif mode == "RBAC":
            chain.append(rbac_authorizer or RBACAuthorizer())
        elif mode == "AlwaysAllow":
            chain.append(AlwaysAllow())
        elif mode == "AlwaysDeny":
            chain.append(AlwaysDeny())
        else:
            raise ValueError(f"unknown authorization mode {mode!r}")
    return Union(chain)
