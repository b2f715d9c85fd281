"""`mlops features rebuild`: the online store rebuilt from features.log (the offline store), e.g. after Redis lost
its data. The features service does the same by itself when it finds the store's marker gone; this command is for
an operator who wants it now, from a bound, or over views already there (--overwrite)."""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="operate the feature stores (rebuild the online store from features.log)")
    cmds = p.add_subparsers(dest="features_command", metavar="COMMAND")
    r = cmds.add_parser("rebuild", help="write the newest view of every entity in features.log to Redis")
    r.add_argument("--since-hours", type=float, default=None,
                   help="only records produced in the last H hours (default: the whole log; views past their "
                        "TTL are skipped either way)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace views present in Redis too (default: keep them; the running service wrote them)")
    r.add_argument("--batch", type=int, default=2000, help="views per pipelined round trip")
    r.set_defaults(func=_rebuild)
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])


def _rebuild(args: argparse.Namespace) -> int:
    from mlops.bus import BusError, KafkaBus
    from mlops.definitions.store import read_revisions
    from mlops.online_rebuild import marker_key, rebuild_online_store, rebuild_store
    from mlops.online_store import OnlineStoreUnavailable
    from mlops.settings import KafkaSettings, RedisSettings

    if args.batch < 1:
        print("mlops features rebuild: --batch must be at least 1", file=sys.stderr)
        return 2
    kafka, redis_settings = KafkaSettings(), RedisSettings()
    bus = KafkaBus(kafka)
    since_ms = 0 if args.since_hours is None else int((time.time() - args.since_hours * 3600) * 1000)
    store = rebuild_store(redis_settings)
    try:
        revisions = read_revisions(bus, client_id="mlops-features-rebuild")
        if not revisions:
            print("mlops features rebuild: no definitions revision on the definitions topic (mlops apply)",
                  file=sys.stderr)
            return 1
        report = rebuild_online_store(bus, store, revisions, since_ms=since_ms, overwrite=args.overwrite,
                                      batch=args.batch)
        store.client.set(marker_key(redis_settings.key_prefix), json.dumps(
            {"by": "mlops features rebuild", "at_ms": int(time.time() * 1000)} | report.as_dict()))
    except (BusError, OnlineStoreUnavailable) as exc:
        print(f"mlops features rebuild: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(report.as_dict()))
    return 0
