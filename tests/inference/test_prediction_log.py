"""The prediction log: the columnar contract (`mlops.prediction_log`), one record per request and partition, and the
buffer policy when Kafka is slow (a producer held back, on MemoryBus) or unreachable (a real client pointed at a
port nothing listens on; the shared broker is never touched)."""

from __future__ import annotations

import threading
import time
import zlib

import numpy as np
import pytest
from inference_helpers import wait_until
from mlops.bus import HEADER_MESSAGE_TYPE, KafkaBus, MemoryBus
from mlops.contracts import ContractError, models_pb2
from mlops.definitions import Task
from mlops.prediction_log import PredictionColumns, from_batch, read_predictions, to_batch
from mlops.settings import KafkaSettings
from mlops_tools.procs import free_port
from prometheus_client import REGISTRY

from services.inference import convert
from services.inference.core import ServedBatch
from services.inference.edge.prediction_log import PredictionLog
from services.inference.settings import InferenceSettings, PredictionOverflow

NAMES = ("v.a", "v.b", "v.c")


def served(n: int, request_id: str = "r", entities: list[str] | None = None) -> ServedBatch:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    p1 = np.linspace(0.1, 0.9, n, dtype=np.float32)
    return ServedBatch(request_id, "m", "7", Task.BINARY, None, NAMES, x, np.stack([1 - p1, p1], axis=1), entities,
                       [1_000 + i for i in range(n)] if entities else None, 250, 1_700_000_000_000)


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("mlops_inference_prediction_logs_dropped_total", {"reason": reason}) or 0.0


def logged() -> float:
    return REGISTRY.get_sample_value("mlops_inference_prediction_logs_total") or 0.0


# --- the contract -----------------------------------------------------------------------------------------------


def test_a_batch_round_trips_through_packed_arrays() -> None:
    [(key, msg)] = convert.prediction_batches(served(3, "req-1", ["e1", "e1", "e1"]), partitions=3, trace_id="ab")
    assert key == "e1" and msg.rows == 3 and list(msg.feature_names) == list(NAMES)
    c = from_batch(models_pb2.PredictionBatch.FromString(msg.SerializeToString()))
    assert c.x.tolist() == served(3).x.tolist() and c.outputs.shape == (3, 2)
    assert c.scores.tolist() == pytest.approx(np.linspace(0.1, 0.9, 3).tolist())
    assert c.predicted_labels.tolist() == [0.0, 1.0, 1.0]  # p >= 0.5
    assert c.request_ids() == ["req-1/0", "req-1/1", "req-1/2"] and c.entity_list() == ["e1"] * 3
    assert c.as_of_list() == [1_000, 1_001, 1_002] and (c.trace_id, c.latency_us) == ("ab", 250)
    raw = from_batch(convert.prediction_batches(served(1, "solo"))[0][1])
    assert raw.request_ids() == ["solo"] and raw.entity_list() == [""] and raw.as_of_list() == [0]


def test_rows_are_split_by_the_partition_of_their_entity() -> None:
    entities = [f"e{i}" for i in range(20)]
    out = convert.prediction_batches(served(20, "big", entities), partitions=3)
    assert 1 < len(out) <= 3
    seen: dict[str, str] = {}
    for key, msg in out:
        c = from_batch(msg)
        part = zlib.crc32(key.encode()) % 3
        assert all(zlib.crc32(e.encode()) % 3 == part for e in c.entity_list())  # the key's partition is theirs
        for rid, e, row in zip(c.request_ids(), c.entity_list(), c.x.tolist(), strict=True):
            i = int(rid.split("/")[1])
            seen[rid] = e
            assert e == entities[i] and row == served(20).x[i].tolist()  # each row keeps its place in the request
    assert sorted(seen) == sorted(f"big/{i}" for i in range(20))


def _round(*batches: ServedBatch) -> list[tuple[ServedBatch, str, str]]:
    return [(b, f"{i + 1:032x}", f"{i + 1:016x}") for i, b in enumerate(batches)]


