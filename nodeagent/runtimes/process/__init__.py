"""The ``process`` runtime: a CRI server whose pods are holder processes and containers processes.

Default runtime of raykube, working without root: see ``docs/cri.md``. Public API:

* ``serve(socket_path, root_dir, ...) -> ProcessRuntime`` (``server.py``) and ``stop_server``;
* ``ProcessRuntime`` (``runtime.py``): the CRI logic without gRPC, plus
  ``exec_stream(container_id, cmd, tty) -> ExecStream`` for streaming exec;
* ``python -m nodeagent.runtimes.process --socket S --root D`` to run it alone.
"""

from nodeagent.runtimes.process.exec import ExecStream
from nodeagent.runtimes.process.runtime import ProcessRuntime
from nodeagent.runtimes.process.server import serve, stop_server

__all__ = ["ExecStream", "ProcessRuntime", "serve", "stop_server"]
