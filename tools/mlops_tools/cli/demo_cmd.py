"""`mlops demo`: the closed loop live — stream with a known drift point → detection → retrain → gate → shadow →
live verdict → promotion (or, `--worse-challenger`, retirement) — with a timeline and a closing summary
(mlops_tools.demo does the work; this module only parses and prints)."""

from __future__ import annotations

import argparse
import signal
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the closed-loop drift → retrain → shadow → live verdict → promote demo "
                                    "on the local stack")
    p.add_argument("--example", choices=("sea", "delivery", "all"), default="sea",
                   help="which example (examples/NAME) to declare, stream and loop; all: every one at once, "
                        "served by one inference server (default sea)")
    p.add_argument("--records", type=int, default=12_000, help="records to stream (default 12000)")
    p.add_argument("--rate", type=float, default=100.0, help="records per second (default 100)")
    p.add_argument("--drift-at", type=int, default=None,
                   help="index of the first drifted record (default: half of --records; later if the monitor is "
                        "not armed by then, at most halfway to the end; -1: no drift)")
    p.add_argument("--seed", type=int, default=42, help="data seed (same seed, same records)")
    p.add_argument("--predict-rate", type=float, default=50.0, help="gRPC requests per second (default 50)")
    p.add_argument("--worse-challenger", action="store_true",
                   help="the second scenario: the drift is a transient episode, so the retrain it causes is a "
                        "candidate that passes the offline gate on an unrepresentative holdout (the episode) and "
                        "is retired on live traffic, never promoted")
    p.add_argument("--offline-gate", action="store_true",
                   help="declare no rollout (examples/sea/definitions.yaml as is): a candidate that passes the "
                        "offline gate takes all traffic at once, without the shadow phase and live verdict")
    p.add_argument("--no-ops", action="store_true",
                   help="start no Prometheus and no Jaeger (spans go to the run's OTLP/JSON file)")
    p.add_argument("--keep-running", action="store_true",
                   help="leave the services running after the summary (stop them with `mlops down`)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from mlops_tools.cli import acl_refusal
    from mlops_tools.demo import Demo, DemoConfig

    drift_at = args.records // 2 if args.drift_at is None else (None if args.drift_at < 0 else args.drift_at)
    try:
        cfg = DemoConfig(example=args.example, records=args.records, rate=args.rate, drift_at=drift_at, seed=args.seed,
                         predict_rate=args.predict_rate, ops=not args.no_ops, shadow=not args.offline_gate,
                         worse_challenger=args.worse_challenger, wait_for_monitor=True,
                         bootstrap_rows=min(600, max(300, (drift_at or args.records) // 4)))
    except ValueError as exc:
        print(f"mlops demo: {exc}", file=sys.stderr)
        return 2
    demo = Demo(cfg)
    result = demo.result
    try:
        result = demo.run()  # Ctrl-C inside ends the run with a partial result
        print(result.table(), flush=True)
    finally:
        if args.keep_running and not result.interrupted and not result.error:
            print("\nservices left running (--keep-running): stop them with `mlops down`")
        else:
            print("\nstopping what the demo started...", flush=True)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave services behind
            demo.close()
    if result.error and (refused := acl_refusal(result.error)) is not None:
        print(f"mlops demo: {refused}", file=sys.stderr)  # e.g. the definitions, on a secure stack as `mlops`
        return 2
    ok = not result.error and not result.interrupted and result.failed_requests == 0
    return 0 if ok else 1
