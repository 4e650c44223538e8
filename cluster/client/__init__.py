"""The internal Kubernetes client: REST calls, informers, listers and work queues for controllers.

``ApiClient`` talks to the API server; an ``Informer`` keeps a ``Lister`` cache in step via
list + watch and fires handlers that only enqueue keys into a ``WorkQueue``; ``run_workers`` drains
the queue into a reconcile function, one worker per key at a time, requeueing failures with backoff.
"""

from cluster.client.errors import ApiError, TransportError
from cluster.client.informer import Informer
from cluster.client.kubeconfig import ConnectionSettings, KubeconfigError, load_kubeconfig
from cluster.client.lister import DeletedFinalStateUnknown, Lister, object_key, split_key
from cluster.client.rest import ApiClient, resource_path
from cluster.client.workqueue import ShutDown, WorkQueue, run_workers

__all__ = [
    "ApiClient",
    "ApiError",
    "ConnectionSettings",
    "DeletedFinalStateUnknown",
    "Informer",
    "KubeconfigError",
    "Lister",
    "ShutDown",
    "TransportError",
    "WorkQueue",
    "load_kubeconfig",
    "object_key",
    "resource_path",
    "run_workers",
    "split_key",
]
