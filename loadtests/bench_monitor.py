"""Drift-monitor core throughput: predictions/s per process through `DriftMonitor` (no Kafka), and what each
statistic costs.

    .venv/bin/python loadtests/bench_monitor.py [--predictions 100000] [--features 6] [--repeat 3] [--drain 200000]
    mlops bench monitor -- --predictions 200000

Part 1 times each statistic alone, per value (a river detector's update on one stream, the window statistics
PSI + KS amortized over their window, the label join). Part 2 runs the whole core on predictions with `--features`
inputs (the demo's feature set has 6) plus the score stream: 7 streams per prediction, with the defaults (join +
KS/PSI windows + the accuracy estimate) and each online data/score detector (reported only), and the same
predictions shared by the two example models (SEA's binary one and the delivery domain's regression one,
configured from their definitions).
The headline row is what the service does: logged batches of 64 rows through the core as columns
(`observe_block`); the same rows one by one (`observe_prediction`, the path before) are the row after it.
Part 3 is the label path (join + error stream), with labels after their predictions and all before them (shuffled).
Part 4 is the edge in front of the core: records of `predictions` (columnar PredictionBatches of 64 and 1 rows, and
the older per-row PredictionRecords) decoded, alone and with the core behind it, as the service does (a block per
record) and as the per-row path did (a Prediction per row). The best of `--repeat` runs is reported. Target:
>= 100k predictions/s per process with the defaults.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from mlops.bus import MemoryBus, Record
from mlops.contracts import models_pb2
from mlops.definitions import load, merge
from mlops.prediction_log import PredictionColumns, read_predictions, to_batch
from mlops_tools.datagen import StreamConfig, generate

from services.monitor import DriftMonitor, LabelEvent, MonitorConfig, MonitorSettings, Prediction, PredictionBlock
from services.monitor.convert import block_from_columns, predictions_from_columns
from services.monitor.core import LabelJoiner, StreamStats, make_detector

TARGET = 100_000


def _predictions(n: int, features: int) -> tuple[list[Prediction], list[LabelEvent]]:
    preds, labels = [], []
    for rec in generate(StreamConfig(count=n, drift_at=None, seed=1)):
        v = rec.values
        base = [v["x0"], v["x1"], v["x2"]]
        inputs = {f"f{i}": base[i % 3] * (1 + i // 3) for i in range(features)}
        score = 1.0 / (1.0 + math.exp(-(v["x0"] + v["x1"] - 7.0)))
        preds.append(Prediction(f"r{rec.index}", rec.entity_id, "sea", "1", inputs, score, float(score > 0.5),
                                rec.event_time_ms, rec.event_time_ms, f"{rec.index + 1:032x}", "1" * 16))
        labels.append(LabelEvent(rec.entity_id, rec.event_time_ms, float(rec.label), event_id=rec.event_id))
    return preds, labels


def _declared() -> MonitorConfig:
    """The monitor's configuration from the two example definitions (SEA's binary model, the delivery domain's
    regression), as the service builds it from the revision in force."""
    root = Path(__file__).resolve().parents[1] / "examples"
    sea, delivery = (load(root / name / "definitions.yaml") for name in ("sea", "delivery"))
    return MonitorConfig.of(merge(sea, delivery))


def _two_models(preds: list[Prediction]) -> list[Prediction]:
    """The same predictions alternating between the two declared models (the regression one scores a value)."""
    out = []
    for i, p in enumerate(preds):
        if i % 2:
            p = replace(p, model_name="delivery_time", score=30.0 * p.score, predicted_label=30.0 * p.score)
        out.append(p)
    return out


def _best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """(best seconds, items) over `repeat` runs."""
    best, items = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        items = fn()
        best = min(best, time.perf_counter() - t)
    return best, items


def _timed_labels(add_prediction: Callable[[Prediction], object], add_label: Callable[[LabelEvent], object],
                  preds: list[Prediction], labels: list[LabelEvent]) -> tuple[int, float]:
    """(labels, seconds) of feeding every label to `add_label` after every prediction to `add_prediction`: only
    the labels are timed (the predictions they join are the set-up)."""
    for p in preds:
        add_prediction(p)
    t = time.perf_counter()
    for lab in labels:
        add_label(lab)
    return len(labels), time.perf_counter() - t


def _best_section(run: Callable[[], tuple[int, float]], repeat: int) -> float:
    """The best seconds over `repeat` runs of `run`, which times its own measured section."""
    return min(run()[1] for _ in range(repeat))


def _component_rows(n: int, repeat: int) -> list[tuple[str, float, float]]:
    rng = random.Random(0)
    xs = [rng.gauss(0.0, 1.0) for _ in range(n)]
    rows = []
    for name, settings in (
        ("ADWIN step (Rust core)", MonitorSettings(data_detector="adwin")),
        ("PageHinkley step", MonitorSettings(data_detector="pagehinkley")),
        ("KSWIN step, stride 10 (amortized)", MonitorSettings(data_detector="kswin", kswin_stride=10)),
        ("KSWIN step, every value", MonitorSettings(data_detector="kswin", kswin_stride=1)),
    ):
        m = min(n, 2_000) if "every value" in name else n

        def run(settings: MonitorSettings = settings, m: int = m) -> int:
            step = make_detector(settings.data_detector, settings).step  # type: ignore[union-attr]
            for x in xs[:m]:
                step(x)
            return m

        secs, items = _best(run, repeat)
        rows.append((name, items / secs, secs / items * 1e6))

    settings = MonitorSettings(data_detector="none")

    def windows() -> int:
        st = StreamStats("f", "none", settings, lambda *_: None)
        for i, x in enumerate(xs):
            st.update(x, i)
        return n

    secs, items = _best(windows, repeat)
    rows.append(("window buffer + PSI + KS (amortized)", items / secs, secs / items * 1e6))

    preds, labels = _predictions(min(n, 100_000), 1)

    def join() -> int:
        j = LabelJoiner(600_000, 2_000, 200_000, 50_000)
        for p in preds:
            j.add_prediction(p)
        return len(preds)

    secs, items = _best(join, repeat)
    rows.append(("label join: add prediction", items / secs, secs / items * 1e6))

    def join_labels() -> tuple[int, float]:
        j = LabelJoiner(600_000, 2_000, 200_000, 50_000)
        return _timed_labels(j.add_prediction, j.add_label, preds, labels)

    best = _best_section(join_labels, repeat)
    rows.append(("label join: match label (entity, time)", len(labels) / best, best / len(labels) * 1e6))
    return rows


def _blocks(preds: list[Prediction], size: int) -> list[PredictionBlock]:
    """`preds` as logged batches of `size` rows (a batch's rows share its first row's serve time and trace)."""
    names = tuple(preds[0].inputs)
    out = []
    for i in range(0, len(preds), size):
        chunk = preds[i:i + size]
        p = chunk[0]
        out.append(PredictionBlock(
            p.model_name, p.model_version, p.timestamp_ms, names, np.array([list(q.inputs.values()) for q in chunk]),
            np.array([q.score for q in chunk]), np.array([q.predicted_label for q in chunk]),
            [q.request_id for q in chunk], [q.entity_id for q in chunk], [q.features_as_of_ms for q in chunk],
            p.trace_id, p.span_id))
    return out


def _batch_rows(preds: list[Prediction], repeat: int) -> list[tuple[str, float, float]]:
    """The defaults on logged batches of 64 rows: as columns (the service), and the same rows one by one."""
    blocks = _blocks(preds, 64)
    rows_of = [[b.row(i) for i in range(b.rows)] for b in blocks]

    def batched() -> int:
        m = DriftMonitor(MonitorSettings())
        for b in blocks:
            m.observe_block(b)
        return m.predictions

    def one_by_one() -> int:
        m = DriftMonitor(MonitorSettings())
        for rows in rows_of:
            m.observe_predictions(rows)
        return m.predictions

    out = []
    for name, fn in (("defaults, batches of 64 as columns (observe_block: the service)", batched),
                     ("defaults, the same rows one by one (observe_prediction)", one_by_one)):
        secs, items = _best(fn, repeat)
        out.append((f"predictions, {name}", items / secs, secs / items * 1e6))
    return out


def _core_rows(preds: list[Prediction], labels: list[LabelEvent], repeat: int) -> list[tuple[str, float, float]]:
    rows = _batch_rows(preds, repeat)
    configs = (
        ("defaults: join + KS/PSI windows + accuracy estimate", MonitorSettings()),
        ("ADWIN data + score (reported only)", MonitorSettings(data_detector="adwin", score_detector="adwin")),
        ("PageHinkley data + score", MonitorSettings(data_detector="pagehinkley", score_detector="pagehinkley")),
        ("KSWIN data + score, stride 10", MonitorSettings(data_detector="kswin", score_detector="kswin")),
    )
    for name, settings in configs:
        batch = preds if "KSWIN" not in name else preds[: min(len(preds), 5_000)]  # KSWIN is slow

        def run(settings: MonitorSettings = settings, batch: list[Prediction] = batch) -> int:
            m = DriftMonitor(settings)
            observe = m.observe_prediction
            for p in batch:
                observe(p)
            return len(batch)

        secs, items = _best(run, repeat)
        rows.append((f"predictions, {name}", items / secs, secs / items * 1e6))

    two = _two_models(preds)

    def two_models() -> int:
        m = DriftMonitor(MonitorSettings(), config=_declared())
        observe = m.observe_prediction
        for p in two:
            observe(p)
        assert len(m.models) == 2
        return len(two)

    secs, items = _best(two_models, repeat)
    rows.append(("predictions, two declared models (binary + regression)", items / secs, secs / items * 1e6))

    def with_labels() -> tuple[int, float]:
        m = DriftMonitor(MonitorSettings())
        return _timed_labels(m.observe_prediction, lambda lab: m.observe_label("sea", lab), preds, labels)

    best = _best_section(with_labels, repeat)
    rows.append(("labels: join + error stream (window tests)", len(labels) / best, best / len(labels) * 1e6))
    shuffled = [labels[i] for i in np.random.default_rng(0).permutation(len(labels))]

    def labels_first() -> tuple[int, float]:
        m = DriftMonitor(MonitorSettings())
        t = time.perf_counter()
        for lab in shuffled:
            m.observe_label("sea", lab)
        for p in preds:
            m.observe_prediction(p)
        return len(preds), time.perf_counter() - t

    best = _best_section(labels_first, repeat)
    rows.append(("labels first (shuffled), then predictions: rows", len(preds) / best, best / len(preds) * 1e6))
    return rows


def _log_records(preds: list[Prediction], rows_per_record: int) -> list[Record]:
    """`preds` as the prediction log holds them: PredictionBatch records of `rows_per_record` rows (0: per-row
    PredictionRecords, the contract before the batch), as records read from a bus."""
    bus = MemoryBus(partitions=1)
    producer = bus.producer(client_id="bench")
    names = tuple(preds[0].inputs)
    step = rows_per_record or 1
    for i in range(0, len(preds), step):
        chunk = preds[i:i + step]
        p = chunk[0]
        if not rows_per_record:
            producer.send("p", models_pb2.PredictionRecord(
                request_id=p.request_id, entity_id=p.entity_id, model_name=p.model_name,
                model_version=p.model_version, inputs=p.inputs, score=p.score, predicted_label=p.predicted_label,
                timestamp_ms=p.timestamp_ms, features_as_of_ms=p.features_as_of_ms, trace_id=p.trace_id,
                span_id=p.span_id), key=p.entity_id)
            continue
        scores = np.array([q.score for q in chunk])
        producer.send("p", to_batch(PredictionColumns(
            request_id=p.request_id, model_name=p.model_name, model_version=p.model_version, feature_names=names,
            x=np.array([list(q.inputs.values()) for q in chunk]), outputs=np.stack([1 - scores, scores], axis=1),
            scores=scores, predicted_labels=np.array([q.predicted_label for q in chunk]),
            entity_ids=[q.entity_id for q in chunk], as_of_ms=np.array([q.features_as_of_ms for q in chunk]),
            trace_id=p.trace_id, span_id=p.span_id, timestamp_ms=p.timestamp_ms)), key=p.entity_id)
    producer.flush()
    return bus.records("p")


def _edge_rows(preds: list[Prediction], repeat: int) -> list[tuple[str, float, float]]:
    """What the monitor's edge does per record of `predictions` before the core: decode (either contract) and turn
    the rows into the core's Predictions; then the same with the core (default settings) behind it."""
    rows = []
    for what, per_record in (("PredictionBatch of 64 rows", 64), ("PredictionBatch of 1 row", 1),
                             ("PredictionRecord per row (older contract)", 0)):
        records = _log_records(preds, per_record)

        def decode(records: list[Record] = records) -> int:
            return sum(block_from_columns(read_predictions(r)).rows for r in records)

        secs, items = _best(decode, repeat)
        rows.append((f"decode, {what}", items / secs, secs / items * 1e6))

        def decode_and_core(records: list[Record] = records) -> int:
            m = DriftMonitor(MonitorSettings())
            for r in records:
                m.observe_block(block_from_columns(read_predictions(r)))
            return m.predictions

        def decode_and_rows(records: list[Record] = records) -> int:
            m = DriftMonitor(MonitorSettings())
            for r in records:
                m.observe_predictions(predictions_from_columns(read_predictions(r)))
            return m.predictions

        for how, fn in (("as columns", decode_and_core), ("row by row", decode_and_rows)):
            secs, items = _best(fn, repeat)
            rows.append((f"decode + core {how}, {what}", items / secs, secs / items * 1e6))
    return rows


