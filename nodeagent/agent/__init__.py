"""The node agent proper (our kubelet's loops): pod workers, the node loop, static pods.

It drives the pure cores in ``nodeagent.kubelet`` against a CRI runtime and the API server. Nothing here
imports Ray; the lead engineer's actor wraps ``NodeAgent``.
"""
