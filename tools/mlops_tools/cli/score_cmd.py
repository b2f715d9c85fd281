"""`mlops score --model NAME [--version V] --input rows.csv|rows.parquet --output FILE`: batch scoring.

The registry (gRPC, MLOPS_REGISTRY_ADDRESS or --registry) says which version to score with (the champion unless
--version) and where its artifact is; the scoring itself runs in a child process, `python -m services.inference
score`, which is the inference service's own code: the same online feature assembly and onnxruntime session code as
a request (the command line never imports a service). Rows carry the entity's id field (→ its online features) or
the model's features by their declared names (`view.column`); the output file holds the input columns plus the
model's output, score, predicted label and version. The progress bar comes from the child on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlops_tools.procs import run_json_child

__all__ = ["register", "resolve_version", "score_file"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="batch scoring of a CSV or Parquet file with a model's champion (or a version)")
    p.add_argument("--model", required=True, help="declared model name")
    p.add_argument("--version", default="", help="a registered version (default: the champion)")
    p.add_argument("--input", required=True, help="rows.csv or rows.parquet: the entity's id field, or the "
                                                  "model's features by their declared names")
    p.add_argument("--output", required=True, help="FILE.csv or FILE.parquet")
    p.add_argument("--registry", default=None, help="registry gRPC address (default $MLOPS_REGISTRY_ADDRESS or "
                                                    "127.0.0.1:8002)")
    p.add_argument("--chunk-rows", type=int, default=1024, help="rows per online read and onnxruntime call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_score)


def resolve_version(model: str, version: str = "", registry: str | None = None) -> tuple[str, str]:
    """(version, artifact sha256) of `model`'s champion, or of `version`; RegistryCallError or ValueError when
    there is none."""
    from mlops_tools.registry_client import RegistryClient

    with RegistryClient(registry) as client:
        found = client.get_model(model, version)
    wanted = version or found.champion_version
    if not wanted:
        raise ValueError(f"model {model!r} has no champion yet; name a --version")
    for v in found.versions:
        if v.version == wanted and v.artifact_sha256:
            return v.version, v.artifact_sha256
    raise ValueError(f"model {model!r} version {wanted!r} is not registered with an artifact")


def score_file(model: str, version: str, sha256: str, input_path: str, output_path: str, *,
               chunk_rows: int = 1024, quiet: bool = False) -> dict[str, Any]:
    """Score a file in a child process (`python -m services.inference score`); its one-line JSON result, which
    holds "error" when scoring failed."""
    argv = [sys.executable, "-m", "services.inference", "score", "--model", model, "--version", version,
            "--sha256", sha256, "--input", input_path, "--output", output_path, "--chunk-rows", str(chunk_rows)]
    argv += ["--quiet"] if quiet else []
    return run_json_child(argv, "scoring", {"model": model})


def _score(args: argparse.Namespace) -> int:
    from mlops_tools.registry_client import RegistryCallError

    try:
        version, sha256 = resolve_version(args.model, args.version, args.registry)
    except RegistryCallError as exc:
        print(f"mlops score: registry: {exc.code.name}: {exc.detail}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"mlops score: {exc}", file=sys.stderr)
        return 1
    result = score_file(args.model, version, sha256, args.input, args.output, chunk_rows=args.chunk_rows,
                        quiet=args.quiet)
    if "error" in result:
        print(f"mlops score: {result['error']}", file=sys.stderr)
        return 1
    print(f"scored {result['rows']} rows with {result['model']}:{result['version']} (by {result['by']}) → "
          f"{result['output']}")
    return 0
