"""The garbage collector: the owner -> dependents graph (``graph``, pure) and the controller that
follows every collectable resource and deletes or orphans dependents (``controller``)."""

from cluster.controllers.garbagecollector.controller import GarbageCollector

NAME = GarbageCollector.NAME

__all__ = ["NAME", "GarbageCollector"]
