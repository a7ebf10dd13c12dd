"""The Temporal side of the system: the connection and data converter every process shares, and
what the system needs on the server, set idempotently: namespace, search attributes and the
server-side rate limit of each queue (which is also how a queue pauses).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import RateLimit, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    RegisterNamespaceRequest,
    UpdateTaskQueueConfigRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

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


# Only ids go into search attributes: the server stores them unencrypted.
USER_ID_ATTRIBUTE = SearchAttributeKey.for_keyword("BottleneckUserId")
SEARCH_ATTRIBUTES = {USER_ID_ATTRIBUTE.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}

PAUSED_REASON = "paused"


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> None:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    await _register_namespace(client, namespace, retention)


async def _register_namespace(client: Client, namespace: str, retention: timedelta) -> None:
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(
                    seconds=int(retention.total_seconds())
                ),
            )
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: kind
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing.custom_attributes
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as exc:
        # Another process registered them between our list and add.
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise


@dataclass(frozen=True, slots=True)
class QueueRate:
    requests_per_second: float | None  # None: no server-side limit set
    reason: str

    @property
    def paused(self) -> bool:
        return self.requests_per_second == 0 and self.reason.startswith(PAUSED_REASON)


async def get_queue_rate(client: Client, namespace: str, queue: str) -> QueueRate:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_config=True,
        )
    )
    config = response.config
    if not config.HasField("queue_rate_limit") or not config.queue_rate_limit.HasField(
        "rate_limit"
    ):
        return QueueRate(None, "")
    limit = config.queue_rate_limit
    return QueueRate(limit.rate_limit.requests_per_second, limit.metadata.reason)


async def set_queue_rate(
    client: Client, namespace: str, queue: str, requests_per_second: float, reason: str
) -> None:
    """Rate limit of the queue's activity task queue, enforced by the server for all workers.

    Zero stops dispatch to every worker process (pause); running activities are unaffected.
    """
    await client.workflow_service.update_task_queue_config(
        UpdateTaskQueueConfigRequest(
            namespace=namespace,
            identity=client.identity,
            task_queue=queue,
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            update_queue_rate_limit=UpdateTaskQueueConfigRequest.RateLimitUpdate(
                rate_limit=RateLimit(requests_per_second=requests_per_second),
                reason=reason,
            ),
        )
    )
