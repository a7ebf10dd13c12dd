"""Encryption at rest for what the system stores outside its own database.

Job inputs and results live in Temporal's history, which the server keeps in plain form
and the Web UI shows; they may carry secrets (webhook signing secrets) and personal data
(email addresses, phone numbers). A payload codec encrypts every payload with AES-256-GCM
before it leaves the process.

Key: ``PAYLOAD_ENCRYPTION_KEY`` (base64 of 32 bytes). Outside production a key is generated
once under ``var/`` so a fresh machine works with no configuration; production refuses to
start without one (checked by Settings).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from core.config import VAR_DIR, ConfigError, Settings

ENCODING = b"binary/encrypted-aes256gcm"
_NONCE_BYTES = 12


def decode_key(raw: str, *, variable: str = "PAYLOAD_ENCRYPTION_KEY") -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{variable}: must be base64") from None
    if len(key) != 32:
        raise ConfigError(f"{variable}: must decode to 32 bytes, got {len(key)}")
    return key


def local_key_file(name: str, var_dir: Path = VAR_DIR) -> bytes:
    """A development key kept under var/, created once with owner-only permissions."""
    path = var_dir / name
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(AESGCM.generate_key(bit_length=256)).decode())
    return decode_key(path.read_text().strip(), variable=str(path))


def payload_key(settings: Settings) -> bytes:
    if settings.payload_encryption_key:
        return decode_key(settings.payload_encryption_key)
    return local_key_file("payload.key")


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each serialized payload; metadata keeps the original encoding."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = self._aead.encrypt(nonce, payload.SerializeToString(), None)
            out.append(Payload(metadata={"encoding": ENCODING}, data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
            original = Payload()
            original.ParseFromString(self._aead.decrypt(nonce, sealed, None))
            out.append(original)
        return out


def token_key(settings: Settings) -> bytes:
    if settings.token_encryption_key:
        return decode_key(settings.token_encryption_key, variable="TOKEN_ENCRYPTION_KEY")
    return local_key_file("token.key")


class TokenCipher:
    """AES-256-GCM for OAuth tokens at rest (NFR-034); the row id is bound as associated
    data, so a ciphertext copied onto another account's row does not decrypt."""

    PREFIX = "v1:"

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return self.PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, ciphertext: str, *, bound_to: str) -> str:
        if not ciphertext.startswith(self.PREFIX):
            raise ValueError("not a token ciphertext of this system")
        raw = base64.b64decode(ciphertext[len(self.PREFIX) :])
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, sealed, bound_to.encode()).decode()
