"""The Deployment controller (kube-controller-manager's ``deployment``): one ReplicaSet per pod
template, rolled from old to new by the Deployment's strategy.

* :mod:`.rollout`: maxSurge/maxUnavailable, rolling and Recreate steps, proportional scaling;
* :mod:`.revision`: pod-template-hash, revision annotations, history clean-up;
* :mod:`.progress`: status counters and the Available/Progressing conditions;

all three pure; :mod:`.controller` is the shell that reads listers and writes ReplicaSets and the
Deployment's status. Pods belong to the ReplicaSet controller.
"""

from cluster.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