def _drain_rows(rows: int) -> list[tuple[str, float, float]]:
    """The whole service (Kafka edge + core, `inference_load.phases.monitor_drain`, as bench_inference measures it)
    reading `rows` logged rows (PredictionBatches of 64 rows of the SEA model) from the local broker: as columns
    (the service), then row by row (the path before: a Prediction per row), same records, fresh consumer groups."""
    from inference_load.phases import kafka_for_run, monitor_drain
    from mlops.bus import KafkaBus
    from mlops.topics import PREDICTIONS

    kafka = kafka_for_run()
    preds, _ = _predictions(rows, 3)
    preds = [replace(p, inputs=dict(zip(("x0", "x1", "x2"), p.inputs.values(), strict=True))) for p in preds]
    bus = KafkaBus(kafka)
    producer = bus.producer(client_id="bench-log")
    topic = bus.topic(PREDICTIONS)
    for record in _log_records(preds, 64):
        producer.send(topic, record.value, key=record.key)
    producer.flush()
    out = []
    columns = DriftMonitor.observe_block
    try:
        for how in ("as columns (the service)", "row by row (the path before)"):
            if how.startswith("row"):
                DriftMonitor.observe_block = lambda m, b: m.observe_predictions(  # type: ignore[method-assign]
                    [b.row(i) for i in range(b.rows)])
            drained = monitor_drain(kafka, rows)
            assert drained["rows"] == rows, drained
            out.append((f"Kafka drain, {how}", drained["rows_per_s"], 1e6 / drained["rows_per_s"]))
    finally:
        DriftMonitor.observe_block = columns  # type: ignore[method-assign]
    return out


