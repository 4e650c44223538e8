"""The EncryptionConfiguration file (``--encryption-provider-config``, ``apiserver.config.k8s.io/v1``):
which resources are encrypted at rest, with which providers and keys.

``load`` reads and validates the file (kube-apiserver's field paths and texts: a bad file stops the
API server, and ``raykube up`` refuses it before starting anything) and returns ``EncryptionConfig``,
which answers, for a store key, the ``PrefixTransformers`` of its resource or None when the resource
is not configured (its values are stored as they are). A resource's rule is found as Kubernetes finds
it: ``secrets`` (or ``deployments.apps``), else ``*.<group>`` (``*.`` is the core group), else ``*.*``.

``default_config`` is what ``raykube up`` writes for a new cluster: Secrets under a fresh random
aesgcm key, with identity after it so values written before encryption stay readable.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster.apiserver.encryption import (
    AesCbc,
    AesGcm,
    Identity,
    PrefixTransformer,
    PrefixTransformers,
    Secretbox,
    Transformer,
    prefix_for,
)
from cluster.apiserver.resources import RESOURCES
from cluster.apiserver.storage import REGISTRY

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
PROVIDERS = ("kms", "aesgcm", "aescbc", "secretbox", "identity")
_KEYED: dict[str, tuple[tuple[int, ...], Callable[[bytes], Transformer]]] = {
    "aesgcm": ((16, 24, 32), AesGcm),
    "aescbc": ((32,), AesCbc),
    "secretbox": ((32,), Secretbox),
}


class EncryptionConfigError(ValueError):
    """The file is missing, unreadable or invalid; the text says where (kube's field paths)."""


GroupResource = tuple[str, str]  # (group, resource); "" is the core group, "*" any


def _parse_group_resource(text: str) -> GroupResource:
    """kube's ``schema.ParseGroupResource``: ``secrets`` → ("", secrets), ``*.apps`` → (apps, *)."""
    resource, _, group = text.partition(".")
    return group, resource


def _storage_groups() -> dict[str, str]:
    """The first path segment of each resource's store keys → its API group (events.k8s.io's Events
    count as core Events, as Kubernetes stores them)."""
    out: dict[str, str] = {"events.k8s.io": ""}
    for r in RESOURCES:
        if r.group != "events.k8s.io":
            out.setdefault(r.plural, r.group)
    return out


@dataclass
class EncryptionConfig:
    rules: dict[GroupResource, PrefixTransformers]
    _by_segment: dict[str, PrefixTransformers | None] = field(default_factory=dict)
    _groups: dict[str, str] = field(default_factory=_storage_groups)

    def for_group_resource(self, group: str, resource: str) -> PrefixTransformers | None:
        rules = self.rules
        return rules.get((group, resource)) or rules.get((group, "*")) or rules.get(("*", "*"))

    def for_key(self, key: str) -> PrefixTransformers | None:
        """The transformers of the resource stored under ``key`` (``/registry/<resource>/...``), or None."""
        if not key.startswith(REGISTRY):
            return None
        segment = key[len(REGISTRY) :].split("/", 1)[0]
        try:
            return self._by_segment[segment]
        except KeyError:
            pass
        group = self._groups.get(segment)
        if group is None:  # not a resource we serve (allocation markers, ...): only *.* would match
            found = self.rules.get(("*", "*")) if segment != "ranges" else None
        else:
            resource = "events" if segment == "events.k8s.io" else segment
            found = self.for_group_resource(group, resource)
        self._by_segment[segment] = found
        return found


# ---------------------------------------------------------------------- validation (kube's texts)


def _required(path: str, detail: str) -> str:
    return f"{path}: Required value: {detail}"


def _invalid(path: str, value: str, detail: str) -> str:
    return f'{path}: Invalid value: "{value}": {detail}'


def _validate_resources(names: list[Any], path: str) -> list[str]:
    errs: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        p = f"{path}[{i}]"
        if not isinstance(name, str) or not name:
            errs.append(_invalid(p, str(name), "resource name should not be empty"))
            continue
        if name != name.lower():
            errs.append(_invalid(p, name, "resource name should not contain capital letters"))
        elif name == "*":
            errs.append(
                _invalid(p, name, "use '*.' to encrypt all the resources from core API group or *.* to "
                         "encrypt all resources")
            )  # fmt: skip
        elif name.endswith(".events.k8s.io"):
            errs.append(
                _invalid(p, name, "'*.events.k8s.io' objects are stored using the 'events' API group in "
                         "etcd. Use 'events' instead in the config file")
            )  # fmt: skip
        elif name in seen:
            errs.append(_invalid(p, name, "the same resource cannot be specified multiple times"))
        seen.add(name)
    if len(seen) > 1:
        for i, name in enumerate(names):
            if not isinstance(name, str):
                continue
            group, resource = _parse_group_resource(name)
            if name == "*.*" or (
                resource == "*" and any(_parse_group_resource(o)[0] == group for o in seen if o != name)
            ):
                errs.append(
                    _invalid(f"{path}[{i}]", name, "using overlapping resources such as 'secrets' and '*.' "
                             "in the same resource list is not allowed as they will be masked")
                )  # fmt: skip
    return errs


def _validate_keys(keys: Any, path: str, sizes: tuple[int, ...]) -> list[str]:
    if not keys or not isinstance(keys, list):
        return [_required(path, "at least one keys is required")]
    errs: list[str] = []
    for i, key in enumerate(keys):
        p = f"{path}[{i}]"
        key = key if isinstance(key, dict) else {}
        if not key.get("name"):
            errs.append(_required(f"{p}.name", "name is a mandatory field for a key"))
        elif ":" in str(key["name"]):
            errs.append(_invalid(f"{p}.name", str(key["name"]), "key name must not contain ':'"))
        secret = key.get("secret")
        if not secret:
            errs.append(_required(f"{p}.secret", "secret is a mandatory field for a key"))
            continue
        try:
            raw = base64.b64decode(str(secret), validate=True)
        except (binascii.Error, ValueError):
            errs.append(_invalid(f"{p}.secret", "REDACTED", "secrets must be base64 encoded"))
            continue
        if len(raw) not in sizes:
            expected = "[" + " ".join(str(s) for s in sizes) + "]"
            errs.append(
                _invalid(
                    f"{p}.secret",
                    "REDACTED",
                    f"secret is not of the expected length, got {len(raw)}, expected one of {expected}",
                )
            )
    return errs


def _validate(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return ["the file is not a YAML or JSON object"]
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        return [
            f'no kind "{doc.get("kind", "")}" is registered for version "{doc.get("apiVersion", "")}" '
            f"(expected apiVersion {API_VERSION}, kind {KIND})"
        ]
    resources = doc.get("resources")
    if not resources or not isinstance(resources, list):
        return [_required("resources", "at least one resources is required")]
    errs: list[str] = []
    for i, conf in enumerate(resources):
        conf = conf if isinstance(conf, dict) else {}
        r, p = f"resources[{i}].resources", f"resources[{i}].providers"
        names = conf.get("resources") or []
        if not names:
            errs.append(_required(r, f"at least one {r} is required"))
        errs += _validate_resources(list(names), r)
        providers = conf.get("providers") or []
        if not providers:
            errs.append(_required(p, f"at least one {p} is required"))
        for j, provider in enumerate(providers):
            path = f"{p}[{j}]"
            found = [k for k in PROVIDERS if isinstance(provider, dict) and k in provider]
            if not found:
                errs.append(
                    _invalid(path, str(provider), "provider does not contain any of the expected providers: "
                             "KMS, AESGCM, AESCBC, Secretbox, Identity")
                )  # fmt: skip
            elif len(found) > 1:
                errs.append(
                    _invalid(path, str(provider), "more than one provider specified in a single element, "
                             "should split into different list elements")
                )  # fmt: skip
            elif found[0] == "kms":
                errs.append(_invalid(f"{path}.kms", "kms", "KMS providers are not supported by raykube"))
            elif found[0] in _KEYED:
                sizes = _KEYED[found[0]][0]
                errs += _validate_keys(
                    (provider[found[0]] or {}).get("keys"), f"{path}.{found[0]}.keys", sizes
                )
    return errs


def _transformers(providers: list[dict[str, Any]]) -> list[PrefixTransformer]:
    out: list[PrefixTransformer] = []
    for provider in providers:
        (kind,) = (k for k in PROVIDERS if k in provider)
        if kind == "identity":
            out.append(PrefixTransformer(b"", Identity()))
            continue
        make = _KEYED[kind][1]
        for key in provider[kind]["keys"]:
            secret = base64.b64decode(str(key["secret"]))
            out.append(PrefixTransformer(prefix_for(kind, str(key["name"])), make(secret)))
    return out


def parse(text: str | bytes) -> EncryptionConfig:
    """The configuration in ``text``; raises EncryptionConfigError with every problem found."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise EncryptionConfigError(f"error while parsing file: {err}") from None
    errs = _validate(doc)
    if errs:
        raise EncryptionConfigError(
            "error while parsing file: " + (errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]")
        )
    rules: dict[GroupResource, PrefixTransformers] = {}
    for conf in doc["resources"]:
        transformers = PrefixTransformers(_transformers(conf["providers"]))
        for name in conf["resources"]:
            group, resource = _parse_group_resource(name)
            for masking in ((group, "*"), ("*", "*")):
                if masking in rules and masking != (group, resource):
                    masked, earlier = _yaml_name((group, resource)), _yaml_name(masking)
                    raise EncryptionConfigError(
                        "error while building transformers: "
                        f'resource "{masked}" is masked by earlier rule "{earlier}"'
                    )
            rules.setdefault((group, resource), transformers)
    return EncryptionConfig(rules)


def _yaml_name(gr: GroupResource) -> str:
    group, resource = gr
    if group:
        return f"{resource}.{group}"
    return "*." if resource == "*" else resource


def load(path: Path) -> EncryptionConfig:
    """The configuration in the file at ``path`` (see ``parse``)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EncryptionConfigError(
            f'error reading encryption provider configuration file "{path}": {err.strerror}'
        ) from None
    if not data.strip():
        raise EncryptionConfigError(f'encryption provider configuration file "{path}" is empty')
    return parse(data)


def default_config() -> str:
    """A new cluster's configuration: Secrets encrypted with a random 256-bit aesgcm key, identity after
    it (so Secrets written in plain text before encryption was on remain readable)."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return yaml.safe_dump(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "resources": [
                {
                    "resources": ["secrets"],
                    "providers": [{"aesgcm": {"keys": [{"name": "key1", "secret": key}]}}, {"identity": {}}],
                }
            ],
        },
        sort_keys=False,
    )


def for_api_server(file_name: str | None, pki_dir: Path | None) -> EncryptionConfig | None:
    """The API server's configuration: ``SecurityOptions.encryption_provider_config`` names a file in
    ``pki_dir``; None when there is none (values are then stored as they are)."""
    if not file_name or pki_dir is None:
        return None
    return load(pki_dir / file_name)
