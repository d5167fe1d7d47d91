"""Population, churn labels and cutoff planning.

Cutoff ``T`` is an instant: midnight UTC at the start of the cutoff date. Features use
data with timestamps strictly before T; the label window is [T, T + H) — the issue's
(T, T+H] up to the single instant T itself, which is measure-zero for order timestamps.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from ml.churn.config import ChurnConfig, TooLittleHistory

# An order counts as activity if it is not cancelled. For *features* the cancellation
# must itself be known before T (see features.py); for *labels* the current status is used.
_VALID_ORDER_NOW = "NOT o.is_cancelled"


def observed_range(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date]:
    """(first order date, observed end) where observed end is the start of the last order date.

    The last day may still be loading (late arrivals), so label windows must end by its
    start; scoring, by contrast, uses everything (see score.py).
    """
    first, last = con.execute("SELECT min(created_at), max(created_at) FROM staging.stg_orders").fetchall()[0]
    if first is None:
        raise TooLittleHistory("staging.stg_orders is empty")
    return first.date(), last.date()


def month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    """Month starts in [first, last]."""
    out, d = [], dt.date(first.year, first.month, 1)
    if d < first:
        d = _add_month(d)
    while d <= last:
        out.append(d)
        d = _add_month(d)
    return out


def _add_month(d: dt.date, k: int = 1) -> dt.date:
    m = d.month - 1 + k
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


@dataclass(frozen=True)
class CutoffPlan:
    train: list[dt.date]
    calibration: dt.date
    test: dt.date
    horizon_days: int

    def as_dict(self) -> dict:
        return {
            "train_cutoffs": [d.isoformat() for d in self.train],
            "calibration_cutoff": self.calibration.isoformat(),
            "test_cutoff": self.test.isoformat(),
            "horizon_days": self.horizon_days,
        }


def plan_cutoffs(first: dt.date, observed_end: dt.date, cfg: ChurnConfig) -> CutoffPlan:
    """Temporal split, all on month starts.

    * test: the latest cutoff whose label window [T, T+H) is fully observed;
    * calibration: the latest cutoff whose label window ends by the test cutoff — so the
      calibration labels were knowable at test time, as they would be in production;
    * train: the ``n_train_cutoffs`` month starts before calibration (after a warm-up).
    Every training and calibration label is known before the test cutoff: the test score
    is a genuine out-of-time estimate.
    """
    H = dt.timedelta(days=cfg.horizon_days)
    candidates = month_starts(first + dt.timedelta(days=cfg.warmup_days), observed_end)
    tests = [t for t in candidates if t + H <= observed_end]
    if not tests:
        raise TooLittleHistory(
            f"no cutoff with a fully observed {cfg.horizon_days}-day label window "
            f"(orders from {first} to {observed_end}, warm-up {cfg.warmup_days} days)"
        )
    test = tests[-1]
    cals = [t for t in candidates if t + H <= test]
    if not cals:
        raise TooLittleHistory(f"no calibration cutoff whose label window ends by the test cutoff {test}")
    cal = cals[-1]
    train = [t for t in candidates if t < cal][-cfg.n_train_cutoffs :]
    if len(train) < cfg.min_train_cutoffs:
        raise TooLittleHistory(
            f"{len(train)} training cutoff(s) before the calibration cutoff {cal} (need "
            f"{cfg.min_train_cutoffs}); history {first}..{observed_end} is too short for H={cfg.horizon_days}"
        )
    return CutoffPlan(train=train, calibration=cal, test=test, horizon_days=cfg.horizon_days)


def labels(
    con: duckdb.DuckDBPyConnection, cutoffs: list[dt.date], cfg: ChurnConfig
) -> pd.DataFrame:
    """(cutoff, customer_id, churned) for the population at each cutoff.

    Population: >= 1 order created in [T - lookback, T) that was not already cancelled at T.
    churned = 1 when the customer has no non-cancelled order created in [T, T + H).
    """
    con.register("_cutoffs", pd.DataFrame({"cutoff": pd.to_datetime(cutoffs)}))
    try:
        df = con.execute(
            f"""
            WITH pop AS (
                SELECT DISTINCT c.cutoff, o.customer_id
                FROM _cutoffs c JOIN staging.stg_orders o
                  ON o.created_at < c.cutoff
                 AND o.created_at >= c.cutoff - to_days(?::INT)
                 AND NOT (o.is_cancelled AND o.updated_at < c.cutoff)
            ), future AS (
                SELECT DISTINCT c.cutoff, o.customer_id
                FROM _cutoffs c JOIN staging.stg_orders o
                  ON o.created_at >= c.cutoff AND o.created_at < c.cutoff + to_days(?::INT)
                WHERE {_VALID_ORDER_NOW}
            )
            SELECT p.cutoff::DATE AS cutoff, p.customer_id,
                   (f.customer_id IS NULL)::INT AS churned
            FROM pop p LEFT JOIN future f USING (cutoff, customer_id)
            ORDER BY 1, 2
            """,
            [cfg.lookback_days, cfg.horizon_days],
        ).df()
    finally:
        con.unregister("_cutoffs")
    return df


def inter_purchase_gaps(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """Days between consecutive distinct order days of the same customer (non-cancelled)."""
    return con.execute(
        """
        WITH d AS (
            SELECT DISTINCT customer_id, order_date FROM staging.stg_orders o WHERE NOT o.is_cancelled
        )
        SELECT date_diff('day', lag(order_date) OVER (PARTITION BY customer_id ORDER BY order_date), order_date) AS gap
        FROM d QUALIFY gap IS NOT NULL
        """
    ).df()["gap"].astype(float)


def gap_summary(gaps: pd.Series) -> dict[str, float]:
    """Percentiles used to justify H (reported as metadata and in the README)."""
    if gaps.empty:
        return {"n_gaps": 0}
    q = np.percentile(gaps, [50, 75, 90, 95])
    return {
        "n_gaps": int(len(gaps)),
        "p50_days": float(q[0]),
        "p75_days": float(q[1]),
        "p90_days": float(q[2]),
        "p95_days": float(q[3]),
    }
