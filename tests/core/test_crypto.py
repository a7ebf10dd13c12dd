"""The payload codec that encrypts job inputs and results in Temporal history."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from core.config import ConfigError, load_settings
from core.crypto import ENCODING, EncryptionCodec, decode_key, local_key_file, payload_key

SECRET_JSON = b'{"secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5", "email": "jane@example.com"}'


def _key() -> bytes:
    return os.urandom(32)


def _payload(data: bytes = SECRET_JSON) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "messageType": b"Lead"}, data=data)


async def test_round_trip_restores_data_and_metadata() -> None:
    codec = EncryptionCodec(_key())
    originals = [_payload(), _payload(b""), _payload(b"\x00" * 1024)]
    encoded = await codec.encode(originals)
    assert len(encoded) == 3
    assert all(p.metadata["encoding"] == ENCODING for p in encoded)
    assert await codec.decode(encoded) == originals


async def test_ciphertext_differs_each_time_and_hides_the_plaintext() -> None:
    codec = EncryptionCodec(_key())
    [first] = await codec.encode([_payload()])
    [second] = await codec.encode([_payload()])
    assert first.data != second.data  # a fresh nonce per payload
    for sealed in (first, second):
        assert b"whsec_" not in sealed.data
        assert b"jane@example.com" not in sealed.data
        assert b"json/plain" not in sealed.data  # the original metadata is sealed too
        assert set(sealed.metadata) == {"encoding"}


async def test_wrong_key_cannot_decode() -> None:
    [sealed] = await EncryptionCodec(_key()).encode([_payload()])
    with pytest.raises(InvalidTag):
        await EncryptionCodec(_key()).decode([sealed])


async def test_tampered_ciphertext_is_refused() -> None:
    key = _key()
    [sealed] = await EncryptionCodec(key).encode([_payload()])
    flipped = bytes([sealed.data[-1] ^ 1])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + flipped)
    with pytest.raises(InvalidTag):
        await EncryptionCodec(key).decode([tampered])


async def test_payloads_that_are_not_encrypted_pass_through_decode() -> None:
    codec = EncryptionCodec(_key())
    plain = _payload()
    [sealed] = await codec.encode([_payload(b'"x"')])
    assert await codec.decode([plain, sealed]) == [plain, _payload(b'"x"')]


async def test_codec_works_inside_a_data_converter() -> None:
    converter = DataConverter(payload_codec=EncryptionCodec(_key()))
    payloads = await converter.encode(["jane@example.com", {"n": 1}])
    assert all(b"jane@example.com" not in p.data for p in payloads)
    assert await converter.decode(payloads) == ["jane@example.com", {"n": 1}]


def test_decode_key_accepts_32_bytes_of_base64() -> None:
    key = _key()
    assert decode_key(base64.b64encode(key).decode()) == key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not base64!", "PAYLOAD_ENCRYPTION_KEY: must be base64"),
        (base64.b64encode(b"k" * 16).decode(), "PAYLOAD_ENCRYPTION_KEY: must decode to 32 bytes"),
        (base64.b64encode(b"k" * 33).decode(), "got 33"),
        ("", "got 0"),
    ],
)
def test_decode_key_errors_name_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        decode_key(raw)


def test_decode_key_names_the_given_variable() -> None:
    with pytest.raises(ConfigError, match="^/etc/key: must be base64"):
        decode_key("%%%", variable="/etc/key")


def test_local_key_file_is_created_once_owner_only(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"  # created on demand
    first = local_key_file("payload.key", var_dir=var_dir)
    path = var_dir / "payload.key"
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = path.read_text()

    assert local_key_file("payload.key", var_dir=var_dir) == first
    assert path.read_text() == written
    assert local_key_file("other.key", var_dir=var_dir) != first


def test_local_key_file_with_a_bad_key_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "payload.key").write_text("short")
    with pytest.raises(ConfigError, match=str(tmp_path / "payload.key")):
        local_key_file("payload.key", var_dir=tmp_path)


def test_payload_key_prefers_the_configured_key() -> None:
    key = _key()
    settings = load_settings({"PAYLOAD_ENCRYPTION_KEY": base64.b64encode(key).decode()})
    assert payload_key(settings) == key