def test_a_rounds_requests_share_one_record_per_partition_and_split_back_whole() -> None:
    entities = [f"e{i}" for i in range(12)]
    items = _round(served(5, "a", entities[:5]), served(1, "raw"), served(7, "b", entities[5:]))
    items[1][0].latency_us, items[2][0].timestamp_ms = 99, 1_700_000_000_555
    ids = {b.request_id: (trace_id, span_id) for b, trace_id, span_id in items}
    out = convert.round_batches(items, partitions=3)
    assert 1 < len(out) <= 3  # not one record per request and partition (that would be up to 7)
    got: dict[str, list] = {}
    for key, msg in out:
        c = from_batch(models_pb2.PredictionBatch.FromString(msg.SerializeToString()))
        part = zlib.crc32(key.encode()) % 3
        assert all(zlib.crc32(k.encode()) % 3 == part for k in c.entity_list() if k)  # rows in their entity's
        assert c.request_id == c.requests[0].request_id and c.trace_id == c.requests[0].trace_id  # the first's
        for r in c.split():
            got.setdefault(r.request_id, []).append(r)
            assert (r.trace_id, r.span_id) == ids[r.request_id]  # each request's own trace
    assert sorted(got) == ["a", "b", "raw"]
    raw = got["raw"][0]
    assert raw.request_ids() == ["raw"] and raw.entity_list() == [""] and raw.latency_us == 99
    assert raw.x.tolist() == served(1).x.tolist() and raw.as_of_list() == [0]
    for rid, ents in (("a", entities[:5]), ("b", entities[5:])):
        rows = {i: (e, row) for r in got[rid] for i, e, row in zip(
            [int(x.split("/")[1]) for x in r.request_ids()], r.entity_list(), r.x.tolist(), strict=True)}
        assert sorted(rows) == list(range(len(ents)))  # every row once, with its index in its request
        assert all(rows[i] == (ents[i], served(len(ents)).x[i].tolist()) for i in rows)
        assert {r.timestamp_ms for r in got[rid]} == {1_700_000_000_000 if rid == "a" else 1_700_000_000_555}
        assert {r.request_rows for r in got[rid]} == {len(ents)}


def test_a_rounds_raw_feature_requests_each_lie_in_the_partition_of_their_id() -> None:
    out = convert.round_batches(_round(*(served(2, f"req-{i}") for i in range(9))), partitions=3)
    assert len(out) == len({zlib.crc32(f"req-{i}".encode()) % 3 for i in range(9)})  # one record per partition
    ids = [r.request_id for key, msg in out for r in from_batch(msg).split()
           if zlib.crc32(r.request_id.encode()) % 3 == zlib.crc32(key.encode()) % 3]
    assert sorted(ids) == [f"req-{i}" for i in range(9)]


