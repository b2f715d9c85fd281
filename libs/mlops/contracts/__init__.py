"""Protobuf contracts (generated from proto/) and their versioned encoding.

Every top-level message has `contract_version` as field 1. `encode` stamps the current version; `decode` refuses
bytes that do not parse or that come from a newer major contract, with an error naming where the bytes came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message

from mlops.contracts.v1 import common_pb2, events_pb2, models_pb2
from mlops.errors import MlopsError

CONTRACT_VERSION = 1
CONTENT_TYPE = "application/x-protobuf"

M = TypeVar("M", bound=Message)

__all__ = [
    "CONTENT_TYPE",
    "CONTRACT_VERSION",
    "ContractError",
    "common_pb2",
    "decode",
    "encode",
    "events_pb2",
    "is_versioned",
    "models_pb2",
]


class ContractError(MlopsError, ValueError):
    """Bytes that are not a valid record of the expected contract; the message says what and where (a ValueError
    too, so callers that caught bad input as ValueError still do)."""

    def __init__(self, message_type: str, where: str, detail: str):
        self.message_type = message_type
        self.where = where
        self.detail = detail
        super().__init__(f"cannot decode {message_type} at {where}: {detail}")


_VERSIONED: dict[type, bool] = {}


def is_versioned(message_type: type[Message]) -> bool:
    """Whether a message type is a top-level contract (has `contract_version`); cached per type."""
    versioned = _VERSIONED.get(message_type)
    if versioned is None:
        versioned = _VERSIONED[message_type] = "contract_version" in message_type.DESCRIPTOR.fields_by_name
    return versioned


def encode(message: Message) -> bytes:
    """Serialize a contract message (deterministically: maps in key order), stamping the contract version when
    the caller left it unset."""
    if is_versioned(type(message)) and not message.contract_version:  # type: ignore[attr-defined]
        message.contract_version = CONTRACT_VERSION  # type: ignore[attr-defined]
    return message.SerializeToString(deterministic=True)


def decode(message_type: type[M], data: bytes | None, where: str | Callable[[], str] = "<bytes>") -> M:
    """Parse `data` as `message_type`; raise ContractError naming `where` (e.g. topic/partition/offset; a
    callable is only called on error, keeping the hot path free of string formatting)."""

    def fail(detail: str) -> ContractError:
        return ContractError(message_type.DESCRIPTOR.full_name, where() if callable(where) else where, detail)

    if data is None:
        raise fail("record has no value (tombstone)")
    message = message_type()
    try:
        message.ParseFromString(data)
    except (_PbDecodeError, RuntimeError) as exc:
        raise fail(f"not a valid protobuf message ({exc})") from exc
    version = message.contract_version if is_versioned(message_type) else CONTRACT_VERSION  # type: ignore[attr-defined]
    if version != CONTRACT_VERSION:
        raise fail(f"contract version {version}, this code speaks {CONTRACT_VERSION}")
    return message
