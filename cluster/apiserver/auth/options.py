"""How one API server authenticates, authorises, encrypts and audits (``raykube up`` flags, named as
kube-apiserver's). Files are named relative to the PKI directory, which ``raykube up`` copies to
every API server's host: an option names a file there, never a path on the operator's machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_AUTHORIZATION_MODES = ("Node", "RBAC")
AUTHORIZATION_MODES = ("Node", "RBAC", "AlwaysAllow", "AlwaysDeny")


@dataclass(frozen=True, slots=True)
class SecurityOptions:
    authorization_modes: tuple[str, ...] = DEFAULT_AUTHORIZATION_MODES  # --authorization-mode
    anonymous_auth: bool = True  # --anonymous-auth
    token_auth_file: str | None = None  # --token-auth-file, copied to the PKI directory
    encryption_provider_config: str | None = None  # --encryption-provider-config (PKI directory)
    audit_policy_file: str | None = None  # --audit-policy-file (PKI directory)
    audit_log_path: str | None = None  # --audit-log-path: on each API server's host ("-": its log)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(raw: dict[str, Any] | None) -> SecurityOptions:
        raw = dict(raw or {})
        if "authorization_modes" in raw:
            raw["authorization_modes"] = tuple(raw["authorization_modes"])
        return SecurityOptions(**raw)


def parse_authorization_modes(text: str) -> tuple[str, ...]:
    """``Node,RBAC`` → ("Node", "RBAC"); an unknown or repeated mode is a ValueError."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes:
        raise ValueError("--authorization-mode needs at least one mode")
    for mode in modes:
        if mode not in AUTHORIZATION_MODES:
            raise ValueError(f"unknown authorization mode {mode!r} (known: {', '.join(AUTHORIZATION_MODES)})")
    if len(set(modes)) != len(modes):
        raise ValueError(f"--authorization-mode lists a mode twice: {text}")
    return modes
