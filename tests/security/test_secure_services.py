"""Integration: the six services as real processes over SASL_SSL (SCRAM-SHA-512 + mutual TLS) against
`mlops stack up --secure`'s broker — its own run dir and ports (the chaos kit's isolated platform; the shared stack is
never touched) — each service as its own Kafka user under the broker's ACLs (mlops_tools/stack/acls.py), the
definitions applied as the admin.

One real unit of work each: ingest validates raw records onto `events`, features folds them onto features.log and
Redis, the trainer trains model v1 from them (its bytes on model.artifacts: only the trainer may write there), the
registry registers and promotes it (model.promoted: only the registry), inference loads it and serves requests by
entity id, and the monitor consumes the predictions they logged (its committed offsets move). No password appears
in any service's log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlops_tools.stack.secure import CLIENT_USERS
from testkit import wait_until

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.insert(0, str(LOADTESTS))

from chaos_kit.platform import Platform  # noqa: E402
from chaos_kit.scenarios import Suite, _committed  # noqa: E402
from chaos_kit.traffic import entity_ids  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    platform = Platform(tmp_path_factory.mktemp("secure-platform"), secure=True)
    suite = Suite(platform, records=100, rate=50.0)
    try:
        platform.up()  # every service ready: connected over SASL_SSL as its own user
        suite.start(warm_records=300)  # model v1 trained, registered, promoted and served
        yield suite
    finally:
        suite.close()
        platform.close()


def test_the_platform_runs_over_sasl_ssl_with_a_kafka_user_per_service(suite: Suite) -> None:
    p = suite.p
    assert p.kafka.security_protocol == "SASL_SSL" and p.stack.layout.secure
    for service in ("ingest", "features", "trainer", "registry", "inference", "monitor"):
        env = p.env(service)
        assert env["MLOPS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["MLOPS_KAFKA_SASL_USERNAME"] == service
        assert env["MLOPS_KAFKA_SSL_CERT_FILE"] and "MLOPS_KAFKA_SASL_PASSWORD" not in env


def test_each_service_did_its_unit_of_work_over_sasl_ssl(suite: Suite) -> None:
    from mlops.topics import PREDICTIONS, topic_name

    p, tailer = suite.p, suite.tailer
    events, vectors, dead = tailer.snapshot("warm")
    assert len({o.event_id for o in events}) == 300, "ingest: raw.events → events"
    assert {v.event_id.split("/", 1)[1] for v in vectors} >= {o.event_id for o in events}, "features → features.log"
    assert not dead
    views = suite.reference.store.read_many(next(iter(suite.reference.layouts.values())), entity_ids("warm", 50))
    assert all(v is not None for v in views), "features → the online views in Redis"
    assert tailer.candidates, "trainer: a candidate (its ONNX bytes on model.artifacts, the trainer's user)"
    assert any(e.record_kind == "state" for _, e in tailer.registry), "registry: a registered version"
    assert suite.requests is not None
    # inference served v1 (read from model.promoted, written by the registry's user) by entity id
    wait_until(lambda: suite.requests.first_ok_after(0) is not None, timeout=60)
    served = [code for _, code in suite.requests.between(0, time.time())]
    assert served.count("OK") > 0, served[-20:]
    # the monitor consumed the predictions inference logged, and committed
    topic = topic_name(PREDICTIONS, p.kafka)
    wait_until(lambda: _committed(p, "chaos-monitor", topic) > 0, timeout=120,
               message=lambda: p.log_tail("monitor"))
    for service in ("ingest", "features", "trainer", "registry", "inference", "monitor"):
        assert p.alive(service), p.log_tail(service)


def test_no_password_in_any_service_log(suite: Suite) -> None:
    secure = suite.p.stack.secure_material
    assert secure is not None
    secrets = [secure.password(user) for user in CLIENT_USERS]
    logs = sorted((suite.p.work_dir / "services" / "logs").glob("*.log"))
    assert len(logs) >= 6
    leaked = [path.name for path in logs if any(s in path.read_text(errors="replace") for s in secrets)]
    assert not leaked, f"a password appears in {leaked}"
