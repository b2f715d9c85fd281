"""`mlops produce`: stream an example's synthetic data (mlops_tools.generators: SEA by default, or `--example
delivery`) into its declared source topic, and its labels into the model's label topic after a delay — the way an
external producer and a delayed ground-truth source would."""

from __future__ import annotations

import argparse
import heapq
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from mlops.bus import Bus
    from mlops.settings import KafkaSettings

    from mlops_tools.generators import GeneratedRecord

__all__ = ["ProduceOptions", "produce", "register"]

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="stream an example's events (known drift point) to its topic, labels later")
    p.add_argument("--example", choices=("sea", "delivery"), default="sea",
                   help="which example's data (declare it first: mlops apply examples/NAME/definitions.yaml)")
    p.add_argument("--count", type=int, default=10_000, help="records to produce")
    p.add_argument("--rate", type=float, default=1000.0, help="records per second (0: as fast as possible)")
    p.add_argument("--drift-at", type=int, default=None, help="index of the first drifted record (default: none)")
    p.add_argument("--entities", type=int, default=100, help="size of the entity id pool")
    p.add_argument("--label-delay-ms", type=int, default=2000, help="label delay after its event")
    p.add_argument("--no-labels", action="store_true", help="do not produce labels")
    p.add_argument("--format", choices=("json", "protobuf"), default="json", help="raw event encoding")
    p.add_argument("--seed", type=int, default=42, help="generator seed (same seed, same records)")
    p.add_argument("--noise", type=float, default=None,
                   help="sea: probability of a flipped label (default 0); delivery: σ of the minutes (default 3)")
    p.add_argument("--variant-before", type=int, default=None, help="sea: SEA variant before the drift (0..3; 2)")
    p.add_argument("--variant-after", type=int, default=None, help="sea: SEA variant from the drift on (0..3; 3)")
    p.add_argument("--no-covariate-shift", action="store_true",
                   help="concept drift only (sea: x2 is not shifted; delivery: baskets are not scaled)")
    p.add_argument("--label-format", choices=("json", "protobuf"), default=None,
                   help="label encoding (default: sea protobuf Label, delivery JSON)")
    p.add_argument("--start-ms", type=int, default=None, help="event time of record 0 (default: now)")
    p.set_defaults(func=_produce)


@dataclass(frozen=True)
class ProduceOptions:
    """Everything `produce` needs besides the stream config (so the demo can call `produce` directly)."""

    rate: float = 1000.0
    label_delay_ms: int = 2000
    labels: bool = True
    fmt: str = "json"
    label_fmt: str | None = None  # None: the example's default (Example.label_format)


