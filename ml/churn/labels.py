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


def horizon(cfg: ChurnConfig) -> int:
    if cfg.horizon_days is None:
        raise ValueError("the churn horizon is not resolved yet (labels.choose_horizon)")
    return int(cfg.horizon_days)


class HorizonMismatch(ValueError):
    """The label window does not fit the shop's purchase rhythm; the message says what to set."""


# Below this many gaps the percentile is noise: keep the default and say so.
MIN_GAPS_FOR_HORIZON = 50
DEFAULT_HORIZON_DAYS = 90


def choose_horizon(gaps: dict[str, float], cfg: ChurnConfig) -> tuple[int, str]:
    """(H in days, why), checked against the inter-purchase gaps' 90th percentile.

    Rule: H must be at least p90, so that at most 1 in 10 genuine repeat purchases comes
    after a quiet spell that the label would call churn. Unset H = p90 rounded up to a
    multiple of 30 days, within [min_horizon_days, max_horizon_days]; a p90 beyond the upper
    bound, or a set H below p90, raises :class:`HorizonMismatch` naming the value to set.
    """
    p90 = gaps.get("p90_days")
    n = int(gaps.get("n_gaps", 0))
    if p90 is None or n < MIN_GAPS_FOR_HORIZON:
        h = cfg.horizon_days or DEFAULT_HORIZON_DAYS
        return h, f"H = {h} days: only {n} inter-purchase gaps, too few to check it against"
    suggested = int(30 * np.ceil(p90 / 30))
    if cfg.horizon_days is not None:
        if cfg.horizon_days < p90 and not cfg.check_horizon:
            return cfg.horizon_days, (
                f"H = {cfg.horizon_days} days (set, check disabled) is below the gap p90 {p90:.0f} days: "
                "some still-active customers are labelled churned")
        if cfg.horizon_days < p90:
            raise HorizonMismatch(
                f"horizon_days={cfg.horizon_days} is shorter than the 90th percentile of inter-purchase gaps "
                f"({p90:.0f} days over {n} gaps): more than 1 in 10 repeat purchases would be labelled churn. "
                f"Set horizon_days to at least {suggested} (or leave it unset to derive it)."
            )
        return cfg.horizon_days, f"H = {cfg.horizon_days} days (set), >= gap p90 {p90:.0f} days"
    if suggested > cfg.max_horizon_days:
        raise HorizonMismatch(
            f"the 90th percentile of inter-purchase gaps is {p90:.0f} days, beyond max_horizon_days="
            f"{cfg.max_horizon_days}: set horizon_days explicitly (at least {suggested}) if a label window "
            "that long is what you want, or raise max_horizon_days."
        )
    h = max(cfg.min_horizon_days, suggested)
    return h, f"H = {h} days: gap p90 {p90:.0f} days rounded up to 30 (bounds {cfg.min_horizon_days}..{cfg.max_horizon_days})"


def plan_folds(first: dt.date, observed_end: dt.date, cfg: ChurnConfig) -> list[CutoffPlan]:
    """``cfg.n_eval_cutoffs`` temporal splits ending at consecutive test month starts, oldest first.

    Each is a :func:`plan_cutoffs` split whose test cutoff is one of the latest fully observed
    month starts; fewer than ``cfg.min_eval_cutoffs`` possible splits raise TooLittleHistory.
    """
    H = dt.timedelta(days=horizon(cfg))
    candidates = month_starts(first + dt.timedelta(days=cfg.warmup_days), observed_end)
    tests = [t for t in candidates if t + H <= observed_end][-cfg.n_eval_cutoffs :]
    plans = []
    for t in tests:
        try:
            plans.append(plan_cutoffs(first, t + H, cfg))
        except TooLittleHistory:
            continue
    if len(plans) < cfg.min_eval_cutoffs:
        raise TooLittleHistory(
            f"{len(plans)} evaluation cutoff(s) with a fully observed {H.days}-day label window and enough "
            f"training history (need {cfg.min_eval_cutoffs}; orders {first}..{observed_end})"
        )
    return plans


def plan_cutoffs(first: dt.date, observed_end: dt.date, cfg: ChurnConfig) -> CutoffPlan:
    """Temporal split, all on month starts.

    * test: the latest cutoff whose label window [T, T+H) is fully observed;
    * calibration: the latest cutoff whose label window ends by the test cutoff — so the
      calibration labels were knowable at test time, as they would be in production;
    * train: the ``n_train_cutoffs`` month starts before calibration (after a warm-up).
    Every training and calibration label is known before the test cutoff: the test score
    is a genuine out-of-time estimate.
    """
    H = dt.timedelta(days=horizon(cfg))
    candidates = month_starts(first + dt.timedelta(days=cfg.warmup_days), observed_end)
    tests = [t for t in candidates if t + H <= observed_end]
    if not tests:
        raise TooLittleHistory(
            f"no cutoff with a fully observed {horizon(cfg)}-day label window "
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
            f"{cfg.min_train_cutoffs}); history {first}..{observed_end} is too short for H={horizon(cfg)}"
        )
    return CutoffPlan(train=train, calibration=cal, test=test, horizon_days=horizon(cfg))


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
            [cfg.lookback_days, horizon(cfg)],
        ).df()
    finally:
        con.unregister("_cutoffs")
    return df


def inter_purchase_gaps(con: duckdb.DuckDBPyConnection, before: dt.date | None = None) -> pd.Series:
    """Days between consecutive distinct order days of the same customer (non-cancelled),
    among orders created before ``before`` (all when None)."""
    return con.execute(
        """
        WITH d AS (
            SELECT DISTINCT customer_id, order_date FROM staging.stg_orders o
            WHERE NOT o.is_cancelled AND (?::DATE IS NULL OR o.created_at < ?::DATE)
        )
        SELECT date_diff('day', lag(order_date) OVER (PARTITION BY customer_id ORDER BY order_date), order_date) AS gap
        FROM d QUALIFY gap IS NOT NULL
        """,
        [before, before],
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
