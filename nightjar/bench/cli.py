"""`nightjar bench`: scale benchmarks against the raw-DuckDB limit (see harness.py)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nightjar.bench.scales import SCALES
from nightjar.settings import REPO_ROOT

DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results.json"


def _cmd_bench(args: argparse.Namespace) -> int:
    from nightjar.bench.harness import run_bench, run_pipeline_only

    if args.pipeline_only:
        result = run_pipeline_only(
            scale_name=args.scale,
            work=Path(args.work_dir) if args.work_dir else None,
            memory_limit=args.memory_limit or None,
            threads=args.threads,
            night=args.night,
        )
        _save(result, Path(args.out), args.replace)
        print(json.dumps({k: result.get(k) for k in ("scale", "total", "peak_rss_mb", "warehouse_mb_after_dbt",
                                                     "night", "night_ratio_wall", "night_ratio_cpu")}))
        return 0
    result = run_bench(
        scale_name=args.scale,
        reps=args.reps,
        work=Path(args.work_dir) if args.work_dir else None,
        memory_limit=args.memory_limit or None,
        threads=args.threads,
        skip=set(args.skip or []),
    )
    _save(result, Path(args.out), args.replace)
    print(format_table(result))
    print(f"\nresults: {args.out}")
    return 0 if result["dbt_vs_handwritten"]["comparison"]["equal"] else 2


def _save(result: dict, out: Path, replace: bool) -> None:
    """results.json keeps one entry per scale (the latest run of each)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    existing: dict = {}
    if out.exists() and not replace:
        try:
            existing = json.loads(out.read_text())
        except json.JSONDecodeError:
            existing = {}
    runs = existing.get("runs", {}) if isinstance(existing, dict) else {}
    runs[result["scale"]] = result
    out.write_text(json.dumps({"runs": runs}, indent=1, default=str) + "\n")


def _fmt(x) -> str:
    return "-" if x is None else (f"{x:,.2f}" if isinstance(x, float) else str(x))


def format_table(r: dict) -> str:
    lines = [f"scale {r['scale']}  reps {r['reps']}  load avg at start {r['load_avg_start']}",
             "| comparison | nightjar (median wall s) | baseline (median wall s) | ratio | target |",
             "|---|---|---|---|---|"]
    ev = r["events_ingest"]
    lines.append(f"| events ingest (dlt vs read_json) | {ev['dlt']['op_wall_s']['median']} | "
                 f"{ev['duckdb_read_json']['op_wall_s']['median']} | {_fmt(ev['speed_ratio_wall'])} of DuckDB speed | >= 0.5 |")
    sh = r["orders_ingest"]
    lines.append(f"| orders ingest (dlt vs sqlite3->Arrow->DuckDB) | {sh['dlt']['op_wall_s']['median']} | "
                 f"{sh['direct_sqlite3_arrow']['op_wall_s']['median']} | {_fmt(sh['speed_ratio_wall'])} of direct speed | >= 0.3 |")
    db = r["dbt_vs_handwritten"]
    lines.append(f"| dbt build vs hand-written SQL | {db['dbt_build']['wall_s']['median']} | "
                 f"{db['handwritten']['wall_s']['median']} | {_fmt(db['slowdown_wall'])}x | <= 1.5x |")
    if "nightly_incremental" in r:
        ni = r["nightly_incremental"]
        lines.append(f"| nightly incremental vs full refresh | {ni['incremental']['wall_s']['median']} | "
                     f"{ni['full_refresh']['wall_s']['median']} | {_fmt(ni['ratio_wall'])} | <= 0.10 |")
    if "orchestration" in r:
        o = r["orchestration"]
        lines.append(f"| nightjar run (Dagster) vs direct steps | {o['nightjar_run']['wall_s']['median']} | "
                     f"{o['direct_sum']['wall_s']['median']} | +{_fmt(o['overhead_wall_s'])} s | << 60 s |")
    lines.append(f"peak RSS (MB): {r['peak_rss_mb']}")
    lines.append(f"marts equal (dbt vs hand-written): {db['comparison']['equal']}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="scale benchmarks: ingest, dbt, incremental, orchestration, memory")
    p.add_argument("--scale", choices=list(SCALES), default="S",
                   help="XS ~2*10^4, S ~10^6, M ~10^7, L ~10^8 events (one year of history; XS 60 days)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", default=str(DEFAULT_RESULTS), help="results JSON (one entry per scale)")
    p.add_argument("--replace", action="store_true", help="overwrite --out instead of merging by scale")
    p.add_argument("--work-dir", help="where shops and warehouses go (default benchmarks/out, git-ignored)")
    p.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit for every step ('' = DuckDB default)")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    p.add_argument("--pipeline-only", action="store_true",
                   help="run the pipeline once (ingest + dbt build) without baselines or warehouse copies "
                        "(for L, whose copies do not fit on disk); saved as '<scale>-pipeline'")
    p.add_argument("--night", action="store_true",
                   help="with --pipeline-only: then append one day in place and run the nightly "
                        "ingest + dbt on the same warehouse (the night vs the full refresh)")
    p.add_argument("--skip", nargs="*", choices=["incremental", "dagster", "dbt-run-only"], help="sections to skip")
    p.set_defaults(func=_cmd_bench)
