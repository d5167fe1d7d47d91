"""Churn features as of a cutoff T, from data strictly before T.

Point-in-time rules (what makes this leak-free, see tests/test_ml_churn.py::test_no_leakage):
* orders and sessions count only if their timestamp is < T;
* an order's status is only trusted if it changed before T: ``stg_orders`` holds the
  *current* status, so an order cancelled or refunded after T is treated as a normal
  order at T (we know it changed later, not what it was before — the status flow is
  placed -> paid -> shipped -> delivered, then possibly cancelled/refunded, which are final:
  an order cancelled or refunded before T does not change again, so its updated_at stays < T);
* customer attributes used are immutable (signup time, acquisition channel);
  ``dim_customers``' RFM columns are computed as of *now* and are deliberately not used;
* sessions are rebuilt from ``stg_events`` with the identity stitching *as known at T*: an
  anonymous event belongs to the user last seen logged in on its device before T.
  ``fct_sessions`` stitches with the latest login ever, so a login after T would pull
  earlier anonymous visits into a customer's history (look-ahead).
Product category comes from the current ``stg_products`` row (a re-categorised product
moves history with it; accepted: categories change rarely and the feature is a count).
"""
from __future__ import annotations

import datetime as dt
import logging

import duckdb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

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
SESSION_FEATURES = [
    "sessions_7d", "sessions_30d", "sessions_90d", "session_ratio_7_30", "session_ratio_30_90",
    "days_since_last_session",
]
# DESIGN §2: a new session starts after a gap of more than 30 minutes.
SESSION_GAP_MINUTES = 30
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
s AS (SELECT * FROM _session_features)
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


# Once per call: each device's events cut into "pieces" — runs of consecutive events with the
# same user_id (or none) and no gap over the session timeout. All events of a piece belong to
# one user at any cutoff (a device's anonymous events all follow its latest login before T),
# and pieces of one device do not overlap, so the latest login before T is the user of the
# identified piece that starts last before T.
_PIECES_SQL = f"""
CREATE OR REPLACE TEMP TABLE _event_pieces AS
WITH ev AS (
    -- only devices that ever logged in can belong to a customer; bots never count (DESIGN §2)
    SELECT anonymous_id, user_id, event_timestamp, event_id FROM staging.stg_events
    WHERE NOT coalesce(is_bot, false) AND event_timestamp < $last_cutoff
      AND anonymous_id IN (SELECT anonymous_id FROM staging.stg_events WHERE user_id IS NOT NULL)
), ordered AS (
    SELECT *, lag(event_timestamp) OVER w AS previous_at, lag(user_id) OVER w AS previous_user,
           lag(event_id) OVER w AS previous_event
    FROM ev WINDOW w AS (PARTITION BY anonymous_id ORDER BY event_timestamp, event_id)
), flagged AS (
    SELECT *, CASE WHEN previous_event IS NULL
                     OR event_timestamp > previous_at + INTERVAL {SESSION_GAP_MINUTES} MINUTE
                     OR user_id IS DISTINCT FROM previous_user THEN 1 ELSE 0 END AS starts_piece
    FROM ordered
), numbered AS (
    SELECT *, sum(starts_piece) OVER (PARTITION BY anonymous_id ORDER BY event_timestamp, event_id
                                      ROWS UNBOUNDED PRECEDING) AS piece
    FROM flagged
)
SELECT anonymous_id, piece, any_value(user_id) AS user_id,
       min(event_timestamp) AS piece_start, max(event_timestamp) AS piece_end
FROM numbered GROUP BY anonymous_id, piece
"""

# Per cutoff: pieces before T keyed by the identity known at T, merged into sessions. A piece
# starts a session when it starts more than the timeout after every earlier piece of the user
# ended — the same split as a gap rule on the user's merged events (within a piece no gap
# exceeds the timeout, so a piece spanning another's start has an event just before it).
_SESSIONS_AT_SQL = f"""
WITH p AS (
    SELECT * FROM _event_pieces WHERE piece_start < $cutoff
), links AS (
    -- DESIGN §2's stitching, restricted to what had happened by T
    SELECT anonymous_id, arg_max(user_id, piece_start) AS linked_user
    FROM p WHERE user_id IS NOT NULL GROUP BY anonymous_id
), mine AS (
    SELECT coalesce(p.user_id, links.linked_user) AS customer_id, p.piece_start, p.piece_end
    FROM p LEFT JOIN links USING (anonymous_id)
    WHERE coalesce(p.user_id, links.linked_user) IN (SELECT customer_id FROM _keys WHERE cutoff = $cutoff)
), merged AS (
    SELECT customer_id, piece_start,
           max(piece_end) OVER (PARTITION BY customer_id ORDER BY piece_start, piece_end
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ended_before
    FROM mine
)
SELECT $cutoff::DATE AS cutoff, customer_id,
       count(*) FILTER (WHERE piece_start >= $cutoff - INTERVAL 7 DAY) AS sessions_7d,
       count(*) FILTER (WHERE piece_start >= $cutoff - INTERVAL 30 DAY) AS sessions_30d,
       count(*) FILTER (WHERE piece_start >= $cutoff - INTERVAL 90 DAY) AS sessions_90d,
       date_diff('second', max(piece_start), $cutoff) / 86400.0 AS days_since_last_session
FROM merged
WHERE ended_before IS NULL OR piece_start > ended_before + INTERVAL {SESSION_GAP_MINUTES} MINUTE
GROUP BY customer_id
"""


