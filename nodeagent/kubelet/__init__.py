"""The node agent's pure cores, one concept per module (Kubernetes' kubelet, in our own words).

``container_env`` (argv and env), ``restart`` (restart policy, CrashLoopBackOff), ``pod_actions`` (what
to do next for one pod), ``pod_status`` (the API status), ``probes`` (probe scheduling and results),
``node_status`` (the Node and its Lease), ``static_pods`` (manifest pods and mirror pods) and
``cri_logs`` (the CRI log format and ``kubectl logs`` options). Only ``probe_exec``, the manifest
reader in ``static_pods`` and the follow helper in ``cri_logs`` do I/O; nothing reads the clock.
"""
