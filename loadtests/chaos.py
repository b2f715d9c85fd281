"""The chaos suite, full size: named faults injected into the running platform, one table of figures.

    mlops chaos                         # every scenario, default size
    mlops chaos --scale 0.2 --only kill-features redis-lost poison-record

It starts its own Kafka + Redis (the project's stack code, in a temporary run folder, on free ports — it kills the
broker and Redis, so it never uses a stack anyone else does) and the six services as processes, bootstraps model v1,
then runs each scenario on its own entities while predictions flow: kill -9 of each service mid-stream, the broker
killed and restarted, Redis killed and restarted (with its files, and without: rebuilt from features.log), a second
consumer joining (rebalance), slow Redis (latency through a TCP proxy), a near-limit poison record, bad labels, and
one of three brokers lost (`--brokers 3`, when the stack offers it). Figures per row: records in, out, lost,
dead-lettered, duplicates (events, features.log vectors, online views ≠ the reference fold of the de-duplicated
stream), seconds until processing resumed after the restart, prediction requests failed (by status code).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_kit.faults import SCENARIOS  # noqa: E402
from chaos_kit.platform import Platform  # noqa: E402
from chaos_kit.scenarios import Row, Suite, table  # noqa: E402

__all__ = ["main", "run"]

RECORDS, RATE = 1_000, 100.0


def run(names: list[str], records: int, rate: float, work_dir: Path, brokers: int = 1,
        redis_latency_ms: float = 250.0, say=print, secure: bool = False) -> list[Row]:  # type: ignore[no-untyped-def]
    """Start an isolated platform in `work_dir`, run the scenarios `names` in order, stop everything; the rows."""
    platform = Platform(work_dir, say=say, brokers=brokers, secure=secure)
    suite = Suite(platform, records, rate, say=say, redis_latency_s=redis_latency_ms / 1000)
    rows: list[Row] = []
    try:
        platform.up()
        suite.start()
        for name in names:
            t0 = time.monotonic()
            row = suite.run(name)
            rows.append(row)
            say(f"chaos: {name} done in {time.monotonic() - t0:.0f}s: lost {row.lost}, views≠ref {row.state_diff}, "
                f"resumed {row.resumed_s if row.resumed_s is None else round(row.resumed_s, 1)} s"
                + (f" — ERROR {row.error}" if row.error else ""))
    finally:
        suite.close()
        platform.close()
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(prog="mlops chaos", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS), metavar="SCENARIO",
                    help=f"scenarios to run, in order (default: all: {', '.join(SCENARIOS)})")
    ap.add_argument("--scale", type=float, default=1.0, help=f"records per scenario × this ({RECORDS:,} at 1)")
    ap.add_argument("--rate", type=float, default=RATE, help="records per second into raw.events")
    ap.add_argument("--brokers", type=int, default=1, help="brokers of the stack (3: the broker-1-of-3 scenario)")
    ap.add_argument("--secure", action="store_true",
                    help="the stack's SASL_SSL listener, each service as its own Kafka user under the broker's ACLs")
    ap.add_argument("--redis-latency-ms", type=float, default=250.0, help="slow-redis: latency added each way")
    ap.add_argument("--work-dir", type=Path, default=None, help="run folder (default: a temporary one)")
    args = ap.parse_args(argv)
    records = max(30, int(RECORDS * args.scale))
    started = time.monotonic()
    if args.work_dir is not None:
        rows = run(args.only, records, args.rate, args.work_dir, args.brokers, args.redis_latency_ms,
                   secure=args.secure)
    else:
        with tempfile.TemporaryDirectory(prefix="mlops-chaos-") as tmp:
            rows = run(args.only, records, args.rate, Path(tmp), args.brokers, args.redis_latency_ms,
                       secure=args.secure)
    print(f"\nchaos: {records:,} records per scenario at {args.rate:g}/s, {len(rows)} scenarios, "
          f"{time.monotonic() - started:.0f}s in all\n")
    print(table(rows))
    for row in rows:
        for diff in row.diffs[:3]:
            print(f"  {row.scenario}: {diff}")
        for key in ("missing_from_features_log", "never_on_events", "killed_ms", "restarted_ms", "died"):
            if row.facts.get(key) and (key.endswith("_ms") is False or row.facts.get("missing_from_features_log")):
                print(f"  {row.scenario}: {key}: {row.facts[key]}")
    return rows


if __name__ == "__main__":
    rows = main()
    sys.exit(1 if any(r.error or r.lost or r.state_diff for r in rows) else 0)
