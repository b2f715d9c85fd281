"""A commit the group refuses because this member was dropped from it (after one broker of three died, the
coordinator expired the member: seen as ingest dying in `mlops chaos --brokers 3`) is skipped, not raised: the
partitions' next owner re-reads from the last committed offset, so nothing is lost. A fail-over's transient error
(a new coordinator loading the group's offsets) is retried for `commit_retry_s`, longer than a session timeout (one
session timeout was not enough in a CI run of the 3-node test). Other commit errors still raise."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError, KafkaException
from mlops.bus import Consumer, Record
from mlops.settings import KafkaSettings


@dataclass
class _Msg:
    _offset: int

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class _Refusing:
    """Refuses the first `times` commits with `code`, then takes them."""

    def __init__(self, code: int, times: int = 10**9):
        self.code, self.times, self.calls = code, times, 0

    def commit(self, offsets: object, asynchronous: bool) -> None:
        self.calls += 1
        if self.calls <= self.times:
            raise KafkaException(KafkaError(self.code, "Commit failed"))


def _consumer(code: int, times: int = 10**9, **settings: float) -> tuple[Consumer, _Refusing]:
    consumer = Consumer.__new__(Consumer)  # no broker: only commit() is exercised
    raw = _Refusing(code, times)
    consumer._consumer = raw  # type: ignore[attr-defined]
    consumer._settings = KafkaSettings(session_timeout_ms=1000, **settings)  # type: ignore[attr-defined]
    return consumer, raw


@pytest.mark.parametrize("code", [KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION,
                                  KafkaError.REBALANCE_IN_PROGRESS])
def test_a_commit_refused_for_lost_membership_is_skipped(code: int, caplog: pytest.LogCaptureFixture) -> None:
    consumer, raw = _consumer(code)
    consumer.commit([Record(_Msg(4)), Record(_Msg(7))])  # type: ignore[arg-type]
    assert raw.calls == 1
    assert "commit skipped" in caplog.text


def test_any_other_commit_error_still_raises() -> None:
    consumer, raw = _consumer(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        consumer.commit([Record(_Msg(1))])  # type: ignore[arg-type]
    assert raw.calls == 1


def test_a_coordinator_loading_longer_than_a_session_timeout_is_waited_out(caplog: pytest.LogCaptureFixture) -> None:
    consumer, raw = _consumer(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, times=8)  # 8 retries, 0.2 s apart: > 1 s
    consumer.commit([Record(_Msg(3))])  # type: ignore[arg-type]
    assert raw.calls == 9
    assert caplog.text.count("commit waits for the group coordinator") == 1


def test_a_fail_over_longer_than_commit_retry_s_raises() -> None:
    consumer, raw = _consumer(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, commit_retry_s=0.5)
    with pytest.raises(KafkaException):
        consumer.commit([Record(_Msg(3))])  # type: ignore[arg-type]
    assert 2 <= raw.calls <= 5
