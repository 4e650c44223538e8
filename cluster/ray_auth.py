"""Ray's token authentication for the Ray head ``raykube up`` starts.

The store replicas, the API servers and every other raykube actor talk over Ray: actor calls ride
Ray's gRPC between raylets, workers and the GCS. Ray 2.60 can require a shared token on those
connections (``RAY_AUTH_MODE=token``); a process without it is refused by the GCS and raylets. So
when ``raykube up`` starts the local head itself, it starts it in token mode, with the token at
Ray's default path (``~/.ray/auth_token``, what ``ray get-auth-token --generate`` writes): every
Ray client on this host (the raykube CLI, drivers, ``ray status``, the tests' own ``ray.init``)
finds it there without being told, which a token in the data directory would not give. It is made
once (256 random bits, as Ray makes it) and kept 0600. ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``
in the environment take precedence, as in Ray. Only the ``ray start`` process gets the mode in its
environment: a driver (``ray.init(address="auto")``) turns token mode on by itself when it finds a
token, and setting ``RAY_AUTH_MODE`` in a process that already asked Ray once (our first attempt to
join a running Ray) would leave Ray's cached config without the token. No Ray import: files and
environment only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cluster.machinery.files import write_private

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


def token_path(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where Ray reads the token from: ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``."""
    env = os.environ if env is None else env
    return (
        Path(env[TOKEN_PATH_ENV])
        if env.get(TOKEN_PATH_ENV)
        else (home or Path.home()) / ".ray" / "auth_token"
    )


def token_auth_env(env: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str] | None:
    """The environment to start a Ray head with token authentication: the token
    made if there is none (0600), the mode set to ``token``. None when ``RAY_AUTH_MODE`` says
    otherwise (the user opted out: Ray then runs without authentication, as they asked)."""
    env = dict(os.environ if env is None else env)
    mode = env.get(MODE_ENV, "token").lower()
    if mode != "token":
        return None
    if not env.get(TOKEN_ENV):
        path = token_path(env, home)
        if not path.exists() or not path.read_text().strip():
            write_private(path, secrets.token_hex(32))
        else:
            path.chmod(0o600)  # Ray writes it 0644
    env[MODE_ENV] = "token"
    return env
