"""The StatefulSet controller (kube-controller-manager's ``statefulset``): pods ``<name>-<ordinal>`` with
stable identity and storage, ordered or parallel, rolled out by descending ordinal.

* :mod:`.identity`: pod names, ordinals, identity labels, hostname/subdomain, per-ordinal claims;
* :mod:`.retention`: the owner references persistentVolumeClaimRetentionPolicy puts on claims;
* :mod:`.revisions`: current and update ControllerRevisions (with ``cluster.controllers.history``),
  rollback renumbering, history truncation;
* :mod:`.plan`: the update plan of one pass (OrderedReady/Parallel, scale down, RollingUpdate with
  partition and maxUnavailable, OnDelete) and the status;

all pure; :mod:`.controller` is the shell (informers in, API writes and events out).
"""
