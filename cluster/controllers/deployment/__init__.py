"""The Deployment controller (kube-controller-manager's ``deployment``): one ReplicaSet per pod
template, rolled from old to new by the Deployment's strategy.

* :mod:`.rollout`: maxSurge/maxUnavailable, rolling and Recreate steps, proportional scaling;
* :mod:`.revision`: pod-template-hash, revision annotations, history clean-up;
* :mod:`.progress`: status counters and the Available/Progressing conditions;

all three pure, as is :mod:`.objects` (wire-form fields read into their views); :mod:`.controller`
is the shell that reads listers, steps the rollout and writes the Deployment's status, on top of
:mod:`.replicasets` (claiming, creating, scaling and cleaning up ReplicaSets). Pods belong to the
ReplicaSet controller.
"""

from cluster.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
