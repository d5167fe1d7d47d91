"""Churn features as of a cutoff T, from data strictly before T.

Point-in-time rules (what makes this leak-free, see tests/test_ml_churn.py::test_no_leakage):
* orders and sessions count only if their timestamp is < T;
* an order's status is only trusted if it changed before T: ``stg_orders`` holds the
  *current* status, so an order cancelled or refunded after T is treated as a normal
  order at T (we know it changed later, not what it was before — the status flow is
  placed -> paid -> shipped -> delivered, then possibly cancelled/refunded, which are final:
  an order cancelled or refunded before T does not change again, so its updated_at stays < T);
* customer attributes used are immutable (signup time, acquisition channel);
  ``dim_customers``' RFM columns are computed as of *now* and are deliberately not used.
Product category comes from the current ``stg_products`` row (a re-categorised product
moves history with it; accepted: categories change rarely and the feature is a count).
"""
from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

NUMERIC_FEATURES = [
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "tenure_days",
    "first_order_age_days",
    "orders_90d",
    "category_breadth",
    "sessions_7d",
    "sessions_30d",
    "sessions_90d",
    "session_ratio_7_30",
    "session_ratio_30_90",
    "days_since_last_session",
    "refund_share",
]
CATEGORICAL_FEATURES = ["acquisition_channel"]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
# Extra columns used by the BG/NBD baseline (not model features).
AUX_COLUMNS = ["order_days"]

_SQL = """
WITH k AS (SELECT cutoff::TIMESTAMP AS cutoff, customer_id FROM _keys),
o AS (
    SELECT k.cutoff, k.customer_id, o.order_id, o.created_at, o.order_date, o.total_amount_usd,
           (o.is_refunded AND o.updated_at < k.cutoff) AS refunded_before
    FROM k JOIN staging.stg_orders o
      ON o.customer_id = k.customer_id AND o.created_at < k.cutoff
    WHERE NOT (o.is_cancelled AND o.updated_at < k.cutoff)
),
of AS (
    SELECT cutoff, customer_id,
           count(*) AS frequency,
           count(DISTINCT order_date) AS order_days,
           sum(total_amount_usd) AS monetary,
           date_diff('second', max(created_at), cutoff) / 86400.0 AS recency_days,
           date_diff('second', min(created_at), cutoff) / 86400.0 AS first_order_age_days,
           count(*) FILTER (WHERE created_at >= cutoff - INTERVAL 90 DAY) AS orders_90d,
           avg(refunded_before::INT) AS refund_share
    FROM o GROUP BY cutoff, customer_id
),
cat AS (
    SELECT o.cutoff, o.customer_id, count(DISTINCT p.category) AS category_breadth
    FROM o JOIN staging.stg_order_items i ON i.order_id = o.order_id
    JOIN staging.stg_products p ON p.product_id = i.product_id
    GROUP BY 1, 2
),
s AS (
    SELECT k.cutoff, k.customer_id,
           count(*) FILTER (WHERE s.session_start >= k.cutoff - INTERVAL 7 DAY) AS sessions_7d,
           count(*) FILTER (WHERE s.session_start >= k.cutoff - INTERVAL 30 DAY) AS sessions_30d,
           count(*) FILTER (WHERE s.session_start >= k.cutoff - INTERVAL 90 DAY) AS sessions_90d,
           date_diff('second', max(s.session_start), k.cutoff) / 86400.0 AS days_since_last_session
    FROM k JOIN marts.fct_sessions s
      ON s.customer_id = k.customer_id AND s.session_start < k.cutoff
    GROUP BY 1, 2
)
SELECT k.cutoff::DATE AS cutoff, k.customer_id,
       of.recency_days, coalesce(of.frequency, 0) AS frequency, coalesce(of.monetary, 0) AS monetary,
       of.monetary / nullif(of.frequency, 0) AS aov,
       date_diff('second', coalesce(c.created_at, c.first_order_at), k.cutoff) / 86400.0 AS tenure_days,
       of.first_order_age_days, coalesce(of.orders_90d, 0) AS orders_90d,
       coalesce(cat.category_breadth, 0) AS category_breadth,
       coalesce(s.sessions_7d, 0) AS sessions_7d, coalesce(s.sessions_30d, 0) AS sessions_30d,
       coalesce(s.sessions_90d, 0) AS sessions_90d,
       s.sessions_7d / nullif(s.sessions_30d, 0) AS session_ratio_7_30,
       s.sessions_30d / nullif(s.sessions_90d, 0) AS session_ratio_30_90,
       s.days_since_last_session, coalesce(of.refund_share, 0) AS refund_share,
       c.acquisition_channel, coalesce(of.order_days, 0) AS order_days
FROM k
LEFT JOIN of USING (cutoff, customer_id)
LEFT JOIN cat USING (cutoff, customer_id)
LEFT JOIN s USING (cutoff, customer_id)
LEFT JOIN marts.dim_customers c ON c.customer_id = k.customer_id
ORDER BY 1, 2
"""


def build_features(con: duckdb.DuckDBPyConnection, keys: pd.DataFrame) -> pd.DataFrame:
    """Features for each (cutoff, customer_id) row of ``keys`` (cutoff: a date)."""
    k = pd.DataFrame({"cutoff": pd.to_datetime(keys["cutoff"]), "customer_id": keys["customer_id"].astype(str)})
    con.register("_keys", k)
    try:
        df = con.execute(_SQL).df()
    finally:
        con.unregister("_keys")
    for col in NUMERIC_FEATURES + AUX_COLUMNS:
        df[col] = df[col].astype("float64")
    df["acquisition_channel"] = df["acquisition_channel"].astype("object").fillna("unknown")
    return df


def features_at(con: duckdb.DuckDBPyConnection, cutoff: dt.date, customer_ids: list[str]) -> pd.DataFrame:
    return build_features(con, pd.DataFrame({"cutoff": [cutoff] * len(customer_ids), "customer_id": customer_ids}))


def to_matrix(df: pd.DataFrame, channels: list[str], features: list[str] | None = None) -> pd.DataFrame:
    """Model input: numeric features plus the channel as a fixed-vocabulary categorical.

    The vocabulary is frozen at training time (stored with the model) so an unseen channel
    at scoring becomes NaN, which HistGradientBoosting treats as missing, not as a new code.
    ``features``: the columns the model was fitted on (default: all of FEATURES; see
    ml.churn.feature_selection for why a model may use fewer).
    """
    features = FEATURES if features is None else features
    X = df[[c for c in NUMERIC_FEATURES if c in features]].astype("float64").copy()
    if "acquisition_channel" in features:
        X["acquisition_channel"] = pd.Categorical(df["acquisition_channel"], categories=channels)
    return X


def replace_inf(X: pd.DataFrame) -> pd.DataFrame:
    num = X.select_dtypes("number").columns
    X[num] = X[num].replace([np.inf, -np.inf], np.nan)
    return X
