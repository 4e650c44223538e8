"""Who may do what: authentication (``authn``), impersonation, authorization (``authorizer``: the
Node authorizer and RBAC) and the options that configure them (``options``).

A request goes: authenticate → audit → impersonate → authorize → handler (``cluster.apiserver.server``),
in kube-apiserver's filter order. Everything here is in-process and synchronous where it can be: the
authorizers answer from caches kept current by watches, so authorising costs no store round trip.
"""
