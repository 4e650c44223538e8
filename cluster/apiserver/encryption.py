"""Encryption at rest: how the API server turns an object's bytes into what the store keeps, and back.

Each provider of an EncryptionConfiguration (``encryption_config`` parses the file) becomes one or more
prefixed transformers, as in kube-apiserver's ``storage/value``: a value written with key ``k1`` of
the ``aesgcm`` provider is stored as ``k8s:enc:aesgcm:v1:k1:`` followed by the ciphertext, so a
reader knows which provider and key made it. Writes always use the first transformer of the
resource's list; reads try every transformer whose prefix the stored value starts with, in order
(``identity`` has no prefix and reads plain values, so a cluster can move to encryption and away from it).

On disk, byte for byte as Kubernetes writes them (a store written by one can be read by the other's
providers): ``aesgcm`` is a 12-byte random nonce then AES-GCM's ciphertext and tag, with the object's
store key as authenticated data (a value copied under another key does not decrypt); ``aescbc`` a
16-byte random IV then AES-CBC with PKCS#7 padding; ``secretbox`` a 24-byte random nonce then
XSalsa20-Poly1305's box. Failures raise ``TransformError`` with kube's texts; the storage layer makes
them the request's 500 (``unable to transform key "/registry/...": ...``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

ENCRYPTED_MARK = b"k8s:enc:"  # every encrypted value starts with it; plain JSON never does
NO_MATCHING_PREFIX = "no matching prefix found"
IDENTITY_READ_ENCRYPTED = "identity transformer tried to read encrypted data"
SHORT_DATA = "the stored data was shorter than the required size"


class TransformError(Exception):
    """A stored value could not be turned back into the object (wrong or missing key, tampering)."""


class Transformer(Protocol):
    """One provider key: ``to_storage`` encrypts, ``from_storage`` decrypts (raising TransformError).
    ``context`` is the store key, authenticated by the providers that can (aesgcm)."""

    def to_storage(self, data: bytes, context: bytes) -> bytes: ...

    def from_storage(self, data: bytes, context: bytes) -> bytes: ...


class Identity:
    def to_storage(self, data: bytes, context: bytes) -> bytes:
        return data

    def from_storage(self, data: bytes, context: bytes) -> bytes:
        if data.startswith(ENCRYPTED_MARK):
            raise TransformError(IDENTITY_READ_ENCRYPTED)
        return data


class AesGcm:
    NONCE = 12

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(self.NONCE)
        return nonce + self._aead.encrypt(nonce, data, context)

    def from_storage(self, data: bytes, context: bytes) -> bytes:
        if len(data) < self.NONCE + 16:
            raise TransformError(SHORT_DATA)
        try:
            return self._aead.decrypt(data[: self.NONCE], data[self.NONCE :], context)
        except InvalidTag:
            raise TransformError("cipher: message authentication failed") from None


class AesCbc:
    BLOCK = 16

    def __init__(self, key: bytes) -> None:
        self._key = key

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        iv = os.urandom(self.BLOCK)
        padder = padding.PKCS7(self.BLOCK * 8).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return iv + enc.update(padded) + enc.finalize()

    def from_storage(self, data: bytes, context: bytes) -> bytes:
        if len(data) < self.BLOCK:
            raise TransformError("the stored data was shorter than the required size")
        body = data[self.BLOCK :]
        if len(body) % self.BLOCK:
            raise TransformError("the stored data is not a multiple of the block size")
        dec = Cipher(algorithms.AES(self._key), modes.CBC(data[: self.BLOCK])).decryptor()
        padded = dec.update(body) + dec.finalize()
        try:
            unpadder = padding.PKCS7(self.BLOCK * 8).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise TransformError("invalid padding on input") from None


class Secretbox:
    NONCE = SecretBox.NONCE_SIZE  # 24

    def __init__(self, key: bytes) -> None:
        self._box = SecretBox(key)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        return bytes(self._box.encrypt(data, os.urandom(self.NONCE)))

    def from_storage(self, data: bytes, context: bytes) -> bytes:
        if len(data) < self.NONCE + SecretBox.MACBYTES:
            raise TransformError(SHORT_DATA)
        try:
            return bytes(self._box.decrypt(data))
        except CryptoError:
            raise TransformError("output array was not large enough for encryption") from None


@dataclass(frozen=True, slots=True)
class PrefixTransformer:
    prefix: bytes  # b"" for identity
    transformer: Transformer


def prefix_for(provider: str, key_name: str) -> bytes:
    """``k8s:enc:<provider>:v1:<key name>:``, the mark kube-apiserver puts before a value."""
    return b"%s%s:v1:%s:" % (ENCRYPTED_MARK, provider.encode(), key_name.encode())


class PrefixTransformers:
    """The providers configured for one resource, in the file's order (see the module docstring)."""

    def __init__(self, transformers: Sequence[PrefixTransformer]) -> None:
        if not transformers:
            raise ValueError("at least one transformer is needed")
        self.transformers = tuple(transformers)
        self._first = self.transformers[0]

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        first = self._first
        return first.prefix + first.transformer.to_storage(data, context)

    def from_storage(self, data: bytes, context: bytes) -> bytes:
        errors: list[str] = []
        for t in self.transformers:
            if not data.startswith(t.prefix):
                continue
            try:
                return t.transformer.from_storage(data[len(t.prefix) :], context)
            except TransformError as err:
                if t.prefix:  # identity's refusal of encrypted data only means "try the next one"
                    errors.append(str(err))
        if not errors:
            raise TransformError(NO_MATCHING_PREFIX)
        raise TransformError(errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")

    def encrypts(self) -> bool:
        """Whether new writes are encrypted (the first provider is not identity)."""
        return bool(self._first.prefix)