def _table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"{'what':58} {'per second':>14} {'µs each':>9}")
    print("-" * 83)
    for name, rate, us in rows:
        print(f"{name:58} {rate:14,.0f} {us:9.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictions", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=6, help="inputs per prediction (the demo's feature set: 6)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--drain", type=int, default=0, metavar="ROWS",
                    help="also the whole service draining ROWS logged rows from the local broker (starts the stack)")
    args = ap.parse_args(argv)
    np.random.seed(0)
    print(f"drift monitor core, one process: {args.predictions:,} predictions × {args.features} features + score")
    _table("statistics alone (one stream, per value)", _component_rows(args.predictions, args.repeat))
    preds, labels = _predictions(args.predictions, args.features)
    rows = _core_rows(preds, labels, args.repeat)
    _table(f"whole core ({args.features} feature streams + score stream per prediction)", rows)
    _table("the edge: records of `predictions` decoded into the core's predictions (rows)", _edge_rows(
        preds, args.repeat))
    if args.drain:
        _table(f"the service on Kafka: {args.drain:,} logged rows drained (rows)", _drain_rows(args.drain))
    default, per_row = rows[0][1], rows[1][1]
    verdict = "meets" if default >= TARGET else "MISSES"
    print(f"\ndefault config, batches as columns: {default:,.0f} predictions/s per process ({default / per_row:.1f}x "
          f"the same rows one by one) — {verdict} the {TARGET:,}/s target")
    return 0 if default >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
