"""etcd's Lease service (LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases).

Grant and revoke are replicated writes. Expiry is decided on the leader's clock, so keepalive and
time-to-live go to the leader (the backend forwards them). As etcd:

* a granted TTL below the minimum (1.5 election timeouts, rounded up to whole seconds) is raised
  to it, one above ``MAX_LEASE_TTL`` is ``etcdserver: too large lease TTL``;
* LeaseTimeToLive of an unknown lease answers TTL -1 (no error); a keepalive of one answers TTL 0
  and the stream goes on;
* LeaseRevoke of an unknown lease is ``etcdserver: requested lease not found`` (NotFound).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from cluster.store.etcd_api import convert, errors
from cluster.store.etcd_api.backend import Backend
from cluster.store.etcd_api.kv import write
from cluster.store.etcdpb import rpc_pb2, rpc_pb2_grpc
from cluster.store.mvcc import (
    MAX_LEASE_TTL,
    LeaseGrantOp,
    LeaseGrantResult,
    LeaseNotFound,
    LeaseRevokeOp,
    LeaseRevokeResult,
)

Context: TypeAlias = Any  # grpc.aio.ServicerContext (grpc has no type stubs)


class LeaseServicer(rpc_pb2_grpc.LeaseServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return convert.header_pb(self.backend.header(revision))

    @errors.unary
    async def LeaseGrant(
        self, request: rpc_pb2.LeaseGrantRequest, context: Context
    ) -> rpc_pb2.LeaseGrantResponse:
        if request.TTL > MAX_LEASE_TTL:
            raise errors.LEASE_TTL_TOO_LARGE
        if request.ID < 0:
            raise errors.EtcdError(errors.Code.INVALID_ARGUMENT, "etcdserver: lease ID must not be negative")
        ttl = max(request.TTL, self.backend.min_lease_ttl)
        res = await write(self.backend, LeaseGrantOp(request.ID, ttl), context)
        assert isinstance(res, LeaseGrantResult), res
        return rpc_pb2.LeaseGrantResponse(header=self._header(res.revision), ID=res.id, TTL=res.ttl)

    @errors.unary
    async def LeaseRevoke(
        self, request: rpc_pb2.LeaseRevokeRequest, context: Context
    ) -> rpc_pb2.LeaseRevokeResponse:
        res = await write(self.backend, LeaseRevokeOp(request.ID), context)
        assert isinstance(res, LeaseRevokeResult), res
        return rpc_pb2.LeaseRevokeResponse(header=self._header(res.revision))

    @errors.unary
    async def LeaseTimeToLive(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, context: Context
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        try:
            ttl = await self.backend.lease_time_to_live(request.ID, request.keys)
        except LeaseNotFound:
            return rpc_pb2.LeaseTimeToLiveResponse(header=self._header(), ID=request.ID, TTL=-1)
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=self._header(),
            ID=ttl.id,
            TTL=ttl.remaining,
            grantedTTL=ttl.granted_ttl,
            keys=list(ttl.keys),
        )

    @errors.unary
    async def LeaseLeases(
        self, request: rpc_pb2.LeaseLeasesRequest, context: Context
    ) -> rpc_pb2.LeaseLeasesResponse:
        leases = [rpc_pb2.LeaseStatus(ID=i) for i in self.backend.leases()]
        return rpc_pb2.LeaseLeasesResponse(header=self._header(), leases=leases)

    @errors.streaming
    async def LeaseKeepAlive(
        self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest], context: Context
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        async for req in request_iterator:
            header = self._header()  # etcd fills the header before it renews
            ttl = await self.backend.lease_keepalive(req.ID)
            yield rpc_pb2.LeaseKeepAliveResponse(header=header, ID=req.ID, TTL=ttl)
