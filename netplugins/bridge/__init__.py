"""The `bridge` network plugin: a Linux bridge per node with the CNI reference plugins, and routes
(host-gw) or a VXLAN overlay between the nodes' podCIDRs (see ``plugin.BridgeNetwork``)."""
