"""The API servers' security options from ``raykube up``'s flags (``--authorization-mode``,
``--anonymous-auth``, ``--token-auth-file``, ``--encryption-provider-config``, ``--audit-policy-file``,
``--audit-log-path``), remembered in ``cluster.json`` so a later ``up`` keeps them.

Files the operator names are copied into the PKI directory (``raykube up`` ships that directory to
every API server's host), so an option names a file there, not a path on the operator's machine.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from cluster.apiserver import audit_policy, encryption_config
from cluster.apiserver.auth import token_file
from cluster.apiserver.auth.options import SecurityOptions, parse_authorization_modes
from cluster.machinery.files import write_private

TOKEN_AUTH_FILE = "token-auth.csv"
ENCRYPTION_CONFIG_FILE = "encryption-config.yaml"
AUDIT_POLICY_FILE = "audit-policy.yaml"


def _copy(source: Path | None, pki_dir: Path, name: str) -> str | None:
    if source is None:
        return None
    try:
        data = source.expanduser().read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {source}: {err.strerror}") from None
    write_private(pki_dir / name, data)
    return name


def security_options(
    pki_dir: Path,
    previous: dict[str, Any] | None,
    *,
    authorization_mode: str | None = None,
    anonymous_auth: bool | None = None,
    token_auth_file: Path | None = None,
    encryption_provider_config: Path | None = None,
    audit_policy_file: Path | None = None,
    audit_log_path: str | None = None,
) -> SecurityOptions:
    """The options for this ``up``: each flag given replaces what ``previous`` (cluster.json) had; a
    file flag copies the file into ``pki_dir``. Without an encryption configuration (a new cluster),
    ``pki_dir/encryption-config.yaml`` is generated (``encryption_config.default_config``: Secrets
    under a random aesgcm key). Raises ValueError for a bad mode or an unreadable or invalid file."""
    options = SecurityOptions.from_dict(previous)
    if authorization_mode is not None:
        options = replace(options, authorization_modes=parse_authorization_modes(authorization_mode))
    if anonymous_auth is not None:
        options = replace(options, anonymous_auth=anonymous_auth)
    if (name := _copy(token_auth_file, pki_dir, TOKEN_AUTH_FILE)) is not None:
        options = replace(options, token_auth_file=name)
    if options.token_auth_file:
        token_file.load(pki_dir / options.token_auth_file)  # a malformed file: ValueError naming the line
    if (name := _copy(encryption_provider_config, pki_dir, ENCRYPTION_CONFIG_FILE)) is not None:
        options = replace(options, encryption_provider_config=name)
    if options.encryption_provider_config:
        try:  # refused here, before anything starts, rather than by every API server
            encryption_config.load(pki_dir / options.encryption_provider_config)
        except encryption_config.EncryptionConfigError as err:
            raise ValueError(f"--encryption-provider-config: {err}") from None
    if (name := _copy(audit_policy_file, pki_dir, AUDIT_POLICY_FILE)) is not None:
        options = replace(options, audit_policy_file=name)
    if options.audit_policy_file:
        try:
            audit_policy.load(pki_dir / options.audit_policy_file)
        except audit_policy.AuditPolicyError as err:
            raise ValueError(f"--audit-policy-file: {err}") from None
    if audit_log_path is not None:
        options = replace(options, audit_log_path=audit_log_path)
    if options.encryption_provider_config is None:  # a new cluster never writes a Secret in plain text
        if not (pki_dir / ENCRYPTION_CONFIG_FILE).exists():  # (last: a refused flag writes nothing)
            write_private(pki_dir / ENCRYPTION_CONFIG_FILE, encryption_config.default_config())
        options = replace(options, encryption_provider_config=ENCRYPTION_CONFIG_FILE)
    return options
