"""Container runtimes that serve the CRI (``nodeagent.cri``) on a unix socket.

``process`` is the default, rootless-capable runtime (``nodeagent.runtimes.process``); ``containerd``
supervises Debian's containerd and lets the node agent speak CRI to its socket. The node agent never
imports a runtime's internals: it talks to the socket through ``nodeagent.cri.client.CRIClient``.
"""
