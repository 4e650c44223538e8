"""The ``host`` network plugin: pods share the node's network; host ports are accounted per node."""
