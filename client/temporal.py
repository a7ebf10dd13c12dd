"""The Temporal connection and data converter, shared by producers, workers and tests."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from core.config import Settings
from core.crypto import EncryptionCodec, payload_key


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models in and out, every payload encrypted before it leaves the process."""
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(payload_key(settings))
    )


async def connect(settings: Settings, *, address: str | None = None) -> Client:
    return await Client.connect(
        address or settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
