"""kube-controller-manager's volume controllers: binding, protection, expansion, provisioning, attach.

Each module stands alone (this package imports none of them); ``cluster/controllers/registry.py``
names them.
"""
