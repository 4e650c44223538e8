"""gRPC's fork handlers are off in every raykube process, set before gRPC first initialises.

grpcio 1.81 and later run their fork handlers in the child of every ``fork()``, and the polling thread
they start there can crash before the child reaches ``exec`` (grpc/grpc#43055). Measured in a Ray
actor that serves and calls gRPC while it runs subprocesses: 4 and 8 of 600 ``umount`` children died
with SIGSEGV (exit -11), none with ``GRPC_ENABLE_FORK_SUPPORT=false``. The node agent, the runtimes and
the volume plugins run such subprocesses all the time (mount, umount, containers started with a
``preexec_fn``), and nothing in raykube uses a gRPC channel across a fork, so the handlers have no
work to do. gRPC reads the variable when it initialises, so every top-level package imports this
module first (``cluster``, ``nodeagent``, ``netplugins``, ``bench``); a value the user set wins, and
child processes (``ray start``, Ray's workers) inherit it.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
