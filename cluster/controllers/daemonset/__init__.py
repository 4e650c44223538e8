"""The DaemonSet controller (kube-controller-manager's ``daemonset``): one pod per eligible node.

Pure cores: ``eligibility`` (which nodes, default tolerations, pinning a pod to its node),
``plan`` (manage, rolling update), ``status``, ``revisions`` (ControllerRevision history). The shell,
``controller.DaemonSetController``, wires them to the informers and the API.
"""

from cluster.controllers.daemonset.controller import DaemonSetController

__all__ = ["DaemonSetController"]
