"""The message bus: the platform's only Kafka toolkit.

- `Producer`: idempotent (acks=all), stamps each record with `traceparent`, content type and contract version.
- `Consumer`: a consumer-group member with manual commits — a record's offset is committed after its handler
  returned, so a crash before the commit means the record is read again (at-least-once).
- `Reader`: assigned partitions, no group, no commits — for compacted state topics and broadcasts.
- `run_loop`: consume → handle → flush → commit with a named `FailurePolicy`, stopped by a `StopFlag`
  (SIGTERM/SIGINT); it keeps the one lag gauge, `mlops_consumer_lag_records{topic,partition,group}`.
- `Acl`, `create_acls`, `ensure_scram_users`: a cluster's authorization, as plain values (the local secure stack).
- `Bus`: what an edge is given to make those clients: `KafkaBus(settings)` in a service, `MemoryBus()` in a
  unit test.
"""

from __future__ import annotations

from mlops.bus._acl import Acl, create_acls, ensure_scram_users
from mlops.bus._bus import Bus, KafkaBus
from mlops.bus._kafka import Consumer, Producer, wait_for_broker, watermarks
from mlops.bus._lag import CONSUMER_LAG, LagSeries, set_lag
from mlops.bus._loop import FailurePolicy, StopFlag, run_loop
from mlops.bus._memory import MemoryBus
from mlops.bus._reader import Reader
from mlops.bus._record import HEADER_CONTENT_TYPE, HEADER_CONTRACT, HEADER_MESSAGE_TYPE, BusError, Record

__all__ = [
    "CONSUMER_LAG",
    "HEADER_CONTENT_TYPE",
    "HEADER_CONTRACT",
    "HEADER_MESSAGE_TYPE",
    "Acl",
    "Bus",
    "BusError",
    "Consumer",
    "FailurePolicy",
    "KafkaBus",
    "LagSeries",
    "MemoryBus",
    "Producer",
    "Reader",
    "Record",
    "StopFlag",
    "create_acls",
    "ensure_scram_users",
    "run_loop",
    "set_lag",
    "wait_for_broker",
    "watermarks",
]
