"""Session fixtures: the real local stack (Kafka KRaft + Redis) started once, and per-test isolation by prefix.

Integration tests never mock Kafka or Redis. Each test gets its own topic prefix and Redis key prefix, so tests
(and a demo running beside them) never see each other's records. Every fresh prefix starts with
`examples/sea/definitions.yaml` applied as revision 1, as an operator's `mlops apply` would leave it; a test that
needs other definitions applies them itself (`mlops_tools.examples.apply_definitions`), and one that needs an
empty `definitions` topic asks for `kafka_settings_factory(definitions=None)` or carries `@pytest.mark.bare`.

Under `CI=true` a skipped test is a failed test (`pytest_runtest_makereport` below): the project installs what its
tests need (`mlops_tools.testtools`), so a skip in CI means something the suite claims was not checked.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from mlops import definitions as d
from mlops.bus import Bus, KafkaBus, MemoryBus
from mlops.definitions.store import declared_topics, publish
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import delete_topics, ensure_topics
from mlops_tools.examples import definitions_path
from mlops_tools.procs import free_port
from mlops_tools.stack import Stack, StackSettings

SEA_DEFINITIONS = definitions_path("sea")

# Every broker the suite starts, and every Kafka tool it runs, is a JVM on two cores shared with the rest of the run:
# without the C2 compiler (C1 only) one starts, and serves a test's light load, on about half the CPU — the brokers
# were a third of the run's CPU. No test measures a broker's speed (loadtests/ do, on the stack's default JVM).
os.environ.setdefault("MLOPS_STACK_KAFKA_JVM_OPTS", "-XX:TieredStopAtLevel=1")


@functools.cache
def _first_revision(path: Path) -> d.Revision:
    """Revision 1 of `path` on an empty topic: planned once per session, published on every fresh prefix."""
    revision = d.plan(None, d.load(path), "tests").revision
    assert revision is not None
    return revision


@pytest.fixture(scope="session")
def stack() -> Stack:
    """Kafka + Redis, started by the project's own code (idempotent; left running for the next session)."""
    s = Stack()
    s.up()
    return s


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A SASL_SSL broker started by `mlops stack up --secure`'s own code, in its own run dir on its own ports (the
    shared stack is not touched), for the modules that test the secure clients and the ACLs. One per session: a
    secure start took 25-50 s under the suite's load, so its users share one pytest-xdist worker (below)."""
    stack = Stack(StackSettings(run_dir=tmp_path_factory.mktemp("secure-run"), kafka_port=free_port(),
                                controller_port=free_port(), redis_port=free_port(), kafka_heap="384m"), secure=True)
    try:
        stack.start_kafka()  # ends with the users and the ACLs, once the broker answers
        yield stack
    finally:
        stack.down(wipe=True)


@pytest.fixture
def kafka_settings_factory(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Callable[..., KafkaSettings]]:
    """Kafka settings with a fresh topic prefix whose topics (all of the registry) already exist, and whose
    `definitions` topic holds `definitions` (default: the SEA example) as revision 1 — none under `@pytest.mark.bare`.

    The topics are deleted after the test: left behind, a few thousand partitions made the broker's restart take
    minutes and slowed every client's metadata refresh.
    """
    made: list[KafkaSettings] = []
    default = None if request.node.get_closest_marker("bare") else SEA_DEFINITIONS

    def make(partitions: int = 3, definitions: Path | str | None = default) -> KafkaSettings:
        base = stack.kafka_settings()
        settings = base.model_copy(
            update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}.", "default_partitions": partitions}
        )
        made.append(settings)
        ensure_topics(settings)
        if definitions is not None:
            revision = _first_revision(Path(definitions))
            # the topics it names beyond the registry's (a second example's raw and label topics)
            ensure_topics(settings, declared_topics(revision.definitions))
            publish(KafkaBus(settings), revision, client_id="tests-definitions")
        return settings

    yield make
    for settings in made:
        delete_topics(settings)


@pytest.fixture
def kafka_settings(kafka_settings_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    return kafka_settings_factory()


@pytest.fixture
def redis_settings(stack: Stack) -> RedisSettings:
    return stack.redis_settings().model_copy(update={"key_prefix": f"t{uuid.uuid4().hex[:10]}"})


# the broker variant is fetched by name at run time, so the integration mark is set here
@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def bus(request: pytest.FixtureRequest) -> Bus:
    """The same assertions once on MemoryBus and once on the real broker (a fresh topic prefix)."""
    if request.param == "memory":
        return MemoryBus()
    # bare like MemoryBus: no definitions revision, so the same assertions hold on both
    factory = request.getfixturevalue("kafka_settings_factory")
    return KafkaBus(factory(definitions=None))


# folders whose tests each run a whole platform (the six services as processes): under pytest-xdist they take turns
# on one worker, so two of them never share the two cores (tests/README.md, "Where the time goes")
PLATFORM_FOLDERS = ("tests/e2e/", "tests/chaos/")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = hasattr(config, "workerinput")  # a pytest-xdist worker, run with --dist loadgroup (./mlops test)
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        # tests that use the stack are integration tests, whatever their module says
        if "stack" in fixtures:
            item.add_marker(pytest.mark.integration)
        if workers:  # a module stays on one worker (its module fixtures start once); platforms share one, and so
            # do the users of the session's secure broker (a session fixture starts once per worker)
            path = item.nodeid.split("::")[0]
            group = ("secure-broker" if "secure_stack" in fixtures else
                     "platforms" if path.startswith(PLATFORM_FOLDERS) else path)
            item.add_marker(pytest.mark.xdist_group(group))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """In CI a skip is a failure, listed with the skip's reason (an expected failure, xfail, stays what it is)."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which fails the run (tests/README.md): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    """A whole module skipped at import (pytest.skip(allow_module_level=True), importorskip) fails in CI as well."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if in_ci() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI=true, which fails the run (tests/README.md): {reason}"
