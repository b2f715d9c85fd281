"""`python -m services.inference score`: batch scoring of a file of rows with one model version — what
`mlops score` runs in a child process (the command line never imports a service).

The definitions come from the `definitions` topic (every revision: older view versions are fallbacks, as online),
the artifact from `model.artifacts` by its sha256 (the CLI asks the registry which one), the online features from
Redis when the rows name entities. Rows are read, scored (`core.scoring`, the serving code) and written in chunks:
CSV with the standard library, Parquet with pyarrow, chosen by file suffix; progress goes to stderr (tqdm) and one
JSON line with the result (or `error`) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError

from services.inference.core import (
    LayoutHistory,
    ModelSpec,
    ModelVersion,
    SessionOptions,
    build_catalog,
)
from services.inference.core.scoring import BY_ENTITY, Scored, input_mode, output_columns, parse_features, score
from services.inference.errors import InvalidInput, NoDefinitions

Chunk = dict[str, list[Any]]


def _parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


class Rows:
    """An input file read in chunks of columns: its header, its row count (for the progress bar) and the chunks."""

    def __init__(self, path: Path, chunk_rows: int):
        self.path, self.chunk_rows = path, chunk_rows
        if _parquet(path):
            import pyarrow.parquet as pq

            self._pq = pq.ParquetFile(path)
            self.columns = list(self._pq.schema_arrow.names)
            self.total: int | None = self._pq.metadata.num_rows
        else:
            with path.open(newline="") as f:
                self.columns = list(next(csv.reader(f), []))
                self.total = sum(1 for _ in f)
        if not self.columns:
            raise InvalidInput(f"{path}: no header row")

    def chunks(self) -> Iterator[Chunk]:
        if _parquet(self.path):
            for batch in self._pq.iter_batches(batch_size=self.chunk_rows):
                yield batch.to_pydict()
            return
        with self.path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader)
            chunk: list[list[str]] = []
            for row in reader:
                chunk.append(row)
                if len(chunk) == self.chunk_rows:
                    yield self._columns(chunk)
                    chunk = []
            if chunk:
                yield self._columns(chunk)

    def _columns(self, rows: list[list[str]]) -> Chunk:
        width = len(self.columns)
        for row in rows:
            row.extend([""] * (width - len(row)))  # short rows: empty cells
        return {name: [row[j] for row in rows] for j, name in enumerate(self.columns)}


class Output:
    """The scored rows: the input columns as read, then the model's output columns and its version."""

    def __init__(self, path: Path, columns: list[str], spec: ModelSpec, version: str):
        self.path, self.version = path, version
        self.added = output_columns(spec)
        self.header = columns + [c for c in [*self.added, "model_version"] if c not in columns]
        self._writer: Any = None
        if _parquet(path):
            self._file = None
        else:
            self._file = path.open("w", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(self.header)

    def write(self, chunk: Chunk, scored: Scored) -> None:
        n = len(scored.scores)
        values = scored.output.astype("float64").tolist()
        added: Chunk = {name: [row[j] for row in values] for j, name in enumerate(self.added[:-2])}
        added |= {"score": scored.scores, "predicted_label": scored.labels, "model_version": [self.version] * n}
        columns = chunk | added
        if self._file is not None:
            self._csv.writerows(zip(*(columns[c] for c in self.header), strict=True))
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: columns[c] for c in self.header})
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self._writer is not None:
            self._writer.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from mlops.artifacts import ArtifactReader
    from mlops.bus import KafkaBus
    from mlops.definitions.store import read_revisions
    from mlops.online_store import RedisOnlineStore
    from mlops.settings import KafkaSettings, RedisSettings
    from tqdm import tqdm

    from services.inference.settings import InferenceSettings

    settings = InferenceSettings()
    bus = KafkaBus(KafkaSettings())
    revisions = read_revisions(bus, client_id="inference-score")
    if not revisions:
        raise NoDefinitions()
    history = LayoutHistory()
    for revision in revisions:
        history.add(revision)
    spec = build_catalog(revisions[-1], history).get(args.model)
    data = ArtifactReader(bus).get(args.sha256, timeout=settings.artifact_timeout_s)
    model = ModelVersion.load(spec.name, args.version, data, spec.feature_names, sha256=args.sha256,
                              options=SessionOptions(0, settings.use_cuda))  # 0: onnxruntime's own thread count
    model.bound(spec)
    rows = Rows(Path(args.input), args.chunk_rows)
    mode = input_mode(spec, rows.columns)
    store = RedisOnlineStore(RedisSettings()) if mode == BY_ENTITY else None
    out = Output(Path(args.output), rows.columns, spec, args.version)
    done = 0
    try:
        with tqdm(total=rows.total, unit="rows", desc=f"{spec.name}:{args.version}", file=sys.stderr,
                  disable=args.quiet) as progress:
            for chunk in rows.chunks():
                if mode == BY_ENTITY:
                    scored = await score(spec, model, entity_ids=[str(e) for e in chunk[spec.id_field]], store=store)
                else:
                    scored = await score(spec, model, x=parse_features(spec, chunk, first_row=done + 1))
                out.write(chunk, scored)
                done += len(scored.scores)
                progress.update(len(scored.scores))
    finally:
        out.close()
        if store is not None:
            await store.close()
    return {"model": spec.name, "version": args.version, "rows": done, "by": mode, "output": str(args.output),
            "definitions_revision": revisions[-1].number}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.inference score", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True, help="the version's label (recorded in every output row)")
    parser.add_argument("--sha256", required=True, help="the version's artifact on model.artifacts")
    parser.add_argument("--input", required=True, help="rows.csv or rows.parquet")
    parser.add_argument("--output", required=True, help="FILE.csv or FILE.parquet")
    parser.add_argument("--chunk-rows", type=int, default=1024, help="rows per online read and onnxruntime call")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except (MlopsError, OSError, KeyError) as exc:  # KeyError: a column the header named but a chunk lacks
        print(json.dumps({"model": args.model, "error": str(exc)}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0