def test_a_round_keeps_versions_and_roles_apart_and_records_under_the_size_cap() -> None:
    shadow = served(2, "s")
    shadow.role = "shadow"
    other = served(2, "o")
    other.model_version = "8"
    big = [served(64, f"big{i}") for i in range(2 * convert.MERGE_BYTES // convert.logged_bytes(served(64)) + 1)]
    out = convert.round_batches(_round(served(2, "c1"), shadow, other, served(2, "c2"), *big))
    by_request = {r.request_id: (msg.model_version, msg.role) for _, msg in out for r in from_batch(msg).split()}
    assert by_request["c1"] == by_request["c2"] == ("7", "champion") and by_request["s"] == ("7", "shadow")
    assert by_request["o"] == ("8", "champion")
    assert len([m for _, m in out if m.role == "shadow"]) == len([m for _, m in out if m.model_version == "8"]) == 1
    assert all(m.ByteSize() <= convert.MERGE_BYTES for _, m in out)
    assert sum(m.rows for _, m in out) == 8 + 64 * len(big) and len(out) == 2 + 3  # c1, c2 ride with the big ones


def test_a_batch_whose_arrays_do_not_fit_its_rows_is_refused_naming_the_field() -> None:
    msg = convert.prediction_batches(served(2))[0][1]
    msg.scores_f32 = msg.scores_f32[:4]
    with pytest.raises(ContractError, match="'scores_f32' has 4 bytes; 2 rows need 8"):
        from_batch(msg, "topic=p partition=0 offset=5")
    msg = convert.prediction_batches(served(2, entities=["a", "b"]))[0][1]
    del msg.entity_ids[1]
    with pytest.raises(ContractError, match="'entity_ids' has 1 entries for 2 rows"):
        from_batch(msg)
    [(_, msg)] = convert.round_batches(_round(served(2, "a"), served(3, "b")))
    msg.requests[1].rows = 2
    with pytest.raises(ContractError, match="'requests' covers 4 rows of 5"):
        from_batch(msg)


def test_readers_take_either_contract_by_its_message_type_header() -> None:
    bus = MemoryBus()
    producer = bus.producer(client_id="t")
    producer.send("p", models_pb2.PredictionRecord(request_id="old/1", entity_id="e", model_name="m",
                                                   inputs={"v.a": 2.0}, score=0.25, timestamp_ms=5), key="e")
    producer.send("p", to_batch(PredictionColumns("new", "m", "1", ("v.a",), np.ones((2, 1)), np.ones((2, 1)),
                                                  np.ones(2), np.ones(2))), key="e")
    producer.send("p", models_pb2.RetrainRequest(model_name="m"), key="e")
    producer.flush()
    old, new, other = bus.records("p")
    assert old.header(HEADER_MESSAGE_TYPE) == "mlops.v1.PredictionRecord"
    c = read_predictions(old)
    assert (c.request_ids(), c.entity_list(), c.x.tolist(), c.scores.tolist()) == (["old/1"], ["e"], [[2.0]], [0.25])
    assert read_predictions(new).request_ids() == ["new/0", "new/1"]
    with pytest.raises(ContractError, match=r"mlops.v1.RetrainRequest .*not a prediction"):
        read_predictions(other)


# --- the buffer policy ------------------------------------------------------------------------------------------


class _HeldProducer:
    """A MemoryBus producer whose sends wait for `release` (Kafka slow: the log's thread cannot hand records on)."""

    def __init__(self, bus: MemoryBus):
        self.inner, self.release = bus.producer(client_id="t"), threading.Event()

    def send(self, *args: object, **kwargs: object) -> None:
        self.release.wait(30)
        self.inner.send(*args, **kwargs)  # type: ignore[arg-type]

    def poll(self, timeout: float = 0.0) -> int:
        return self.inner.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        self.inner.flush(timeout)


@pytest.mark.parametrize("overflow", list(PredictionOverflow))
def test_a_full_buffer_drops_and_counts_by_its_policy(overflow: PredictionOverflow) -> None:
    bus = MemoryBus()
    producer = _HeldProducer(bus)
    plog = PredictionLog(producer, "p", buffer_rows=10, overflow=overflow)  # type: ignore[arg-type]
    before, delivered = dropped("buffer_full"), logged()
    assert plog.offer(served(4, "first"))
    wait_until(lambda: plog.pending_rows() == 0)  # the thread took it and waits in send
    accepted = [plog.offer(served(4, f"b{i}")) for i in range(4)]  # 16 rows for a 10-row buffer
    if overflow is PredictionOverflow.DROP_NEWEST:
        assert accepted == [True, True, False, False]
        kept = ["first", "b0", "b1"]
    else:
        assert accepted == [True] * 4
        kept = ["first", "b2", "b3"]
    assert dropped("buffer_full") - before == 8
    producer.release.set()
    plog.close()
    assert sorted(p.request_id for r in bus.records("p") for p in read_predictions(r).split()) == sorted(kept)
    assert logged() - delivered == 12


def test_a_batch_that_cannot_be_packed_is_dropped_and_counted_alone() -> None:
    bus = MemoryBus()
    plog = PredictionLog(bus.producer(client_id="t"), "p", 1_000, interval_s=0.3)  # both offers in one round
    before, delivered = dropped("failed"), logged()
    broken = served(2, "broken")
    broken.x = np.ones((2, 4), dtype=np.float32)  # a column more than its model's: cannot share a record
    assert plog.offer(served(3, "good")) and plog.offer(broken) and plog.offer(served(1, "good-too"))
    plog.close()
    assert sorted(c.request_id for r in bus.records("p") for c in read_predictions(r).split()) == ["good", "good-too"]
    assert dropped("failed") - before == 2 and logged() - delivered == 4


@pytest.mark.integration
def test_kafka_unreachable_drops_and_counts_what_was_not_acknowledged_in_time() -> None:
    settings = InferenceSettings(prediction_delivery_timeout_s=1.0, prediction_buffer_rows=100)
    bus = KafkaBus(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"))  # nothing listens there
    producer = bus.producer(client_id="t", extra={"message.timeout.ms": 1000, "socket.connection.setup.timeout.ms":
                                                  1000})
    plog = PredictionLog(producer, "predictions", settings.prediction_buffer_rows, partitions=3)
    before, full, delivered = dropped("delivery_failed"), dropped("buffer_full"), logged()
    started = time.monotonic()
    assert all(plog.offer(served(5, f"r{i}", [f"e{j}" for j in range(5)])) for i in range(10))
    # requests never wait on Kafka: had each offer waited for its delivery (1 s to fail), ten would take 10 s; the
    # bound leaves a loaded machine 5x that of ten calls into a buffer
    assert time.monotonic() - started < 5.0
    wait_until(lambda: dropped("delivery_failed") - before == 50, timeout=30)
    plog.close(timeout=2)
    assert logged() == delivered and dropped("buffer_full") == full


def test_while_the_partition_count_is_unknown_the_configured_default_is_assumed() -> None:
    bus = MemoryBus()

    def no_broker() -> int:
        raise OSError("no broker")

    plog = PredictionLog(bus.producer(client_id="t"), "p", 1_000, partitions=no_broker, fallback_partitions=3)
    entities = [f"e{i}" for i in range(20)]
    plog.offer(served(20, "r", entities))
    plog.close()
    records = bus.records("p")
    assert len(records) == 3 and sum(read_predictions(r).rows for r in records) == 20
    assert all(zlib.crc32(e.encode()) % 3 == r.partition for r in records for e in read_predictions(r).entity_list())
