"""Autoscaling on Ray: pending pods ask Ray's autoscaler for nodes; idle nodes are handed back.

``planning`` decides (pure); ``ray_autoscaler`` is the loop the elected controller manager runs.
See docs/autoscaling.md.
"""
