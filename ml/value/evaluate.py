"""Temporal-holdout evaluation of CLV: BG/NBD + Gamma-Gamma against the naive past spend rate.

Calibration: every order before the cutoff. Holdout: the spend of those same customers in
[cutoff, cutoff + horizon). Scored by the mean absolute error (USD per customer) and the
Spearman rank correlation of predicted and actual holdout spend.

    python -m ml.value.evaluate --cdnow                     # FHL's split: calibration to 1997-09-30, holdout to 1998-06-30
    python -m ml.value.evaluate --warehouse data/warehouse.duckdb [--horizon-days 365] [--cutoff YYYY-MM-DD]
"""
from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ml.value import clv, history

CDNOW_CUTOFF = dt.date(1997, 10, 1)
CDNOW_HOLDOUT_END = dt.date(1998, 7, 1)  # exclusive: the holdout runs to 1998-06-30


@dataclass
class Evaluation:
    cutoff: dt.date
    horizon_days: int
    customers: int
    model: clv.CLVModel
    frame: pd.DataFrame  # customer_id, actual, predicted_clv, naive
    metrics: dict[str, dict[str, float]]  # {"bgnbd_gg": {"mae", "spearman"}, "naive_spend_rate": {...}}

    def table(self) -> str:
        lines = [f"cutoff {self.cutoff}, holdout {self.horizon_days} days, {self.customers} customers, "
                 f"mean actual holdout spend {self.frame['actual'].mean():.2f} USD",
                 f"{'model':<22}{'MAE (USD)':>12}{'Spearman':>10}"]
        for name, m in self.metrics.items():
            lines.append(f"{name:<22}{m['mae']:>12.2f}{m['spearman']:>10.3f}")
        return "\n".join(lines)


def _scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    rho = spearmanr(predicted, actual).statistic if np.std(predicted) > 0 and np.std(actual) > 0 else float("nan")
    return {"mae": float(np.mean(np.abs(predicted - actual))), "spearman": float(rho)}


def evaluate(con: duckdb.DuckDBPyConnection, cutoff: dt.date, horizon_days: int,
             max_abs_correlation: float = clv.MAX_ABS_CORRELATION) -> Evaluation:
    """Fit on orders before ``cutoff``, score both predictors on the next ``horizon_days``."""
    summary = history.summary_at(con, cutoff)
    model = clv.fit(summary, max_abs_correlation)
    pred = clv.predict(model, summary, horizon_days)
    actual = history.spend_between(con, cutoff, cutoff + dt.timedelta(days=horizon_days))
    frame = pred[["customer_id", "predicted_clv"]].merge(actual, on="customer_id", how="left")
    frame["actual"] = frame.pop("spend").fillna(0.0)
    frame["naive"] = clv.naive_spend_rate(summary, horizon_days)
    metrics = {
        "bgnbd_gg": _scores(frame["actual"].to_numpy(), frame["predicted_clv"].to_numpy()),
        "naive_spend_rate": _scores(frame["actual"].to_numpy(), frame["naive"].to_numpy()),
    }
    return Evaluation(cutoff, horizon_days, len(frame), model, frame, metrics)


def default_cutoff(con: duckdb.DuckDBPyConnection, horizon_days: int) -> dt.date:
    """The latest cutoff whose holdout is fully observed: the day after the last order − horizon."""
    first, last = history.order_span(con)
    if last is None:
        raise clv.TooLittleHistory("staging.stg_orders is empty")
    cutoff = last + dt.timedelta(days=1 - horizon_days)
    if cutoff <= first:
        raise clv.TooLittleHistory(
            f"orders span {first}..{last}: too short for a {horizon_days}-day holdout after a calibration period")
    return cutoff


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.value.evaluate", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--warehouse", help="DuckDB file with staging.stg_orders")
    src.add_argument("--cdnow", action="store_true", help="CDNOW_master.txt as shipped with lifetimes")
    ap.add_argument("--horizon-days", type=int, help="holdout length (default: 365; CDNOW: to 1998-06-30)")
    ap.add_argument("--cutoff", type=dt.date.fromisoformat, help="first holdout day (default: latest fully observed)")
    ap.add_argument("--max-abs-correlation", type=float, default=clv.MAX_ABS_CORRELATION)
    args = ap.parse_args(argv)
    if args.cdnow:
        from ml.churn.cdnow import load_cdnow

        con = duckdb.connect()
        load_cdnow(con)
        cutoff = args.cutoff or CDNOW_CUTOFF
        horizon = args.horizon_days or (CDNOW_HOLDOUT_END - cutoff).days
    else:
        con = duckdb.connect(args.warehouse, read_only=True)
        horizon = args.horizon_days or 365
        cutoff = args.cutoff or default_cutoff(con, horizon)
    try:
        ev = evaluate(con, cutoff, horizon, args.max_abs_correlation)
    finally:
        con.close()
    print(ev.table())
    m = ev.model
    print(f"BG/NBD {m.bgnbd.as_dict()}")
    print(f"average order value: {m.aov_model}; corr(frequency, mean spend) = {m.correlation:.3f}; "
          f"Gamma-Gamma {m.gamma_gamma.as_dict() if m.gamma_gamma else 'not used'}")
    for note in m.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
