"""`mlops apply FILE` and `mlops definitions list|show|diff|schema`: declared data and models, versioned.

`apply` validates a definitions file (or folder), prints what it changes against the revision in force, refuses
changes that would break data already flowing or a model already trained (naming the field), and publishes the
next revision on the `definitions` topic, which every service follows.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("apply", help="validate, diff and publish a definitions file (or folder)")
    a.add_argument("path", help="a definitions YAML file, or a folder of them")
    a.add_argument("--dry-run", action="store_true", help="print the diff, publish nothing")
    a.add_argument("--prune", action="store_true",
                   help="remove what the file does not declare (default: keep objects other files declared)")
    a.add_argument("--actor", help="who applies (recorded in the revision; default: the OS user)")
    a.set_defaults(func=_apply)
    d = sub.add_parser("definitions", help="the applied definitions: list, show, diff, schema")
    dsub = d.add_subparsers(dest="action", metavar="ACTION", required=True)
    dsub.add_parser("list", help="every applied revision, newest last").set_defaults(func=_list)
    s = dsub.add_parser("show", help="a revision's document (default: the one in force)")
    s.add_argument("--revision", type=int, help="revision number")
    s.add_argument("--format", choices=("yaml", "json"), default="yaml")
    s.set_defaults(func=_show)
    f = dsub.add_parser("diff", help="what applying a file would change (apply --dry-run)")
    f.add_argument("path")
    f.add_argument("--prune", action="store_true", help="as apply --prune")
    f.set_defaults(func=_diff)
    j = dsub.add_parser("schema", help="the JSON Schema of a definitions file, for editors")
    j.add_argument("--output", help="write it to this file instead of stdout")
    j.set_defaults(func=_schema)


def _bus():  # type: ignore[no-untyped-def]
    from mlops.bus import KafkaBus
    from mlops.settings import KafkaSettings

    return KafkaBus(KafkaSettings())


def _fail(command: str, exc: Exception | str) -> int:
    print(f"mlops {command}: {exc}", file=sys.stderr)
    return 2


def _plan(path: str, actor: str, prune: bool = False):  # type: ignore[no-untyped-def]
    from mlops import definitions as d
    from mlops.definitions.store import read_revisions
    from mlops.settings import KafkaSettings
    from mlops.topics import DEFINITIONS, ensure_topics

    new = d.load(path)
    ensure_topics(KafkaSettings(), (DEFINITIONS,))  # the first apply on a cluster creates it
    bus = _bus()
    current = d.latest(read_revisions(bus, client_id="mlops-cli-definitions"))
    return bus, d.plan(current, new, actor, prune=prune)


def _refused(exc: Exception, settings) -> str | None:  # type: ignore[no-untyped-def]
    """The message for a write the broker's ACLs refused (None for any other failure)."""
    if "TOPIC_AUTHORIZATION_FAILED" not in str(exc):
        return None
    from mlops.topics import DEFINITIONS, topic_name

    who = f"SASL user {settings.sasl_username!r}" if settings.sasl else "this client"
    return (f"the broker refused {who} permission to WRITE topic {topic_name(DEFINITIONS, settings)!r} "
            "(TOPIC_AUTHORIZATION_FAILED): its ACLs let only the admin user apply definitions; use the admin's "
            "credentials (local secure stack: eval \"$(mlops stack env --user admin)\")")


def _print_changes(changes) -> None:  # type: ignore[no-untyped-def]
    for change in changes:
        print(change)


def _apply(args: argparse.Namespace) -> int:
    from mlops.bus import BusError
    from mlops.definitions import DefinitionsError
    from mlops.definitions.store import declared_topics, publish
    from mlops.settings import KafkaSettings
    from mlops.topics import ensure_topics

    try:
        bus, result = _plan(args.path, args.actor or getpass.getuser(), args.prune)
    except (DefinitionsError, BusError) as exc:
        return _fail("apply", exc)
    if result.revision is None:
        print("no changes: the definitions in force are the same")
        return 0
    _print_changes(result.changes)
    if args.dry_run:
        print(f"(dry run: revision {result.revision.number} not published)")
        return 0
    created = ensure_topics(KafkaSettings(), declared_topics(result.revision.definitions))
    for topic in created:
        print(f"created topic {topic}")
    try:
        publish(bus, result.revision, client_id="mlops-cli-apply")
    except BusError as exc:
        return _fail("apply", _refused(exc, KafkaSettings()) or exc)
    versions = ", ".join(f"{k} v{v}" for k, v in sorted(result.revision.view_versions.items()))
    print(f"applied revision {result.revision.number} ({result.revision.sha256[:12]}); feature views: {versions}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from mlops.bus import BusError
    from mlops.definitions import DefinitionsError

    try:
        _, result = _plan(args.path, getpass.getuser(), args.prune)
    except (DefinitionsError, BusError) as exc:
        return _fail("definitions diff", exc)
    if result.revision is None:
        print("no changes")
    _print_changes(result.changes)
    return 0


def _revisions(command: str):  # type: ignore[no-untyped-def]
    """Every applied revision, or None after printing why they cannot be read."""
    from mlops.bus import BusError
    from mlops.definitions.store import read_revisions

    try:
        return read_revisions(_bus(), client_id="mlops-cli-definitions")
    except BusError as exc:
        _fail(f"definitions {command}", exc)
        print("(nothing applied yet on this cluster? mlops apply FILE creates the definitions topic)",
              file=sys.stderr)
        return None


def _list(args: argparse.Namespace) -> int:
    import time

    revisions = _revisions("list")
    if revisions is None:
        return 1
    if not revisions:
        print("no definitions applied yet: mlops apply FILE")
        return 0
    print(f"{'rev':>4}  {'applied at (UTC)':19}  {'by':12}  {'sha256':12}  changes")
    for r in revisions:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.applied_at_ms / 1000))
        summary = "; ".join(c.split(";")[0] for c in r.changes[:3]) + (" ..." if len(r.changes) > 3 else "")
        print(f"{r.number:>4}  {at:19}  {r.applied_by[:12]:12}  {r.sha256[:12]}  {summary}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import yaml

    revisions = _revisions("show")
    if revisions is None:
        return 1
    chosen = [r for r in revisions if args.revision in (None, r.number)]
    if not chosen:
        which = f"revision {args.revision}" if args.revision is not None else "any revision"
        print(f"mlops definitions show: {which} is not applied", file=sys.stderr)
        return 1
    document = chosen[-1].definitions.model_dump(mode="json", exclude_defaults=True)
    if args.format == "json":
        print(json.dumps(document, indent=2))
    else:
        print(yaml.safe_dump(document, sort_keys=False), end="")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from mlops.definitions import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        with open(args.output, "w") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0
