"""What tests share beyond fixtures: waiting on a condition, and the broker's own view of a group's progress.

Importable from any test module as `testkit` (pytest puts `tests/` on the path for the root conftest).

- `wait_until(predicate, timeout, interval)`: poll a condition with a generous deadline instead of sleeping for a
  fixed time and then asserting (on a 2-core machine shared with a broker, fixed sleeps are either too short or
  wasted). It returns True, or raises AssertionError naming what was awaited.
- `tool(name)`: a command-line tool the test drives (mlops_tools.testtools installs it on demand), or a skip that says
  how to install it — and under `CI=true` the root conftest turns that skip into a failure.
- `process_alive(pid)` / `stop_session(proc)`: whether a process runs, read from /proc on its own (not through the
  stack code under test; a zombie counts as gone), and SIGTERM then SIGKILL of a service started in a session of
  its own, so nothing it spawned outlives the test.
- `committed` / `end_offsets`: what the broker says a consumer group committed and where a topic ends, so a test can
  wait for "everything consumed and committed" instead of for a while.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import TopicPartition
from mlops.settings import KafkaSettings

__all__ = ["committed", "end_offsets", "process_alive", "read_topic", "stop_session", "tool", "wait_until"]


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 60.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> bool:
    """Poll `predicate` every `interval` s until it is truthy (returns True) or `timeout` s passed (AssertionError
    with `message`, or a callable giving it, and the predicate's name)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            name = getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"condition {name} not met within {timeout}s" + (f": {detail}" if detail else ""))
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """Running (a zombie left for a non-reaping parent or init to collect is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def stop_session(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGTERM a service started with `start_new_session=True`; after 30 s SIGKILL its whole process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _partitions(raw: RawConsumer, topic: str) -> list[int]:
    meta = raw.list_topics(topic, timeout=10).topics[topic]
    return sorted(meta.partitions)


def committed(kafka: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """partition → the offset `group` committed on `topic` (partitions with no commit are left out), from the
    broker."""
    raw = RawConsumer(kafka.client_config() | {"group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in _partitions(raw, topic)]
        return {tp.partition: tp.offset for tp in raw.committed(tps, timeout=10) if tp.offset >= 0}
    finally:
        raw.close()


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """partition → high watermark of every non-empty partition of `topic`, from the broker."""
    raw = RawConsumer(kafka.client_config() | {"group.id": f"testkit-{uuid.uuid4().hex[:6]}"})
    try:
        ends = {p: raw.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in _partitions(raw, topic)}
        return {p: end for p, end in ends.items() if end > 0}
    finally:
        raw.close()


def read_topic(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> list:
    """Every record of `topic` from its start to the end the broker reports now (no consumer group, so no waiting
    for a group to join): the deterministic way to say "there are exactly N records"."""
    from mlops.bus import Reader

    reader = Reader(kafka, [topic], client_id="testkit-read")
    try:
        return reader.read_to_end(timeout)
    finally:
        reader.close()


def tool(name: str) -> str:
    """The path of the command-line tool `name` (installed now if missing), or skip naming how to install it."""
    import pytest
    from mlops_tools.testtools import ToolUnavailable, ensure_tool

    try:
        return str(ensure_tool(name))
    except ToolUnavailable as exc:
        pytest.skip(str(exc))
