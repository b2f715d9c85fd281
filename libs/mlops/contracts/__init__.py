"""Protobuf contracts (generated from proto/) and their versioned encoding.

Every top-level message has `contract_version` as field 1. `encode` stamps the current version; `decode` refuses
bytes that do not parse or that come from a newer major contract, with an error naming where the bytes came from.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message

from mlops.contracts.v1 import common_pb2, events_pb2, models_pb2

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
    "models_pb2",
]


class ContractError(ValueError):
    """Bytes that are not a valid record of the expected contract; the message says what and where."""

    def __init__(self, message_type: str, where: str, detail: str):
        self.message_type = message_type
        self.where = where
        self.detail = detail
        super().__init__(f"cannot decode {message_type} at {where}: {detail}")


def encode(message: Message) -> bytes:
    """Serialize a contract message, stamping the contract version when the caller left it unset."""
    if "contract_version" in message.DESCRIPTOR.fields_by_name and not getattr(message, "contract_version"):
        setattr(message, "contract_version", CONTRACT_VERSION)
    return message.SerializeToString(deterministic=True)


def decode(message_type: type[M], data: bytes | None, where: str = "<bytes>") -> M:
    """Parse `data` as `message_type`; raise ContractError naming `where` (e.g. topic/partition/offset)."""
    name = message_type.DESCRIPTOR.full_name
    if data is None:
        raise ContractError(name, where, "record has no value (tombstone)")
    message = message_type()
    try:
        message.ParseFromString(data)
    except (_PbDecodeError, RuntimeError) as exc:
        raise ContractError(name, where, f"not a valid protobuf message ({exc})") from exc
    version = getattr(message, "contract_version", CONTRACT_VERSION)
    if version != CONTRACT_VERSION:
        raise ContractError(name, where, f"contract version {version}, this code speaks {CONTRACT_VERSION}")
    return message
