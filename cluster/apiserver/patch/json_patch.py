"""JSON Patch (RFC 6902) with JSON Pointers (RFC 6901), the `application/json-patch+json` patch type.

A patch is applied atomically: operations run in order on a private copy and the first failure raises,
so the caller's document is never half-patched. Malformed patches (not a list, unknown op, missing
member) are 400 BadRequest; operations that do not apply to the document are 422, as in the
kube-apiserver. Messages follow the wording of the Go library Kubernetes uses.
"""

from __future__ import annotations

import copy
from typing import Any

from cluster.apiserver.patch.errors import PatchError

MAX_OPERATIONS = 10000
_MISSING: Any = object()


def json_equal(a: Any, b: Any) -> bool:
    """JSON value equality: numbers by value, booleans distinct from numbers, objects unordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def parse_pointer(pointer: str) -> list[str]:
    """Split an RFC 6901 pointer into unescaped reference tokens ('' is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f'JSON pointer "{pointer}" must start with "/"', 400)
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _index(token: str, length: int, *, allow_end: bool, path: str) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"Unable to access invalid index: {token} in path {path}", 422)
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchError(f"Unable to access invalid index: {index} in path {path}", 422)
    return index


def _parent(doc: Any, tokens: list[str], path: str, op: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(
                f'{op} operation does not apply: doc is missing path: "{path}": missing value', 422
            )
    if not isinstance(node, dict | list):
        raise PatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value', 422)
    return node


def _get(doc: Any, path: str, op: str) -> Any:
    node = doc
    for token in parse_pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif (
            isinstance(node, list) and token.isdigit() and str(int(token)) == token and int(token) < len(node)
        ):
            node = node[int(token)]
        else:
            return _MISSING
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = parse_pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path, "add")
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent.insert(_index(last, len(parent), allow_end=True, path=path), value)
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> tuple[Any, Any]:
    tokens = parse_pointer(path)
    if not tokens:
        return None, doc
    parent = _parent(doc, tokens, path, op)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value", 422)
        return doc, parent.pop(last)
    return doc, parent.pop(_index(last, len(parent), allow_end=False, path=path))


def _member(op: dict[str, Any], name: str, kind: str) -> Any:
    if name not in op:
        raise PatchError(f"{kind} operation missing '{name}' member", 400)
    value = op[name]
    if name in ("path", "from") and not isinstance(value, str):
        raise PatchError(f"{kind} operation has a non-string '{name}' member", 400)
    return value


def _apply_one(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        raise PatchError(f"Unexpected kind: {kind}", 400)
    path = _member(op, "path", kind)
    if kind == "add":
        return _add(doc, path, copy.deepcopy(_member(op, "value", kind)))
    if kind == "remove":
        return _remove(doc, path)[0]
    if kind == "replace":
        value = copy.deepcopy(_member(op, "value", kind))
        if _get(doc, path, kind) is _MISSING:
            raise PatchError(
                f"replace operation does not apply: doc is missing key: {path}: missing value", 422
            )
        doc, _ = _remove(doc, path, "replace")
        return _add(doc, path, value)
    if kind == "test":
        expected = _member(op, "value", kind)
        actual = _get(doc, path, kind)
        if actual is _MISSING or not json_equal(actual, expected):
            raise PatchError(f"testing value {path} failed: test failed", 422)
        return doc
    source = _member(op, "from", kind)
    if _get(doc, source, kind) is _MISSING:
        raise PatchError(
            f"{kind} operation does not apply: doc is missing from path: {source}: missing value", 422
        )
    if kind == "move":
        if path != source and path.startswith(source + "/"):
            raise PatchError(
                f"move operation does not apply: cannot move {source} into its own child {path}", 422
            )
        doc, value = _remove(doc, source, "move")
        return _add(doc, path, value)
    return _add(doc, path, copy.deepcopy(_get(doc, source, kind)))


def json_patch_value(doc: Any, ops: Any) -> Any:
    """Apply RFC 6902 operations to any JSON value; the input is not mutated."""
    if not isinstance(ops, list):
        raise PatchError(
            f"json: cannot unmarshal {type(ops).__name__} into Go value of type jsonpatch.Patch", 400
        )
    if len(ops) > MAX_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(ops)}", 413
        )
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError("json: cannot unmarshal operation: not an object", 400)
    result = copy.deepcopy(doc)
    for op in ops:
        result = _apply_one(result, op)
    return result


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply a JSON patch to an object; the result must still be an object (422 otherwise)."""
    result = json_patch_value(doc, ops)
    if not isinstance(result, dict):
        raise PatchError("the patched document is not a JSON object", 422)
    return result
