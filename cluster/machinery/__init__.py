"""The shared API machinery: the values and protocols every other raykube package speaks.

This is the leaf of the dependency graph, playing the role of Kubernetes' apimachinery (quantities,
label and field selectors, object meta and RFC 3339 times), certutil (the cluster PKI: CA, issuing
and loading certificates), client-go's remotecommand (the exec/attach/port-forward stream protocol
and the WebSocket relay), core/v1's taint/toleration matching and the private-file helpers of the
data directory.

Modules: ``quantity`` (the one resource.Quantity parser), ``labels`` and ``fields`` (selectors),
``meta`` and ``times`` (ObjectMeta reads, RFC 3339 Time/MicroTime), ``pki`` (CA and certificates),
``taints`` (``Toleration.ToleratesTaint``, untolerated taints), ``files`` (0700/0600 data-dir files,
atomic writes), ``remotecommand`` and ``relay`` (exec streams), ``mountinfo`` (the kernel's mount
table), ``grpcfork`` (gRPC's fork handlers off, imported first by every top-level package).

Invariant: nothing here imports any other raykube package (``cluster.*`` outside this package,
``nodeagent``, ``netplugins``, ``bench``) or ``ray``, so the store, the client, the API server, the
scheduler, the controllers and the node agent can all import it without creating a cycle.
"""
