"""Backtest the forecasters on one shop and print the champion table of ml/README.md.

    python -m ml.forecast.evaluate --shop <data dir>     # after `nightjar run` built its warehouse
    python -m ml.forecast.evaluate --cdnow               # CDNOW daily orders and revenue (lifetimes package)

Champions are chosen on the selection folds; every number printed is from the holdout
folds, with intervals calibrated on the selection folds only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml.forecast.publish import SeriesEvaluation, evaluate_series
from ml.forecast.series import SeriesKey, load_series

MODELS = ("prophet", "seasonal_naive", "ets")


def cdnow_file() -> Path:
    # `import lifetimes.datasets` needs setuptools' pkg_resources; the file is read by path.
    import lifetimes

    return Path(os.path.dirname(lifetimes.__file__)) / "datasets" / "CDNOW_master.txt"


def cdnow_series(path: Path | None = None) -> dict[SeriesKey, pd.Series]:
    """Daily purchases (rows) and revenue (dollars) of CDNOW_master.txt, missing days = 0.

    The file: whitespace-separated ``customer_id date(YYYYMMDD) cds dollars`` after a header.
    """
    df = pd.read_csv(
        path or cdnow_file(), sep=r"\s+", skiprows=1, header=None, names=["customer_id", "date", "cds", "dollars"],
        dtype={"customer_id": str, "date": str},
    )
    df["ds"] = pd.to_datetime(df["date"], format="%Y%m%d")
    daily = df.groupby("ds").agg(orders=("customer_id", "size"), revenue=("dollars", "sum"))
    daily = daily.reindex(pd.date_range(daily.index.min(), daily.index.max(), freq="D"), fill_value=0).astype(float)
    return {SeriesKey("cdnow", m): daily[m].rename(m) for m in ("orders", "revenue")}


def shop_series(data_dir: Path) -> dict[SeriesKey, pd.Series]:
    warehouse = data_dir / "warehouse.duckdb"
    if not warehouse.exists():
        raise SystemExit(f"no warehouse at {warehouse}: run `NIGHTJAR_DATA_DIR={data_dir} nightjar run` first")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return load_series(con)


def _fmt(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.2f}"


def champion_table(evals: dict[SeriesKey, SeriesEvaluation]) -> tuple[str, dict[str, float]]:
    """Markdown table (holdout MASE and calibrated 80% coverage per model) and shop-level means."""
    head = (
        "| series | champion | MASE champion | MASE seasonal naive | MASE ETS | MASE Prophet "
        "| coverage champion | coverage seasonal naive | coverage ETS | coverage Prophet | champion raw coverage |"
    )
    lines = [head, "|" + "---|" * 11]
    champ_cov, champ_mase, champ_raw, sn_mase, ets_mase = [], [], [], [], []
    for key, ev in evals.items():
        if ev.result is None or ev.champion is None:
            lines.append(f"| {key.label} | skipped: {ev.skip_reason} |" + " |" * 9)
            continue
        s = ev.result.summary.set_index("model")

        def get(model: str, col: str) -> float | None:
            return float(s.loc[model, col]) if model in s.index else None
        c = ev.champion
        champ_cov.append(get(c, "coverage"))
        champ_raw.append(get(c, "coverage_raw"))
        champ_mase.append(get(c, "mase"))
        sn_mase.append(get("seasonal_naive", "mase"))
        ets_mase.append(get("ets", "mase"))
        lines.append(
            f"| {key.label} | {c} | {_fmt(get(c, 'mase'))} | "
            + " | ".join(_fmt(get(m, "mase")) for m in MODELS[1:] + MODELS[:1]) + " | "
            + f"{_fmt(get(c, 'coverage'))} | "
            + " | ".join(_fmt(get(m, "coverage")) for m in MODELS[1:] + MODELS[:1])
            + f" | {_fmt(get(c, 'coverage_raw'))} |"
        )

    def mean(xs: list[float | None]) -> float:
        v = [x for x in xs if x is not None and x == x]
        return float(np.mean(v)) if v else float("nan")
    totals = {
        "series": len(champ_cov),
        "champion_coverage": mean(champ_cov),
        "champion_raw_coverage": mean(champ_raw),
        "champion_mase": mean(champ_mase),
        "seasonal_naive_mase": mean(sn_mase),
        "ets_mase": mean(ets_mase),
    }
    lines.append(
        f"| **mean of {totals['series']} series** | | {_fmt(totals['champion_mase'])} | {_fmt(totals['seasonal_naive_mase'])} "
        f"| {_fmt(totals['ets_mase'])} | | **{totals['champion_coverage']:.3f}** | | | | {totals['champion_raw_coverage']:.3f} |"
    )
    return "\n".join(lines), totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.forecast.evaluate", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--shop", type=Path, help="a data dir whose warehouse.duckdb `nightjar run` built")
    src.add_argument("--cdnow", action="store_true", help="CDNOW_master.txt from the lifetimes package")
    ap.add_argument("--cdnow-file", type=Path, default=None, help="another copy of CDNOW_master.txt")
    ap.add_argument("--max-folds", type=int, default=8, help="folds in all, half selection and half holdout")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    series = cdnow_series(args.cdnow_file) if args.cdnow else shop_series(args.shop)
    if not series:
        print("no daily series with orders", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    evals = evaluate_series(series, seed=args.seed, max_folds=args.max_folds)
    table, totals = champion_table(evals)
    plan = next((ev.result.plan for ev in evals.values() if ev.result is not None), None)
    print(table)
    print()
    if plan is not None:
        print(f"folds: {len(plan.folds('select'))} selection + {len(plan.folds('holdout'))} holdout, 28-day horizon; "
              f"{len(series)} series, {time.perf_counter() - t0:.0f} s")
    cov = totals["champion_coverage"]
    print(f"champion holdout coverage of the 80% interval, mean over series: {cov:.3f} (target 0.75-0.85)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