def produce(
    stream_config: Any,
    kafka_settings: KafkaSettings | None = None,
    options: ProduceOptions | None = None,
    out: TextIO | None = None,
    *,
    bus: Bus | None = None,
    on_record: Callable[[GeneratedRecord], None] | None = None,
    counts: dict[str, int] | None = None,
    stop: threading.Event | None = None,
    example: str = "sea",
    records: Iterable[GeneratedRecord] | None = None,
) -> dict[str, int]:
    """Produce `example`'s stream described by `stream_config` (its generator's config) to the declared source
    topic (one producer span per event, so each record carries `traceparent`) and its labels to the model's label
    topic `label_delay_ms` later (wall clock), paced at `rate`/s. Returns {"events": n, "labels": m}. This is what
    `mlops produce` and the demo call.

    `bus`, when given, is used instead of `kafka_settings` (the demo's, or an in-process one); `on_record(record)`
    runs after each event is sent; `counts` (a dict the caller may read meanwhile) is counted into as records go
    out; `stop`, once set, ends the stream at once (without waiting for pending labels); `records`, when given, are
    sent instead of the generator's (the demo's stream with a transient episode), indexed from 0 like them."""
    from mlops.bus import KafkaBus
    from mlops.settings import KafkaSettings
    from mlops.telemetry import messaging_attributes, setup_tracing, tracer
    from opentelemetry.trace import SpanKind

    from mlops_tools.generators import example as get_example

    ex = get_example(example)
    opts = options or ProduceOptions()
    label_fmt = opts.label_fmt or ex.label_format
    bus = bus or KafkaBus(kafka_settings or KafkaSettings())
    setup_tracing("mlops-produce")  # an SDK provider, so the producer span has ids to put in traceparent
    tr = tracer("mlops.produce")
    raw_topic, label_topic = bus.topic(ex.raw_topic), bus.topic(ex.label_topic)
    producer = bus.producer(client_id=f"mlops-produce-{example}")
    pending: list[tuple[float, int, object, str]] = []  # (due monotonic time, index, label, key)
    counts = {"events": 0, "labels": 0} if counts is None else counts
    counts.update(events=0, labels=0)
    started = time.monotonic()

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def send_due_labels(now: float) -> None:
        while pending and pending[0][0] <= now:
            _, _, payload, key = heapq.heappop(pending)
            producer.send(label_topic, payload, key=key,  # type: ignore[arg-type]
                          headers={"content-type": "application/json"} if label_fmt == "json" else None)
            counts["labels"] += 1

    for rec in ex.generate(stream_config) if records is None else records:
        if stopped():
            return counts
        if opts.rate > 0:
            wait = started + rec.index / opts.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        value = ex.raw_protobuf(rec) if opts.fmt == "protobuf" else ex.raw_json(rec)
        with tr.start_as_current_span(
            f"send {raw_topic}", kind=SpanKind.PRODUCER,
            attributes=messaging_attributes("send", raw_topic, key=rec.entity_id),
        ):
            producer.send(raw_topic, value, key=rec.entity_id,  # type: ignore[arg-type]
                          headers=None if opts.fmt == "protobuf" else {"content-type": "application/json"})
        counts["events"] += 1
        if on_record is not None:
            on_record(rec)
        if opts.labels:
            label = ex.label_json(rec) if label_fmt == "json" else ex.label_protobuf(rec)
            due = time.monotonic() + opts.label_delay_ms / 1000.0
            heapq.heappush(pending, (due, rec.index, label, rec.entity_id))
        send_due_labels(time.monotonic())
        if out is not None and rec.index and rec.index % 10_000 == 0:
            print(f"produced {rec.index} events, {counts['labels']} labels", file=out)
    while pending:  # the last labels come after their delay, as they would
        if stopped():
            return counts
        time.sleep(max(0.0, min(0.2, pending[0][0] - time.monotonic())))
        send_due_labels(time.monotonic())
    producer.flush()
    return counts


def _stream_config(args: argparse.Namespace) -> Any:
    """The chosen example's generator config from the command line (ValueError for options it does not take)."""
    from mlops_tools.generators import example

    rate = args.rate
    common: dict[str, Any] = dict(
        count=args.count, drift_at=args.drift_at, entities=args.entities, seed=args.seed,
        covariate_shift=not args.no_covariate_shift,
        start_ms=args.start_ms if args.start_ms is not None else int(time.time() * 1000),
        interval_ms=1000.0 / rate if rate > 0 else 1.0)
    if args.example == "sea":
        return example("sea").config(
            **common, noise=args.noise or 0.0,
            variant_before=2 if args.variant_before is None else args.variant_before,
            variant_after=3 if args.variant_after is None else args.variant_after)
    if args.variant_before is not None or args.variant_after is not None:
        raise ValueError("--variant-before/--variant-after apply to --example sea only")
    return example(args.example).config(**common, **({} if args.noise is None else {"noise_sd": args.noise}))


def _produce(args: argparse.Namespace) -> int:
    try:
        cfg = _stream_config(args)
    except ValueError as exc:
        print(f"mlops produce: {exc}", file=sys.stderr)
        return 2
    opts = ProduceOptions(rate=args.rate, label_delay_ms=args.label_delay_ms, labels=not args.no_labels,
                          fmt=args.format, label_fmt=args.label_format)
    t0 = time.monotonic()
    counts = produce(cfg, options=opts, out=sys.stderr, example=args.example)
    took = time.monotonic() - t0
    print(f"produced {counts['events']} {args.example} events and {counts['labels']} labels in {took:.1f}s"
          f" (drift at {cfg.drift_at if cfg.drift_at is not None else 'none'}, seed {cfg.seed})")
    return 0
