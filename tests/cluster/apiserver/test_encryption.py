"""Encryption at rest: the providers' formats, the prefix list's reads and writes, the configuration
file's validation (kube's texts), and ObjectStore over a real MVCC store keeping only ciphertext."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import orjson
import pytest
import yaml

from cluster.apiserver.encryption import (
    AesCbc,
    AesGcm,
    Identity,
    PrefixTransformer,
    PrefixTransformers,
    Secretbox,
    TransformError,
)
from cluster.apiserver.encryption_config import EncryptionConfigError, default_config, load, parse
from cluster.apiserver.errors import StatusError
from cluster.apiserver.storage import ObjectStore
from cluster.security import security_options
from tests.cluster.apiserver.faulty_store import FaultyStore

KEY32 = bytes(range(32))
KEY = b"/registry/secrets/default/s1"
SECRET_JSON = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def config_text(*providers: dict[str, object], resources: tuple[str, ...] = ("secrets",)) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}],
        }
    )


def keyed(kind: str, *keys: tuple[str, bytes]) -> dict[str, object]:
    return {kind: {"keys": [{"name": n, "secret": _b64(k)} for n, k in keys]}}


@pytest.mark.parametrize(
    "transformer",
    [
        pytest.param(AesGcm(KEY32), id="aesgcm"),
        pytest.param(AesGcm(KEY32[:16]), id="aesgcm-128"),
        pytest.param(AesCbc(KEY32), id="aescbc"),
        pytest.param(Secretbox(KEY32), id="secretbox"),
        pytest.param(Identity(), id="identity"),
    ],
)
def test_round_trip_and_fresh_randomness(transformer: AesGcm | AesCbc | Secretbox | Identity) -> None:
    stored = transformer.to_storage(SECRET_JSON, KEY)
    assert transformer.from_storage(stored, KEY) == SECRET_JSON
    if not isinstance(transformer, Identity):
        assert b"hunter2" not in stored and b"aHVudGVyMg" not in stored
        assert transformer.to_storage(SECRET_JSON, KEY) != stored  # a new nonce / IV each write


def test_aesgcm_authenticates_the_store_key() -> None:
    stored = AesGcm(KEY32).to_storage(SECRET_JSON, KEY)
    with pytest.raises(TransformError, match="cipher: message authentication failed"):
        AesGcm(KEY32).from_storage(stored, b"/registry/secrets/other/s1")  # copied under another key


@pytest.mark.parametrize(
    ("transformer", "message"),
    [
        pytest.param(AesGcm(bytes(32)), "cipher: message authentication failed", id="aesgcm"),
        pytest.param(
            Secretbox(bytes(32)), "output array was not large enough for encryption", id="secretbox"
        ),
    ],
)
def test_a_wrong_key_is_refused(transformer: AesGcm | Secretbox, message: str) -> None:
    stored = type(transformer)(KEY32).to_storage(SECRET_JSON, KEY)
    with pytest.raises(TransformError, match=message):
        transformer.from_storage(stored, KEY)


def test_the_prefix_list_writes_with_the_first_and_reads_by_prefix() -> None:
    old = PrefixTransformer(b"k8s:enc:aesgcm:v1:old:", AesGcm(bytes(32)))
    new = PrefixTransformer(b"k8s:enc:secretbox:v1:new:", Secretbox(KEY32))
    plain = PrefixTransformer(b"", Identity())
    rotated = PrefixTransformers([new, old, plain])
    stored = rotated.to_storage(SECRET_JSON, KEY)
    assert stored.startswith(b"k8s:enc:secretbox:v1:new:")
    assert rotated.from_storage(stored, KEY) == SECRET_JSON
    by_old = PrefixTransformers([old]).to_storage(SECRET_JSON, KEY)
    assert by_old.startswith(b"k8s:enc:aesgcm:v1:old:")
    assert rotated.from_storage(by_old, KEY) == SECRET_JSON  # older key still listed
    assert rotated.from_storage(SECRET_JSON, KEY) == SECRET_JSON  # written before encryption
    with pytest.raises(TransformError, match=r"^no matching prefix found$"):
        PrefixTransformers([new, plain]).from_storage(by_old, KEY)  # its key was removed
    with pytest.raises(TransformError, match=r"^no matching prefix found$"):
        PrefixTransformers([new]).from_storage(SECRET_JSON, KEY)  # plain, but no identity
    with pytest.raises(TransformError, match="identity transformer tried to read encrypted data"):
        Identity().from_storage(by_old, KEY)


def test_a_config_file_builds_the_resources_transformers(tmp_path: Path) -> None:
    text = config_text(keyed("aescbc", ("k2", KEY32), ("k1", bytes(32))), {"identity": {}})
    path = tmp_path / "enc.yaml"
    path.write_text(text)
    config = load(path)
    secrets = config.for_key("/registry/secrets/ns/a")
    assert secrets is not None and secrets.to_storage(b"{}", b"k").startswith(b"k8s:enc:aescbc:v1:k2:")
    assert [t.prefix for t in secrets.transformers] == [
        b"k8s:enc:aescbc:v1:k2:",
        b"k8s:enc:aescbc:v1:k1:",
        b"",
    ]
    assert config.for_key("/registry/configmaps/ns/a") is None
    assert config.for_key("/registry/secrets/") is secrets


@pytest.mark.parametrize(
    ("resources", "key", "configured"),
    [
        pytest.param(("*.",), "/registry/configmaps/ns/a", True, id="core-star-core"),
        pytest.param(("*.",), "/registry/deployments/ns/a", False, id="core-star-apps"),
        pytest.param(("*.apps",), "/registry/deployments/ns/a", True, id="group-star"),
        pytest.param(("deployments.apps",), "/registry/deployments/ns/a", True, id="exact-group"),
        pytest.param(("*.*",), "/registry/roles/ns/a", True, id="everything"),
        pytest.param(("*.*",), "/registry/ranges/serviceips/10.0.0.1", False, id="allocation-markers"),
        pytest.param(("events",), "/registry/events.k8s.io/events/ns/a", True, id="events-k8s-io"),
    ],
)
def test_resource_rules_match_as_kubernetes(resources: tuple[str, ...], key: str, configured: bool) -> None:
    config = parse(config_text(keyed("secretbox", ("k", KEY32)), resources=resources))
    assert (config.for_key(key) is not None) is configured


P0 = "resources[0].providers[0]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a: [", "error while parsing file: ", id="yaml"),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\n",
            'error while parsing file: no kind "ConfigMap" is registered for version "v1"',
            id="kind",
        ),
        pytest.param(
            config_text(keyed("aesgcm", ("k", b"short"))),
            f'{P0}.aesgcm.keys[0].secret: Invalid value: "REDACTED": secret is not of the expected length, '
            "got 5, expected one of [16 24 32]",
            id="key-length",
        ),
        pytest.param(
            config_text({"secretbox": {"keys": [{"name": "k", "secret": "not base64!"}]}}),
            f'{P0}.secretbox.keys[0].secret: Invalid value: "REDACTED": secrets must be base64 encoded',
            id="base64",
        ),
        pytest.param(
            config_text({"aescbc": {"keys": [{"secret": _b64(KEY32)}]}}),
            f"{P0}.aescbc.keys[0].name: Required value: name is a mandatory field for a key",
            id="key-name",
        ),
        pytest.param(
            config_text({"aesgcm": {"keys": []}}),
            f"{P0}.aesgcm.keys: Required value: at least one keys is required",
            id="no-keys",
        ),
        pytest.param(
            config_text({"rot13": {}}),
            "provider does not contain any of the expected providers: "
            "KMS, AESGCM, AESCBC, Secretbox, Identity",
            id="unknown-provider",
        ),
        pytest.param(
            config_text({"identity": {}, "aesgcm": {"keys": []}}),
            "more than one provider specified in a single element, should split into different list elements",
            id="two-in-one",
        ),
        pytest.param(
            config_text({"identity": {}}, resources=("Secrets",)),
            'resources[0].resources[0]: Invalid value: "Secrets": '
            "resource name should not contain capital letters",
            id="capitals",
        ),
        pytest.param(
            config_text({"identity": {}}, resources=("secrets", "*.*")),
            "using overlapping resources such as 'secrets' and '*.' in the same resource list",
            id="overlap",
        ),
        pytest.param(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n",
            "resources: Required value: at least one resources is required",
            id="no-resources",
        ),
    ],
)
def test_bad_files_are_refused_with_kubes_texts(text: str, message: str) -> None:
    with pytest.raises(EncryptionConfigError) as err:
        parse(text)
    assert message in str(err.value)
    assert str(err.value).startswith("error while parsing file: ")
    assert _b64(KEY32) not in str(err.value)  # secrets are never echoed


def test_an_earlier_wildcard_masking_a_later_rule_is_refused() -> None:
    doc = yaml.safe_load(config_text({"identity": {}}, resources=("*.*",)))
    doc["resources"].append({"resources": ["secrets"], "providers": [keyed("aesgcm", ("k", KEY32))]})
    with pytest.raises(EncryptionConfigError, match=r'resource "secrets" is masked by earlier rule "\*\.\*"'):
        parse(yaml.safe_dump(doc))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="error reading encryption provider configuration file"):
        load(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(EncryptionConfigError, match="is empty"):
        load(tmp_path / "empty.yaml")


def test_the_default_config_encrypts_secrets_with_a_fresh_aesgcm_key() -> None:
    first, second = parse(default_config()), parse(default_config())
    secrets = first.for_key("/registry/secrets/ns/a")
    assert secrets is not None and secrets.encrypts()
    stored = secrets.to_storage(SECRET_JSON, KEY)
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert secrets.from_storage(SECRET_JSON, KEY) == SECRET_JSON  # identity after it
    other = second.for_key("/registry/secrets/ns/a")
    assert other is not None
    with pytest.raises(TransformError):
        other.from_storage(stored, KEY)  # a different random key
    assert first.for_key("/registry/configmaps/ns/a") is None


def test_up_generates_the_default_once_and_refuses_a_bad_file(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    options = security_options(pki, None)
    assert options.encryption_provider_config == "encryption-config.yaml"
    generated = (pki / "encryption-config.yaml").read_bytes()
    assert (pki / "encryption-config.yaml").stat().st_mode & 0o777 == 0o600
    again = security_options(pki, options.to_dict())
    assert again.encryption_provider_config == "encryption-config.yaml"
    assert (pki / "encryption-config.yaml").read_bytes() == generated  # the key is kept
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_text(keyed("aesgcm", ("k", b"short"))))
    with pytest.raises(ValueError, match=r"^--encryption-provider-config: error while parsing file: "):
        security_options(pki, None, encryption_provider_config=bad)


def test_the_object_store_keeps_only_ciphertext_and_reads_it_back() -> None:
    config = parse(config_text(keyed("aesgcm", ("k1", KEY32)), {"identity": {}}))
    store = FaultyStore()
    objects = ObjectStore(store, config)  # type: ignore[arg-type]
    secret = {"kind": "Secret", "metadata": {"name": "s1", "namespace": "ns"}, "data": {"p": "aHVudGVyMg=="}}
    cm = {"kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "ns"}, "data": {"p": "visible"}}

    async def scenario() -> None:
        created = await objects.create("/registry/secrets/ns/s1", secret)
        await objects.create("/registry/configmaps/ns/c1", cm)
        stored = (await store.get(b"/registry/secrets/ns/s1")).value  # type: ignore[union-attr]
        assert stored.startswith(b"k8s:enc:aesgcm:v1:k1:") and b"aHVudGVyMg" not in stored
        assert orjson.loads((await store.get(b"/registry/configmaps/ns/c1")).value)["data"] == {
            "p": "visible"
        }  # type: ignore[union-attr]
        got = await objects.get("/registry/secrets/ns/s1")
        assert got is not None and got["data"] == {"p": "aHVudGVyMg=="}
        listed = await objects.list("/registry/secrets/ns/")
        assert [o["data"] for o in listed.items] == [{"p": "aHVudGVyMg=="}]
        updated = await objects.update(
            "/registry/secrets/ns/s1",
            {**secret, "data": {"p": "bmV3"}},
            int(created["metadata"]["resourceVersion"]),
        )
        assert updated["data"] == {"p": "bmV3"}
        assert b"bmV3" not in (await store.get(b"/registry/secrets/ns/s1")).value  # type: ignore[union-attr]

        # A server whose configuration lost the key answers kube's 500 for that object, no crash.
        other = ObjectStore(store, parse(config_text(keyed("aesgcm", ("k2", KEY32)))))  # type: ignore[arg-type]
        with pytest.raises(StatusError) as err:
            await other.get("/registry/secrets/ns/s1")
        assert err.value.code == 500
        assert err.value.body()["message"] == (
            'Internal error occurred: unable to transform key "/registry/secrets/ns/s1": '
            "no matching prefix found"
        )
        plain = ObjectStore(store)  # type: ignore[arg-type]
        with pytest.raises(StatusError) as err:
            await plain.get("/registry/secrets/ns/s1")
        assert "identity transformer tried to read encrypted data" in err.value.body()["message"]
        assert (await plain.get("/registry/configmaps/ns/c1")) is not None

    asyncio.run(scenario())


def test_the_store_snapshot_holds_only_ciphertext() -> None:
    """What a replica writes as its snapshot (the MVCC state, history included) after a Secret was
    created and updated through the API server's storage layer, and what a restored replica serves."""
    config = parse(default_config())
    store = FaultyStore()
    objects = ObjectStore(store, config)  # type: ignore[arg-type]
    secret = {
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns"},
        "stringData": {"p": "hunter2-v1"},
    }

    async def scenario() -> None:
        created = await objects.create("/registry/secrets/ns/s", secret)
        rv = int(created["metadata"]["resourceVersion"])
        await objects.update("/registry/secrets/ns/s", {**secret, "stringData": {"p": "hunter2-v2"}}, rv)
        await objects.create("/registry/configmaps/ns/c", {"kind": "ConfigMap", "data": {"k": "plain-cm"}})

    asyncio.run(scenario())
    snapshot = store.mvcc.snapshot()
    assert b"plain-cm" in snapshot  # the snapshot does hold the values written
    assert b"hunter2" not in snapshot and base64.b64encode(b"hunter2")[:8] not in snapshot
    restored = FaultyStore()
    restored.mvcc = type(store.mvcc).restore(snapshot)

    async def read_back() -> dict[str, object] | None:
        return await ObjectStore(restored, config).get("/registry/secrets/ns/s")  # type: ignore[arg-type]

    got = asyncio.run(read_back())
    assert got is not None and got["stringData"] == {"p": "hunter2-v2"}
