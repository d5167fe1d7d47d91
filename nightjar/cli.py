"""`nightjar` console script: simulate a shop, run the pipeline, and domain subcommands."""
from __future__ import annotations

import argparse
import importlib
import sys
from datetime import date
from pathlib import Path

# Domain packages that add their own subcommands via `register(subparsers)`; imported
# lazily so `nightjar simulate` does not pay for Dagster's import time.
_DOMAIN_COMMANDS = {"alerts": "nightjar.alerts.cli", "bench": "nightjar.bench.cli"}


def _cmd_simulate(args: argparse.Namespace) -> int:
    from nightjar.simulator import append_days, simulate

    out = Path(args.out)
    if args.append_days:
        summary = append_days(out, args.append_days)
    else:
        start = date.fromisoformat(args.start) if args.start else None
        summary = simulate(out, start=start, days=args.days, customers=args.customers, seed=args.seed)
    for key, value in summary.items():
        print(f"{key:>16}: {value}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from nightjar.runner import run_pipeline

    result = run_pipeline(selection=args.select)
    return 0 if result.success else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nightjar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a synthetic shop (landing files, shop database, ground truth)")
    sim.add_argument("--out", required=True, help="directory to write (usually the data dir)")
    sim.add_argument("--start", help="first day YYYY-MM-DD (default: the shop ends yesterday)")
    sim.add_argument("--days", type=int, default=730)
    sim.add_argument("--customers", type=int, default=5000)
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--append-days", type=int, default=0, help="continue an existing shop by N days")
    sim.set_defaults(func=_cmd_simulate)

    run = sub.add_parser("run", help="materialise the asset graph in process and print a summary")
    run.add_argument("--select", default="*", help="Dagster asset selection (default: everything)")
    run.set_defaults(func=_cmd_run)

    for module_name in _DOMAIN_COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that domain is not installed in this checkout
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
