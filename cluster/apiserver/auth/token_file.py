"""Static bearer tokens (kube-apiserver's ``--token-auth-file``): a CSV file, one token a line,
``token,user,uid[,"group1,group2"]``; blank lines and lines starting with ``#`` are skipped.

The file is read once when the API server starts (as kube does: changing it needs a restart). A
malformed file stops the start with the line that is wrong, rather than silently dropping users.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cluster.apiserver.auth.user import AUTHENTICATED, UserInfo


class TokenFileError(ValueError):
    pass


def parse(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """token → user. Raises ``TokenFileError`` naming the line for a row with fewer than three
    fields, an empty token or user, or a token listed twice."""
    users: dict[str, UserInfo] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(
                f"{source}: line {number}: want at least 3 fields (token,user,uid), got {len(row)}"
            )
        token, name, uid = (field.strip() for field in row[:3])
        if not token or not name:
            raise TokenFileError(f"{source}: line {number}: the token and the user name must not be empty")
        if token in users:
            raise TokenFileError(f"{source}: line {number}: the token is listed twice")
        groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
        users[token] = UserInfo(
            name, uid=uid, groups=(*(g for g in groups if g != AUTHENTICATED), AUTHENTICATED)
        )
    return users


def load(path: Path) -> dict[str, UserInfo]:
    try:
        text = path.read_text()
    except OSError as err:
        raise TokenFileError(f"cannot read --token-auth-file {path}: {err.strerror or err}") from err
    return parse(text, f"--token-auth-file {path.name}")
