"""Churn evaluation tables: the candidate and every baseline, with and without session features.

    python -m ml.churn.report --warehouse data/warehouse.duckdb
    python -m ml.churn.report --cdnow --horizon-days 90 --no-horizon-check

prints the markdown table that ml/README.md quotes (means over the evaluation cutoffs, and
the gate's verdict). Runs read-only against the warehouse; nothing is registered.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from typing import Any

import duckdb

from ml.churn.config import ChurnConfig
from ml.churn.train import ChurnTrainResult, train_churn

COLUMNS = [("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier"), ("top_decile_lift", "top-decile lift"),
           ("top_decile_vs_oracle", "top decile vs oracle")]


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _header(with_setting: bool) -> list[str]:
    first = ["setting"] if with_setting else []
    cells = [*first, "model", *(h for _, h in COLUMNS)]
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def _rows(metrics: dict[str, dict[str, Any]], names: list[str], setting: str | None = None) -> list[str]:
    first = [setting] if setting else []
    return ["| " + " | ".join([*first, name, *(_fmt(metrics[name][k]) for k, _ in COLUMNS)]) + " |" for name in names]


def metrics_markdown(metrics: dict[str, dict[str, Any]], names: list[str]) -> str:
    """One row per model: mean ROC-AUC, PR-AUC, Brier, top-decile lift and top decile vs oracle."""
    return "\n".join([*_header(False), *_rows(metrics, names)])


def gate_line(result: ChurnTrainResult, setting: str) -> str:
    g = result.gate
    verdict = "promoted" if g["passed"] else f"refused, champion {g.get('champion')}"
    return f"* {setting}: {verdict} — " + "; ".join(g["reasons"])


def evaluate_shop(con: duckdb.DuckDBPyConnection, cfg: ChurnConfig, with_sessions: bool = True) -> str:
    """Markdown: the table (with and without session features) and each gate's verdict."""
    results = []
    settings = [("all features", True), ("no session features", False)] if with_sessions else [("orders only", False)]
    for setting, sessions in settings:
        t0 = time.perf_counter()
        r = train_churn(con, dataclasses.replace(cfg, use_session_features=sessions))
        results.append((setting, r, time.perf_counter() - t0))
    r0 = results[0][1]
    head = (
        f"Evaluation cutoffs {', '.join(p.test.isoformat() for p in r0.plans)}; H = {r0.config.horizon_days} days; "
        f"{r0.rows['test']} test rows; base rate {r0.metrics['candidate']['base_rate']:.3f}; "
        f"inter-purchase gap p90 {r0.gaps.get('p90_days', float('nan')):.0f} days."
    )
    table = _header(True)
    for setting, r, _ in results:
        table += _rows(r.metrics, ["candidate", *r.baselines], setting)
    gates = [gate_line(r, s) for s, r, _ in results]
    params = [f"* BG/NBD (weeks) at {c}: " + ", ".join(f"{k} {v:.3f}" for k, v in p.items() if k in ("r", "alpha", "a", "b"))
              for c, p in r0.bgnbd_params.items()]
    notes = [f"* {s}: dropped features: {', '.join(r.dropped_features) or 'none'}; {r.notes[0]}; {t:.0f} s"
             for s, r, t in results]
    return "\n".join([head, "", *table, "", *gates, *params, *notes])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.churn.report", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--warehouse", help="DuckDB warehouse file (opened read-only)")
    src.add_argument("--cdnow", action="store_true", help="the CDNOW master file shipped with lifetimes (orders only)")
    ap.add_argument("--horizon-days", type=int, default=None, help="label window H (default: derived from the gaps)")
    ap.add_argument("--no-horizon-check", action="store_true",
                    help="accept a --horizon-days below the inter-purchase gaps' p90 (reproduce figures at that H)")
    ap.add_argument("--n-bootstrap", type=int, default=ChurnConfig.n_bootstrap)
    args = ap.parse_args(argv)
    cfg = ChurnConfig(horizon_days=args.horizon_days, n_bootstrap=args.n_bootstrap,
                      check_horizon=not args.no_horizon_check)
    if args.cdnow:
        from ml.churn.cdnow import load_cdnow

        con = duckdb.connect()
        load_cdnow(con)
        print(evaluate_shop(con, cfg, with_sessions=False))
    else:
        with duckdb.connect(args.warehouse, read_only=True) as con:
            print(evaluate_shop(con, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
