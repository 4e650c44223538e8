"""Pod volumes on the node: the node agent's volume manager (see docs/volumes.md)."""
