"""The ReplicaSet controller (kube-controller-manager's ``replicaset``): keeps ``spec.replicas`` pods
from a ReplicaSet's template, adopting matching orphans and releasing pods that stop matching.

* :mod:`.ranking`: which pods go first on scale-down (kube's ``ActivePodsWithRanks``);
* :mod:`.plan`: claims (owned, adopt, release) and the create/delete plan of one sync;
* :mod:`.status`: the status computed from the owned pods, and the patch that writes it;

all three pure. Deployments build on this controller: they create, scale and annotate ReplicaSets;
pods are only ever created and deleted here.
"""

from cluster.controllers.replicaset.controller import ReplicaSetController

__all__ = ["ReplicaSetController"]
