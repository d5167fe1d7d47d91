"""Benchmark of the ML layer: churn training + scoring and all forecast series.

Builds a synthetic warehouse (tests/ml_synthetic.py: staging/mart schemas of
ARCHITECTURE.md) with N customers, then times each step exactly as the Dagster assets run
it (same functions).

    .venv/bin/python benchmarks/bench_ml.py --customers 100000 --days 730
    .venv/bin/python benchmarks/bench_ml.py --customers 100000 --threads 2   # HGB on 2 OpenMP threads

Prints one JSON object (and writes it to benchmarks/out/bench_ml.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.churn.config import ChurnConfig  # noqa: E402
from ml.churn.pipeline import gate_and_promote, score_with_promoted, train_and_register  # noqa: E402
from ml.forecast.pipeline import evaluate_and_select, publish_forecast, update_accuracy  # noqa: E402
from ml.registry import ModelRegistry  # noqa: E402
from tests.ml_synthetic import build_synthetic_warehouse  # noqa: E402

timings: dict[str, float] = {}


@contextmanager
def timed(name: str):
    t = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t, 2)
    print(f"{name}: {timings[name]} s", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads for HistGradientBoosting (0 = all)")
    ap.add_argument("--max-folds", type=int, default=8)
    ap.add_argument("--skip-forecast", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_ml_"))
    db = work / "warehouse.duckdb"
    registry = ModelRegistry(work / "artifacts" / "models")
    cfg = ChurnConfig(n_threads=args.threads or None)
    with timed("build_synthetic_warehouse"):
        con = duckdb.connect(str(db))
        shop = build_synthetic_warehouse(con, customers=args.customers, days=args.days, seed=args.seed)
        con.close()
    result: dict = {
        "customers": args.customers, "days": args.days, "orders": shop.orders, "sessions": shop.sessions,
        "hgb_threads": args.threads or os.cpu_count(),
    }

    con = duckdb.connect(str(db))
    with timed("churn_train_evaluate_register"):
        out = train_and_register(con, registry, cfg)
    with timed("churn_gate"):
        decision = gate_and_promote(registry, out.version.version)
    with timed("churn_score_and_write"):
        scores, _ = score_with_promoted(con, registry)
    r = out.result
    result["churn"] = {
        "rows": r.rows,
        "gate": decision["passed"],
        "champion": decision.get("champion"),
        "gate_reasons": decision["reasons"],
        "test": {k: {m: round(v, 4) for m, v in r.metrics[k].items() if m in ("roc_auc", "pr_auc", "brier", "top_decile_lift", "base_rate")}
                 for k in ["candidate", *r.baselines]},
        "inter_purchase_gaps": r.gaps,
        "scored_customers": len(scores),
    }
    if not args.skip_forecast:
        with timed("forecast_backtest_select"):
            sel = evaluate_and_select(con, registry, max_folds=args.max_folds)
        with timed("forecast_publish"):
            pub = publish_forecast(con, registry, refresh=False)
        with timed("forecast_accuracy"):
            update_accuracy(con)
        result["forecast"] = {
            "series": len(sel.record),
            "champions": {k: v["champion"] for k, v in sel.record.items()},
            "mase": {k: {m: round(x["mase"], 3) for m, x in v["metrics"].items()} for k, v in sel.record.items()},
            "coverage": {k: {m: round(x["coverage"], 3) for m, x in v["metrics"].items()} for k, v in sel.record.items()},
            "rows": len(pub.forecast),
        }
    con.close()
    result["timings_s"] = timings
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_end": os.getloadavg()}
    text = json.dumps(result, indent=1, default=str)
    print(text)
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench_ml.json").write_text(text)


if __name__ == "__main__":
    main()
