"""The scheduler: assigns pending pods to nodes.

Pure cores live here (``framework``, ``plugins``, ``config``, ``queue``, ``schedule_one``); they take
Kubernetes JSON dicts and an injected clock and do no I/O. The Ray actor that watches the API server and
performs bindings is a thin wrapper around them.
"""
