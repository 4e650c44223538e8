"""etcd's Maintenance and Cluster services, and the Auth service that answers UNIMPLEMENTED.

Maintenance:

* Status: etcd's fields from this member's Raft and store state; ``version`` is
  ``backend.VERSION``, a 3.4 version etcdctl 3.4 accepts; ``dbSize`` is the size of the
  write-ahead log, our on-disk state.
* Hash and HashKV: a hash of the whole replicated state, equal on members that applied the same
  entries. HashKV hashes the current state whatever its revision argument, which is only checked
  against the compacted and future revisions as etcd checks it; ``hash_revision`` says which
  revision was hashed.
* Defragment: nothing to defragment in a log-and-snapshot store, a no-op.
* Alarm: this store raises no alarms, so the list is empty.
* Snapshot and MoveLeader are not served (UNIMPLEMENTED).

Cluster: MemberList (every voter, named ``store-<id>``, with the URLs the host recorded); member
changes go through ``raykube store`` commands, not this API (UNIMPLEMENTED).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from cluster.store.etcd_api import convert, errors
from cluster.store.etcd_api.backend import VERSION, Backend
from cluster.store.etcdpb import rpc_pb2, rpc_pb2_grpc

Context: TypeAlias = Any  # grpc.aio.ServicerContext (grpc has no type stubs)

_UINT32 = 0xFFFFFFFF


@errors.unserved_answer_unimplemented
class MaintenanceServicer(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return convert.header_pb(self.backend.header(revision))

    @errors.unary
    async def Status(self, request: rpc_pb2.StatusRequest, context: Context) -> rpc_pb2.StatusResponse:
        st = self.backend.status()
        return rpc_pb2.StatusResponse(
            header=self._header(st.revision),
            version=VERSION,
            dbSize=st.db_size,
            leader=st.leader,
            raftIndex=st.raft_index,
            raftTerm=st.raft_term,
            raftAppliedIndex=st.applied,
            errors=list(st.errors),
            dbSizeInUse=st.db_size,
            isLearner=False,
        )

    @errors.unary
    async def Hash(self, request: rpc_pb2.HashRequest, context: Context) -> rpc_pb2.HashResponse:
        _applied, revision, digest = self.backend.kv_hash()
        return rpc_pb2.HashResponse(header=self._header(revision), hash=digest & _UINT32)

    @errors.unary
    async def HashKV(self, request: rpc_pb2.HashKVRequest, context: Context) -> rpc_pb2.HashKVResponse:
        _applied, revision, digest = self.backend.kv_hash()
        compact_revision = self.backend.status().compact_revision
        if request.revision > revision:
            raise errors.FUTURE_REV
        if 0 < request.revision < compact_revision:
            raise errors.COMPACTED
        return rpc_pb2.HashKVResponse(
            header=self._header(revision),
            hash=digest & _UINT32,
            compact_revision=compact_revision,
            hash_revision=revision,
        )

    @errors.unary
    async def Defragment(
        self, request: rpc_pb2.DefragmentRequest, context: Context
    ) -> rpc_pb2.DefragmentResponse:
        return rpc_pb2.DefragmentResponse(header=self._header())

    @errors.unary
    async def Alarm(self, request: rpc_pb2.AlarmRequest, context: Context) -> rpc_pb2.AlarmResponse:
        return rpc_pb2.AlarmResponse(header=self._header())


@errors.unserved_answer_unimplemented
class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @errors.unary
    async def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: Context
    ) -> rpc_pb2.MemberListResponse:
        members = [
            rpc_pb2.Member(
                ID=m.id,
                name=m.name,
                peerURLs=list(m.peer_urls),
                clientURLs=list(m.client_urls),
                isLearner=m.is_learner,
            )
            for m in self.backend.members()
        ]
        return rpc_pb2.MemberListResponse(header=convert.header_pb(self.backend.header()), members=members)


@errors.unserved_answer_unimplemented
class AuthServicer(rpc_pb2_grpc.AuthServicer):
    """Every Auth call answers UNIMPLEMENTED: access is decided by client certificates (TLS)."""
