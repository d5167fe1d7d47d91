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


def _cmd_ui(args: argparse.Namespace) -> int:
    import os
    from urllib.parse import urlsplit

    from nightjar.dagster_home import prepare_dagster_home
    from nightjar.settings import REPO_ROOT, get_settings

    settings = get_settings()
    home = prepare_dagster_home(settings)
    # Absolute paths: `dagster dev` runs from the repository, dbt from dbt_project/. The
    # partition start stays derived (re-read on every code reload) unless the user set it.
    derived = {"NIGHTJAR_PARTITIONS_START"} - set(os.environ)
    env = {**os.environ, **{k: v for k, v in settings.env().items() if k not in derived}, "DAGSTER_HOME": str(home)}
    # Host and port from NIGHTJAR_UI_URL, the address notifications link to.
    url = urlsplit(settings.ui_url)
    host, port = args.host or url.hostname or "127.0.0.1", args.port or url.port or 3000
    cmd = [os.path.join(os.path.dirname(sys.executable), "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]
    print(f"Dagster UI on http://{host}:{port}  (instance: {home})", flush=True)
    os.chdir(REPO_ROOT)
    os.execve(cmd[0], cmd, env)


def _cmd_pii_key(args: argparse.Namespace) -> int:
    from nightjar.pii_key import ENV_VAR, ensure_key_file
    from nightjar.settings import get_settings

    # the path only: the key itself is never printed
    path = ensure_key_file(get_settings().pii_key_file)
    print(f"the PII key comes from {ENV_VAR}" if path is None else f"PII key file: {path}")
    return 0


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

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the instance `nightjar run` records to")
    ui.add_argument("--host", help="default: the host of NIGHTJAR_UI_URL (127.0.0.1)")
    ui.add_argument("--port", type=int, help="default: the port of NIGHTJAR_UI_URL (3000)")
    ui.set_defaults(func=_cmd_ui)

    pii = sub.add_parser("pii-key", help="create <data dir>/pii.key (a random PII HMAC key, mode 0600) unless it "
                         "exists or NIGHTJAR_PII_KEY is set; prints its path, never the key")
    pii.set_defaults(func=_cmd_pii_key)

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
