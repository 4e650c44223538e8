"""raykube's CRI conformance kit: critest-like cases that any CRI endpoint can run.

Run it with ``pytest tests/nodeagent/cri_kit`` (all registered endpoints whose preconditions hold)
or pick endpoints with ``RAYKUBE_CRI_ENDPOINTS=process,containerd``.

Endpoint convention (how a runtime joins the kit)
-------------------------------------------------
Add a module ``tests/nodeagent/cri_kit/endpoint_<name>.py`` that defines:

* ``NAME: str`` — the endpoint's name, shown in test ids (``test_x[<name>]``);
* ``CAPABILITY: str`` — the capability (``tests/capabilities.py``) it needs from the machine, and
  ``def missing() -> str | None`` — why it cannot run here (missing binary, not root, no namespaces,
  ...), or None. A missing capability fails the endpoint's cases with that reason, unless
  ``RAYKUBE_ALLOW_MISSING`` names it (then they skip and the summary lists them);
* ``def endpoint(tmp: pathlib.Path) -> AsyncContextManager[Endpoint]`` (an
  ``@contextlib.asynccontextmanager``) — starts the runtime with all state under ``tmp``, yields
  an ``endpoints.Endpoint`` describing it, and tears everything down on exit. It is entered once
  per test module, on a background event loop (so it may start asyncio subprocesses or servers).

``endpoints.py`` discovers every ``endpoint_*.py`` module, so nothing else needs editing.
``Endpoint`` (see ``endpoints.py``) carries the socket path, the images to use for a long-running
and a short command (and one the kit may remove), a writable working directory that exists
inside containers, and the capability names that gate optional cases (``CAP_*`` constants).
The cases only use ``sh``, ``echo``, ``sleep``, ``cat``, ``pwd``, ``hostname`` and ``busybox nc``, so
a busybox image is enough.
"""
