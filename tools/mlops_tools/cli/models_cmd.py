"""`mlops models list|show|promote|rollback|diff|card`: the registry's gRPC API (MLOPS_REGISTRY_ADDRESS or
--registry, default 127.0.0.1:8002)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the model registry: list, show, promote, rollback, diff, card")
    m.add_argument("--registry", default=None, help="registry gRPC address (default $MLOPS_REGISTRY_ADDRESS "
                                                    "or 127.0.0.1:8002)")
    msub = m.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="every model with its champion").set_defaults(func=_list)
    p = msub.add_parser("show", help="versions, gate decisions and audit trail of a model")
    p.add_argument("name")
    p.add_argument("--version", default="", help="only this version")
    p.set_defaults(func=_show)
    p = msub.add_parser("promote", help="make a version the champion")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--reason", default="manual promotion")
    p.add_argument("--actor", default=None, help="who (default: your user name)")
    p.add_argument("--override-gate", action="store_true",
                   help="promote a version the gate rejected (refused without this; audited as an override)")
    p.add_argument("--command-id", default=None, help="id of this command: repeating it applies it once "
                                                      "(default: a new one)")
    p.set_defaults(func=_promote)
    p = msub.add_parser("rollback", help="go back to the previous champion")
    p.add_argument("name")
    p.add_argument("--reason", default="manual rollback")
    p.add_argument("--actor", default=None, help="who (default: your user name)")
    p.add_argument("--command-id", default=None, help="id of this command: repeating it applies it once "
                                                      "(default: a new one)")
    p.set_defaults(func=_rollback)
    p = msub.add_parser("diff", help="what differs between two versions")
    p.add_argument("name")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(func=_diff)
    p = msub.add_parser("card", help="the model card of a version (default: the champion): Markdown, or HTML")
    p.add_argument("name")
    p.add_argument("--version", default="")
    p.add_argument("--html", action="store_true", help="one self-contained HTML page, figures inlined (base64)")
    p.add_argument("--figures", default=None, metavar="DIR",
                   help="write card.md and the PNG figures it references into DIR")
    p.add_argument("--output", "-o", default=None, help="write the card to this file instead of stdout")
    p.set_defaults(func=_card)


# --- mlops models ... -------------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from mlops_tools.registry_client import RegistryClient

    return RegistryClient(args.registry)


def _run(args: argparse.Namespace, fn: Any) -> int:
    from mlops_tools.registry_client import RegistryCallError

    try:
        with _client(args) as client:
            fn(client)
        return 0
    except RegistryCallError as exc:
        print(f"mlops models {args.action}: {exc.code.name}: {exc.detail}", file=sys.stderr)
        return 1


def _metrics(m: Any) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in sorted(m.items()) if k in ("auc", "accuracy", "logloss"))


def _list(args: argparse.Namespace) -> int:
    def show(client: Any) -> None:
        models = client.list_models().models
        if not models:
            print("no models registered")
        print(f"{'MODEL':<20} {'CHAMPION':>8} {'LATEST':>6} {'VERSIONS':>8}  {'SHA256':<16}  LIVE CHALLENGER")
        for m in models:
            print(f"{m.name:<20} {m.champion_version or '-':>8} {m.latest_version:>6} {m.version_count:>8}  "
                  f"{m.champion_sha256[:16] or '-':<16}  {_challenger(m)}")

    return _run(args, show)


def _challenger(m: Any) -> str:
    """The second version on live traffic: `v2 shadow 100%`, `v3 canary 10%`, `v1 guard 100%`, or `-`."""
    if not m.challenger_version:
        return "-"
    return f"v{m.challenger_version} {m.challenger_role} {m.challenger_fraction:.0%}"


def _evidence(e: Any) -> str:
    """A live verdict's figures on one line."""
    return (f"{e.phase} verdict {e.verdict}: {e.metric} v{e.challenger_version} {e.challenger_metric:.4f} vs "
            f"v{e.champion_version} {e.champion_metric:.4f}, difference {e.difference:+.4f} "
            f"[{e.ci_low:+.4f}, {e.ci_high:+.4f}] on {e.labelled_rows} labelled rows ({e.test}, "
            f"confidence {e.confidence:g})")


def _show(args: argparse.Namespace) -> int:
    def show(client: Any) -> None:
        r = client.get_model(args.name, args.version)
        print(f"model {r.name}: champion v{r.champion_version or '-'}")
        print(f"{'VER':>4} {'STATUS':<12} {'DECISION':<9} {'ROWS':>7}  {'SHA256':<16}  GATE METRICS / REASON")
        for v in r.versions:
            live = f" [live {v.role} {v.traffic_fraction:.0%}]" if v.role else ""
            print(f"{v.version:>4} {v.status:<12} {v.gate_decision:<9} {v.lineage.row_count:>7}  "
                  f"{v.artifact_sha256[:16]}  {_metrics(v.gate_metrics)}{live}\n{'':>54}{v.gate_reason}")
        print("audit:")
        for a in r.audit:
            if not args.version or a.version == args.version:
                ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.at_ms / 1000))
                print(f"  #{a.sequence:<4} {ts}Z v{a.version:<4} {a.action:<10} by {a.actor}: {a.why}")
                if a.HasField("evidence"):
                    print(f"{'':>8}evidence: {_evidence(a.evidence)}")

    return _run(args, show)


def _promote(args: argparse.Namespace) -> int:
    def do(client: Any) -> None:
        r = client.promote(args.name, args.version, args.actor or getpass.getuser(), args.reason,
                           override_gate=args.override_gate, command_id=args.command_id)
        print(f"promoted {r.promoted.model_name} v{r.promoted.version} "
              f"(previous v{r.promoted.previous_version or '-'}), audit #{r.sequence}{_pending(r)}")

    return _run(args, do)


def _rollback(args: argparse.Namespace) -> int:
    def do(client: Any) -> None:
        r = client.rollback(args.name, args.actor or getpass.getuser(), args.reason, command_id=args.command_id)
        print(f"rolled back {r.promoted.model_name} to v{r.promoted.version} "
              f"(from v{r.promoted.previous_version}), audit #{r.sequence}{_pending(r)}")

    return _run(args, do)


def _pending(r: Any) -> str:
    return "" if r.announced else "; not yet announced on model.promoted (the registry re-sends it)"



def _diff(args: argparse.Namespace) -> int:
    return _run(args, lambda client: print(client.diff(args.name, args.a, args.b).text))


def _card(args: argparse.Namespace) -> int:
    from pathlib import Path

    def show(client: Any) -> None:
        card = client.model_card(args.name, args.version, figures=bool(args.html or args.figures))
        figures = {f.name: f.png for f in card.figures}
        if args.figures:
            folder = Path(args.figures)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "card.md").write_text(card.markdown)
            for name, png in figures.items():
                (folder / name).write_bytes(png)
            print(f"wrote {folder / 'card.md'} and {len(figures)} figure(s)", file=sys.stderr)
        if args.html:
            from mlops_tools.card_html import card_html

            text = card_html(card.markdown, figures, f"{card.name} v{card.version}")
        elif args.figures:
            return
        else:
            text = card.markdown
        if args.output:
            Path(args.output).write_text(text)
        else:
            print(text, end="")

    return _run(args, show)
