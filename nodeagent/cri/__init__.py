"""The Container Runtime Interface (CRI ``runtime.v1``) as raykube speaks it.

``api_pb2`` / ``api_pb2_grpc`` are generated from ``proto/cri/api.proto`` (a wire-compatible
subset of the upstream CRI; regenerate with ``python -m nodeagent.cri._generate``), and
``client.CRIClient`` is the async client the node agent uses to talk to any runtime's socket.
"""
