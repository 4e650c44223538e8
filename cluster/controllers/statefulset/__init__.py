"""The StatefulSet controller (kube-controller-manager's ``statefulset``): pods ``<name>-<ordinal>`` with
stable identity and storage, ordered or parallel, rolled out by descending ordinal."""
