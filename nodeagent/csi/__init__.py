"""The Container Storage Interface (CSI ``csi.v1``) as raykube speaks it.

``csi_pb2`` / ``csi_pb2_grpc`` are generated from ``proto/csi/csi.proto`` (the spec's services,
messages and field numbers; regenerate with ``python -m nodeagent.csi._generate``). ``plugin.CSIPlugin``
is the base of a driver written in Python, ``server.serve`` puts one on a unix socket,
``client.CSIClient`` talks to any CSI socket (ours or a real driver's), and ``actor.VolumeActor`` is
the per-node Ray actor that hosts or proxies the node's volume plugin.
"""
