"""The Job controller (kube-controller-manager's ``job``).

Pure parts: :mod:`.backoff` (pod-recreation backoff), :mod:`.indexed` (completion indexes),
:mod:`.pod_failure_policy` (rule matching), :mod:`.sync` (the reconcile core); :mod:`.controller` is
the shell that reads the listers and writes through the API client.
"""

from cluster.controllers.job.controller import JobController

__all__ = ["JobController"]
