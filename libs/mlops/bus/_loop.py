"""The consume → handle → flush → commit loop, its named failure policy and the stop flag that ends it."""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from collections.abc import Callable

from mlops.bus._kafka import Consumer, Producer
from mlops.bus._lag import LagSeries
from mlops.bus._record import BusError, Record

__all__ = ["FailurePolicy", "StopFlag", "run_loop"]

log = logging.getLogger("mlops.bus")
# how often a busy loop refreshes the lag gauge (an idle one refreshes at every empty poll): reading positions and
# watermarks took milliseconds per partition under load, as much as handling a batch of a thousand records
LAG_REFRESH_S = 1.0


class FailurePolicy(enum.Enum):
    """What the loop does when a handler raises for a record: an explicit choice per consumer, never an accident."""

    STOP = "stop"  # re-raise: the offset is not committed, the record is read again after a restart
    SKIP_AND_LOG = "skip"  # log loudly and commit past it (only for records whose loss is acceptable)
    DEAD_LETTER = "dead_letter"  # hand it to `dead_letter(record, exc)`, then commit past it


class StopFlag:
    """Set by SIGTERM/SIGINT (when installed from the main thread) or by `set()`."""

    def __init__(self, install_signals: bool = True):
        self._event = threading.Event()
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._event.set())

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def _refresh_lag(consumer: Consumer, series: LagSeries) -> None:
    try:
        series.update(consumer.lag())
    except Exception as exc:  # lag is telemetry: it never stops the loop
        log.debug("lag unavailable", extra={"fields": {"error": str(exc)}})


def run_loop(
    consumer: Consumer,
    handle: Callable[[Record], None] | None = None,
    *,
    handle_batch: Callable[[list[Record]], None] | None = None,
    stop: StopFlag,
    policy: FailurePolicy = FailurePolicy.STOP,
    dead_letter: Callable[[Record, Exception], None] | None = None,
    producer: Producer | None = None,
    batch_size: int = 500,
    poll_timeout: float = 0.5,
    on_idle: Callable[[], None] | None = None,
) -> int:
    """Consume until `stop` is set; returns the records handled. Each batch goes to `handle` record by record, or
    to `handle_batch` whole (a failure then applies the policy to every record of the batch); the producer (if
    any) is flushed so every output is acknowledged, and only then are the batch's offsets committed and the lag
    gauge (`mlops_consumer_lag_records`) updated (at most every LAG_REFRESH_S while busy, at every empty poll).
    On exit the producer is flushed, the consumer's lag series are removed and the consumer is closed."""
    if (handle is None) == (handle_batch is None):
        raise ValueError("run_loop needs exactly one of handle or handle_batch")
    if policy is FailurePolicy.DEAD_LETTER and dead_letter is None:
        raise ValueError("FailurePolicy.DEAD_LETTER needs a dead_letter callback")

    def failed(record: Record, exc: Exception) -> None:
        if policy is FailurePolicy.STOP:
            raise exc
        if dead_letter is not None and policy is FailurePolicy.DEAD_LETTER:
            dead_letter(record, exc)
        else:
            log.error("skipping record", extra={"fields": {"where": record.where, "error": str(exc)}})

    lag = LagSeries(consumer.group_id)
    lag_refreshed = 0.0
    handled = 0
    try:
        while not stop.is_set():
            records = consumer.consume(batch_size, poll_timeout)
            if not records:
                _refresh_lag(consumer, lag)
                lag_refreshed = time.monotonic()
                if on_idle is not None:
                    on_idle()
                continue
            if handle_batch is not None:
                try:
                    handle_batch(records)
                except Exception as exc:
                    for record in records:
                        failed(record, exc)
            else:
                assert handle is not None
                for record in records:
                    try:
                        handle(record)
                    except Exception as exc:
                        failed(record, exc)
            handled += len(records)
            if producer is not None:
                producer.flush()
            consumer.commit(records)
            if time.monotonic() - lag_refreshed >= LAG_REFRESH_S:
                _refresh_lag(consumer, lag)
                lag_refreshed = time.monotonic()
    finally:
        if producer is not None:
            try:
                producer.flush(10)
            except BusError as exc:
                log.error("flush on shutdown failed", extra={"fields": {"error": str(exc)}})
        lag.clear()
        consumer.close()
    return handled
