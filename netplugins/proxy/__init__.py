"""The service proxy (kube-proxy's job): routes Service addresses to endpoints on each node.

``model`` computes what to route (pure); ``nftables`` renders it as an nft ruleset (pure);
``nft_backend`` applies it; ``proxier`` watches the API and syncs a backend; ``actor`` is the Ray
actor ``proxy-<node>``.
"""