def _point_in_time_sessions(con: duckdb.DuckDBPyConnection, cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
    """Session counts per (cutoff, customer) with identity stitching as known at each cutoff."""
    parts = []
    if cutoffs:
        con.execute(_PIECES_SQL, {"last_cutoff": max(cutoffs).to_pydatetime()})
        try:
            parts = [con.execute(_SESSIONS_AT_SQL, {"cutoff": c.to_pydatetime()}).df() for c in cutoffs]
        finally:
            con.execute("DROP TABLE IF EXISTS _event_pieces")
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if out.empty:
        out = pd.DataFrame(columns=["cutoff", "customer_id", "sessions_7d", "sessions_30d", "sessions_90d",
                                    "days_since_last_session"])
    out["cutoff"] = pd.to_datetime(out["cutoff"])
    return out


def build_features(con: duckdb.DuckDBPyConnection, keys: pd.DataFrame) -> pd.DataFrame:
    """Features for each (cutoff, customer_id) row of ``keys`` (cutoff: a date)."""
    k = pd.DataFrame({"cutoff": pd.to_datetime(keys["cutoff"]), "customer_id": keys["customer_id"].astype(str)})
    con.register("_keys", k)
    try:
        sessions = _point_in_time_sessions(con, sorted(k["cutoff"].unique()))
        sessions = sessions.astype({"sessions_7d": "float64", "sessions_30d": "float64", "sessions_90d": "float64",
                                    "days_since_last_session": "float64", "customer_id": "object"})
        con.register("_session_features", sessions)
        df = con.execute(_SQL).df()
    finally:
        con.unregister("_keys")
        con.unregister("_session_features")
    for col in NUMERIC_FEATURES + AUX_COLUMNS:
        df[col] = df[col].astype("float64")
    df["acquisition_channel"] = df["acquisition_channel"].astype("object").fillna("unknown")
    return df


def features_at(con: duckdb.DuckDBPyConnection, cutoff: dt.date, customer_ids: list[str]) -> pd.DataFrame:
    return build_features(con, pd.DataFrame({"cutoff": [cutoff] * len(customer_ids), "customer_id": customer_ids}))


def purchase_history(con: duckdb.DuckDBPyConnection, cutoff: dt.date) -> pd.DataFrame:
    """Every customer with a valid order before ``cutoff``: the BG/NBD summary inputs.

    Same point-in-time order rules as the features; not limited to the churn population,
    so BG/NBD sees the whole calibration history (long-inactive customers included).
    """
    return con.execute(
        """
        SELECT customer_id, count(DISTINCT order_date)::DOUBLE AS order_days,
               date_diff('second', min(created_at), ?::TIMESTAMP) / 86400.0 AS first_order_age_days,
               date_diff('second', max(created_at), ?::TIMESTAMP) / 86400.0 AS recency_days
        FROM staging.stg_orders
        WHERE created_at < ?::TIMESTAMP AND NOT (is_cancelled AND updated_at < ?::TIMESTAMP)
        GROUP BY customer_id
        """,
        [cutoff, cutoff, cutoff, cutoff],
    ).df()


def model_features(use_session_features: bool = True) -> list[str]:
    return [f for f in FEATURES if use_session_features or f not in SESSION_FEATURES]


def drop_uninformative_features(frame: pd.DataFrame, features: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """(frame without them, dropped): features that are empty or constant in ``frame``.

    A shop without events has every session feature at 0 or NULL; a constant column teaches
    the model nothing and (all-NULL) can break a fit, so it is dropped and logged.
    """
    features = FEATURES if features is None else features
    dropped = [f for f in features if f in frame and frame[f].dropna().nunique() <= 1]
    if dropped:
        log.warning("churn: dropping %d empty or constant feature(s): %s", len(dropped), ", ".join(dropped))
    return frame.drop(columns=dropped), dropped


def to_matrix(df: pd.DataFrame, channels: list[str], features: list[str] | None = None) -> pd.DataFrame:
    """Model input: the numeric features plus the channel as a fixed-vocabulary categorical.

    The vocabulary is frozen at training time (stored with the model) so an unseen channel
    at scoring becomes NaN, which HistGradientBoosting treats as missing, not as a new code.
    """
    features = FEATURES if features is None else features
    X = df[[f for f in features if f in NUMERIC_FEATURES]].astype("float64").copy()
    if "acquisition_channel" in features:
        X["acquisition_channel"] = pd.Categorical(df["acquisition_channel"], categories=channels)
    return X


def replace_inf(X: pd.DataFrame) -> pd.DataFrame:
    num = X.select_dtypes("number").columns
    X[num] = X[num].replace([np.inf, -np.inf], np.nan)
    return X
