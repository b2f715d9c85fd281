"""The examples under `examples/<name>/`: where their definitions are, and applying them to a topic prefix.

`apply_definitions` is what `mlops apply` does, without the printing: merge a document into the revision in force,
create the topics it names, publish the next revision. The demo and the test fixtures use it, so a test prefix or
a demo run starts with its example's definitions in force exactly as an operator's `mlops apply` would leave it.
"""

from __future__ import annotations

from pathlib import Path

from mlops.settings import KafkaSettings

__all__ = ["EXAMPLES", "EXAMPLES_DIR", "apply_definitions", "definitions_path"]

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES: tuple[str, ...] = ("sea", "delivery")  # what `--example` accepts; `all` means every one of them


def definitions_path(example: str) -> Path:
    """`examples/<example>/definitions.yaml`; ValueError naming the known examples for any other name."""
    if example not in EXAMPLES:
        raise ValueError(f"unknown example {example!r}; one of {', '.join(EXAMPLES)}")
    return EXAMPLES_DIR / example / "definitions.yaml"


def apply_definitions(settings: KafkaSettings, path: str | Path, *, applied_by: str = "mlops-tools",
                      timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Apply the definitions at `path` on `settings`' prefix; returns the published Revision, or None when the
    revision in force already says the same. Raises DefinitionsError for an invalid or incompatible document."""
    from mlops import definitions as d
    from mlops.bus import KafkaBus
    from mlops.definitions.store import declared_topics, publish, read_revisions
    from mlops.topics import DEFINITIONS, ensure_topics

    document = d.load(path)
    ensure_topics(settings, (DEFINITIONS,), timeout=timeout)
    bus = KafkaBus(settings)
    current = d.latest(read_revisions(bus, client_id="mlops-tools-apply", timeout=timeout))
    revision = d.plan(current, document, applied_by).revision
    if revision is None:
        return None
    ensure_topics(settings, declared_topics(revision.definitions), timeout=timeout)
    publish(bus, revision, client_id="mlops-tools-apply")
    return revision
