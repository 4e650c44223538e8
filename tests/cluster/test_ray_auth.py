"""cluster.ray_auth: the environment `raykube up` starts its Ray head with (token authentication on,
the token at Ray's default path, 0600). Files only, no Ray."""

from __future__ import annotations

import stat
from pathlib import Path

from cluster.ray_auth import token_auth_env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_token_is_made_once_private_and_the_mode_set(tmp_path: Path) -> None:
    env = token_auth_env({"PATH": "/bin"}, home=tmp_path)
    token = tmp_path / ".ray" / "auth_token"
    assert env == {"PATH": "/bin", "RAY_AUTH_MODE": "token"}
    assert len(token.read_text()) == 64 and mode(token) == 0o600
    first = token.read_text()
    token_auth_env({}, home=tmp_path)
    assert token.read_text() == first  # kept: every client of the host already uses it


def test_an_existing_token_is_kept_and_tightened(tmp_path: Path) -> None:
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("abc")
    token.chmod(0o644)  # as Ray writes it
    token_auth_env({}, home=tmp_path)
    assert (token.read_text(), mode(token)) == ("abc", 0o600)


def test_the_token_path_and_token_variables_win(tmp_path: Path) -> None:
    elsewhere = tmp_path / "tok"
    token_auth_env({"RAY_AUTH_TOKEN_PATH": str(elsewhere)}, home=tmp_path)
    assert elsewhere.exists() and not (tmp_path / ".ray").exists()
    assert token_auth_env({"RAY_AUTH_TOKEN": "x"}, home=tmp_path) == {
        "RAY_AUTH_TOKEN": "x",
        "RAY_AUTH_MODE": "token",
    }
    assert not (tmp_path / ".ray").exists()


def test_opting_out_starts_ray_without_authentication(tmp_path: Path) -> None:
    assert token_auth_env({"RAY_AUTH_MODE": "disabled"}, home=tmp_path) is None
    assert not (tmp_path / ".ray").exists()
