"""The EndpointSlice controller: each Service with a selector gets the slices that list its pods.

As kube-controller-manager's ``endpointslice`` controller does, for every Service with a selector it
keeps IPv4 EndpointSlices (``generateName: <service>-``, owned by the Service, labelled
``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by:
endpointslice-controller.k8s.io``) whose endpoints are the selected pods that have an IP and are not
terminal, at most 100 per slice, written only when they change. Services without a selector and slices
managed by someone else are never touched.

``reconciler`` is the pure core (pods to endpoints, endpoints to a plan of slice writes); ``controller``
is the shell on the controller runtime.
"""

from cluster.controllers.endpointslice.controller import EndpointSliceController, WriteTracker
from cluster.controllers.endpointslice.reconciler import (
    ADDRESS_TYPE,
    HEADLESS_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL,
    PortGroup,
    SlicePlan,
    desired_endpoints,
    endpoint_ports,
    find_port,
    plan_slices,
    pod_endpoint,
    pod_ip,
    port_key,
    selector_matches,
    service_has_selector,
    should_pod_be_in_endpoints,
    should_set_hostname,
)

__all__ = [
    "ADDRESS_TYPE",
    "HEADLESS_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_ENDPOINTS_PER_SLICE",
    "SERVICE_NAME_LABEL",
    "EndpointSliceController",
    "PortGroup",
    "SlicePlan",
    "WriteTracker",
    "desired_endpoints",
    "endpoint_ports",
    "find_port",
    "plan_slices",
    "pod_endpoint",
    "pod_ip",
    "port_key",
    "selector_matches",
    "service_has_selector",
    "should_pod_be_in_endpoints",
    "should_set_hostname",
]
