"""A synthetic warehouse with the staging/mart schemas of ARCHITECTURE.md, for tests and benchmarks.

The real marts are built by dbt from the simulator's output; this module exists so that the
ML code can be tested and benchmarked without the whole pipeline, on data whose signal we
planted ourselves (and therefore know is learnable):

* every customer has a latent engagement ``z``; engagement drives how often they visit and
  order, and lowers their daily churn hazard;
* in the ~60 days before a customer churns, visits drop to 30% and orders to 50% of their
  usual rate ("fading out") — a signal visible in session ratios but not in plain RFM;
* daily order volume has planted weekly and yearly seasonality, so the forecasters have
  something to find.

Everything is vectorised with numpy so that 100k customers over two years build in seconds.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

CHANNELS = ["organic", "paid_search", "social", "email", "referral"]
# Channel shifts latent engagement: referred/email customers are stickier than paid social.
_CHANNEL_EFFECT = np.array([0.1, -0.1, -0.3, 0.3, 0.4])
_CHANNEL_P = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
DEFAULT_CATEGORIES = ["apparel", "books", "electronics", "garden", "home", "toys"]
# Weekly multipliers Monday..Sunday (weekend peak), normalised to mean 1.
_WEEKLY = np.array([0.9, 0.85, 0.9, 1.0, 1.1, 1.2, 1.05])
_WEEKLY = _WEEKLY / _WEEKLY.mean()
_YEARLY_AMPLITUDE = 0.3
_FADE_DAYS = 60.0


@dataclass(frozen=True)
class SyntheticShop:
    start: dt.date
    end: dt.date  # exclusive: the first day without data
    customers: int
    orders: int
    sessions: int
    ground_truth: dict


def _seasonality(t_days: np.ndarray, start: dt.date) -> np.ndarray:
    """Order-rate multiplier at fractional day t (weekly x yearly, mean ~1)."""
    day0 = pd.Timestamp(start)
    dow = (day0.dayofweek + np.floor(t_days).astype(np.int64)) % 7
    doy = day0.dayofyear + t_days
    yearly = 1.0 + _YEARLY_AMPLITUDE * np.sin(2 * np.pi * (doy - 80) / 365.25)
    return _WEEKLY[dow] * yearly


def _poisson_process(
    rng: np.random.Generator,
    begin: np.ndarray,
    end: np.ndarray,
    rate: np.ndarray,
    churn_day: np.ndarray,
    fade_factor: float,
    seasonal: bool,
    start: dt.date,
) -> tuple[np.ndarray, np.ndarray]:
    """Event times per customer on [begin, end) by thinning a homogeneous process.

    Returns (customer index, fractional day) arrays. The thinning keeps an event with
    probability seasonality/max x fade, where fade < 1 in the window before churn.
    """
    max_mult = (_WEEKLY.max() * (1 + _YEARLY_AMPLITUDE)) if seasonal else 1.0
    span = np.clip(end - begin, 0, None)
    counts = rng.poisson(rate * max_mult * span)
    cust = np.repeat(np.arange(len(begin)), counts)
    t = begin[cust] + rng.random(len(cust)) * span[cust]
    keep_p = np.ones(len(t))
    if seasonal:
        keep_p *= _seasonality(t, start) / max_mult
    fading = t >= churn_day[cust] - _FADE_DAYS
    keep_p = np.where(fading, keep_p * fade_factor, keep_p)
    keep = rng.random(len(t)) < keep_p
    return cust[keep], t[keep]


def build_synthetic_warehouse(
    con: duckdb.DuckDBPyConnection,
    *,
    customers: int = 2000,
    days: int = 600,
    start: dt.date = dt.date(2023, 1, 2),
    seed: int = 7,
    categories: list[str] | None = None,
    ground_truth_path: Path | None = None,
) -> SyntheticShop:
    """Create staging.* and marts.* tables (ARCHITECTURE.md names and types) in ``con``."""
    rng = np.random.default_rng(seed)
    categories = categories or DEFAULT_CATEGORIES
    n = customers
    day0 = pd.Timestamp(start)

    # --- customers ---------------------------------------------------------------------
    channel = rng.choice(len(CHANNELS), size=n, p=_CHANNEL_P)
    z = rng.normal(size=n) + _CHANNEL_EFFECT[channel]
    engagement = np.exp(0.6 * z)
    # A third of the customers already exist when the history starts; the rest sign up later.
    created = np.where(rng.random(n) < 0.33, rng.uniform(-200, 0, n), rng.uniform(0, days - 20, n))
    hazard = 0.004 * np.exp(-0.8 * z)
    churn_day = created + rng.exponential(1.0 / hazard)
    alive_end = np.minimum(churn_day, days)
    begin = np.maximum(created, 0.0)
    fav_category = rng.integers(0, len(categories), n)

    # --- orders and sessions --------------------------------------------------------------
    o_cust, o_t = _poisson_process(rng, begin, alive_end, 0.02 * engagement, churn_day, 0.5, True, start)
    s_cust, s_t = _poisson_process(rng, begin, alive_end, 0.06 * engagement, churn_day, 0.3, False, start)
    order_sort = np.argsort(o_t, kind="stable")
    o_cust, o_t = o_cust[order_sort], o_t[order_sort]
    n_orders = len(o_t)

    # --- products -------------------------------------------------------------------------
    per_cat = 8
    n_products = per_cat * len(categories)
    prod_cat = np.repeat(np.arange(len(categories)), per_cat)
    prod_price = np.round(rng.lognormal(3.0, 0.6, n_products), 2)

    # --- order items: 1-4 lines; 60% from the customer's favourite category ----------------
    lines = np.minimum(1 + rng.poisson(0.6, n_orders), 4)
    item_order = np.repeat(np.arange(n_orders), lines)
    line_number = np.concatenate([np.arange(1, k + 1) for k in lines]) if n_orders else np.array([], int)
    cat = np.where(
        rng.random(len(item_order)) < 0.6,
        fav_category[o_cust[item_order]],
        rng.integers(0, len(categories), len(item_order)),
    )
    product = cat * per_cat + rng.integers(0, per_cat, len(item_order))
    quantity = 1 + rng.poisson(0.3, len(item_order))
    unit_price = prod_price[product]
    line_amount = np.round(quantity * unit_price, 2)
    order_total = np.bincount(item_order, weights=line_amount, minlength=n_orders)

    u = rng.random(n_orders)
    status = np.where(u < 0.03, "cancelled", np.where(u < 0.08, "refunded", "delivered"))
    status_lag = np.where(status == "refunded", rng.uniform(3, 30, n_orders), rng.uniform(0.5, 7, n_orders))
    updated_t = np.minimum(o_t + status_lag, days - 1e-3)

    def ts(t: np.ndarray) -> pd.DatetimeIndex:
        # Whole seconds, as the shop database stores them.
        return day0 + pd.to_timedelta(np.floor(t * 86400), unit="s")

    cust_ids = np.array([f"c_{i:06d}" for i in range(n)])
    orders_df = pd.DataFrame(
        {
            "order_id": [f"o_{i:08d}" for i in range(n_orders)],
            "customer_id": cust_ids[o_cust],
            "status": status,
            "total_amount": np.round(order_total, 2),
            "created_at": ts(o_t),
            "updated_at": ts(updated_t),
        }
    )
    items_df = pd.DataFrame(
        {
            "order_id": orders_df["order_id"].to_numpy()[item_order],
            "line_number": line_number,
            "product_id": [f"p_{p:04d}" for p in product],
            "quantity": quantity,
            "unit_price": unit_price,
            "line_amount": line_amount,
        }
    )
    products_df = pd.DataFrame(
        {
            "product_id": [f"p_{p:04d}" for p in range(n_products)],
            "product_name": [f"{categories[c]} item {p}" for p, c in enumerate(prod_cat)],
            "category": [categories[c] for c in prod_cat],
            "price": prod_price,
        }
    )
    customers_df = pd.DataFrame(
        {
            "customer_id": cust_ids,
            "country": rng.choice(["US", "GB", "DE", "FR"], n),
            "created_at": ts(np.maximum(created, -400)),
            "acquisition_channel": np.array(CHANNELS)[channel],
        }
    )

    # Sessions: browsing sessions plus one purchase session per order (converted).
    all_s_cust = np.concatenate([s_cust, o_cust])
    all_s_t = np.concatenate([s_t, o_t - rng.uniform(0, 0.01, n_orders)])
    converted = np.concatenate([np.zeros(len(s_t), bool), np.ones(n_orders, bool)])
    all_s_t = np.maximum(all_s_t, 0.0)
    n_sess = len(all_s_t)
    duration = np.floor(rng.exponential(240, n_sess)).astype(np.int64)
    page_views = 1 + rng.poisson(2.5, n_sess)
    sessions_df = pd.DataFrame(
        {
            "session_id": [f"s_{i:09d}" for i in range(n_sess)],
            "customer_id": cust_ids[all_s_cust],
            "session_start": ts(all_s_t),
            "duration_seconds": duration,
            "page_views": page_views,
            "converted": converted,
        }
    )

    # Events: one page view at each session start, on the customer's one device. Purchase
    # sessions and half of the browsing sessions are logged in; the rest are anonymous and
    # belong to the customer only through identity stitching.
    logged_in = converted | (rng.random(n_sess) < 0.5)
    events_df = pd.DataFrame(
        {
            "event_id": [f"e_{i:09d}" for i in range(n_sess)],
            "event_name": np.where(converted, "purchase_completed", "page_viewed"),
            "event_timestamp": sessions_df["session_start"],
            "anonymous_id": np.char.add("d_", cust_ids[all_s_cust]),
            "user_id": np.where(logged_in, cust_ids[all_s_cust], None),
        }
    )

    con.register("_orders", orders_df)
    con.register("_events", events_df)
    con.register("_items", items_df)
    con.register("_products", products_df)
    con.register("_customers", customers_df)
    con.register("_sessions", sessions_df)
    for schema in ("staging", "marts"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(
        """
        CREATE OR REPLACE TABLE staging.stg_products AS
        SELECT product_id::VARCHAR AS product_id, product_name::VARCHAR AS product_name,
               category::VARCHAR AS category, price::DOUBLE AS price,
               TIMESTAMP '2020-01-01' AS updated_at
        FROM _products;
        CREATE OR REPLACE TABLE staging.stg_customers AS
        SELECT customer_id::VARCHAR AS customer_id, md5(customer_id) AS email_hash,
               country::VARCHAR AS country, created_at::TIMESTAMP AS created_at,
               created_at::TIMESTAMP AS updated_at
        FROM _customers;
        CREATE OR REPLACE TABLE staging.stg_orders AS
        SELECT order_id::VARCHAR AS order_id, customer_id::VARCHAR AS customer_id,
               status::VARCHAR AS status, 'USD' AS currency,
               total_amount::DOUBLE AS total_amount, total_amount::DOUBLE AS total_amount_usd,
               created_at::TIMESTAMP AS created_at, updated_at::TIMESTAMP AS updated_at,
               created_at::DATE AS order_date,
               status = 'cancelled' AS is_cancelled, status = 'refunded' AS is_refunded
        FROM _orders;
        CREATE OR REPLACE TABLE staging.stg_order_items AS
        SELECT order_id::VARCHAR AS order_id, line_number::BIGINT AS line_number,
               product_id::VARCHAR AS product_id, quantity::BIGINT AS quantity,
               unit_price::DOUBLE AS unit_price, line_amount::DOUBLE AS line_amount,
               line_amount::DOUBLE AS line_amount_usd
        FROM _items;
        CREATE OR REPLACE TABLE staging.stg_events AS
        SELECT event_id::VARCHAR AS event_id, event_name::VARCHAR AS event_name,
               event_timestamp::TIMESTAMP AS event_timestamp, event_timestamp::DATE AS event_date,
               event_timestamp::TIMESTAMP AS received_at, anonymous_id::VARCHAR AS anonymous_id,
               user_id::VARCHAR AS user_id, false AS is_bot
        FROM _events;
        CREATE OR REPLACE TABLE marts.fct_sessions AS
        SELECT session_id::VARCHAR AS session_id, customer_id::VARCHAR AS user_key,
               customer_id::VARCHAR AS customer_id, session_start::DATE AS session_date,
               session_start::TIMESTAMP AS session_start,
               (session_start + to_seconds(duration_seconds))::TIMESTAMP AS session_end,
               duration_seconds::BIGINT AS duration_seconds, (page_views + 1)::BIGINT AS events,
               page_views::BIGINT AS page_views, 0::BIGINT AS product_views, 0::BIGINT AS cart_adds,
               0::BIGINT AS checkouts, converted::BIGINT AS purchases,
               (duration_seconds >= 10 OR page_views >= 2 OR converted) AS is_engaged,
               NOT (duration_seconds >= 10 OR page_views >= 2 OR converted) AS is_bounce,
               converted AS converted, '/' AS landing_page, NULL::VARCHAR AS referrer,
               NULL::VARCHAR AS utm_source, NULL::VARCHAR AS utm_medium,
               NULL::VARCHAR AS utm_campaign, 'desktop' AS device_type, 'US' AS country
        FROM _sessions;
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE marts.dim_customers AS
        WITH o AS (
            SELECT customer_id, min(created_at) AS first_order_at, max(created_at) AS last_order_at,
                   count(*) AS orders_count, sum(total_amount_usd) AS gross_revenue_usd,
                   sum(CASE WHEN is_refunded THEN 0 ELSE total_amount_usd END) AS net_revenue_usd
            FROM staging.stg_orders WHERE NOT is_cancelled GROUP BY 1
        ), as_of AS (SELECT max(created_at) AS t FROM staging.stg_orders)
        SELECT c.customer_id::VARCHAR AS customer_id, md5(c.customer_id) AS email_hash,
               c.country::VARCHAR AS country, c.created_at::TIMESTAMP AS created_at,
               o.first_order_at, o.last_order_at, coalesce(o.orders_count, 0)::BIGINT AS orders_count,
               coalesce(o.gross_revenue_usd, 0)::DOUBLE AS gross_revenue_usd,
               coalesce(o.net_revenue_usd, 0)::DOUBLE AS net_revenue_usd,
               date_diff('day', o.last_order_at, as_of.t)::BIGINT AS recency_days,
               ntile(5) OVER (ORDER BY o.last_order_at NULLS FIRST)::INTEGER AS r_score,
               ntile(5) OVER (ORDER BY o.orders_count NULLS FIRST)::INTEGER AS f_score,
               ntile(5) OVER (ORDER BY o.gross_revenue_usd NULLS FIRST)::INTEGER AS m_score,
               'synthetic' AS rfm_segment, c.acquisition_channel::VARCHAR AS acquisition_channel
        FROM _customers c LEFT JOIN o USING (customer_id) CROSS JOIN as_of
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE marts.fct_daily_metrics AS
        WITH days AS (
            SELECT range::DATE AS metric_date FROM range(?::DATE, ?::DATE, INTERVAL 1 DAY)
        ), o AS (
            SELECT order_date AS metric_date, count(*) AS orders, sum(total_amount_usd) AS gross_revenue,
                   sum(CASE WHEN is_refunded THEN total_amount_usd ELSE 0 END) AS refunds
            FROM staging.stg_orders WHERE NOT is_cancelled GROUP BY 1
        ), u AS (
            SELECT o.order_date AS metric_date, sum(i.quantity) AS units
            FROM staging.stg_orders o JOIN staging.stg_order_items i USING (order_id)
            WHERE NOT o.is_cancelled GROUP BY 1
        ), s AS (
            SELECT session_date AS metric_date, count(DISTINCT user_key) AS dau, count(*) AS sessions,
                   avg(duration_seconds) AS avg_dur, avg(is_bounce::INT) AS bounce_rate,
                   avg(converted::INT) AS conversion_rate
            FROM marts.fct_sessions GROUP BY 1
        )
        SELECT d.metric_date, coalesce(s.dau, 0)::BIGINT AS dau, coalesce(s.dau, 0)::BIGINT * 3 AS wau,
               coalesce(s.dau, 0)::BIGINT * 8 AS mau, 0.125::DOUBLE AS stickiness, 0::BIGINT AS new_users,
               coalesce(s.sessions, 0)::BIGINT AS sessions,
               coalesce(s.avg_dur, 0)::DOUBLE AS avg_session_duration_seconds,
               coalesce(s.bounce_rate, 0)::DOUBLE AS bounce_rate,
               coalesce(s.conversion_rate, 0)::DOUBLE AS conversion_rate,
               coalesce(o.orders, 0)::BIGINT AS orders, coalesce(u.units, 0)::BIGINT AS units,
               coalesce(o.gross_revenue, 0)::DOUBLE AS gross_revenue, coalesce(o.refunds, 0)::DOUBLE AS refunds,
               (coalesce(o.gross_revenue, 0) - coalesce(o.refunds, 0))::DOUBLE AS net_revenue,
               (o.gross_revenue / nullif(o.orders, 0))::DOUBLE AS aov,
               ((coalesce(o.gross_revenue, 0) - coalesce(o.refunds, 0)) / nullif(s.dau, 0))::DOUBLE AS arpdau
        FROM days d LEFT JOIN o USING (metric_date) LEFT JOIN u USING (metric_date) LEFT JOIN s USING (metric_date)
        ORDER BY 1
        """,
        [start, start + dt.timedelta(days=days)],
    )
    for name in ("_orders", "_items", "_products", "_customers", "_sessions", "_events"):
        con.unregister(name)

    end = start + dt.timedelta(days=days)
    churned = churn_day < days
    truth = {
        "format": "nightjar-ml-synthetic/1",
        "as_of": end.isoformat(),
        "customers": {
            cid: {
                "churned": bool(c),
                "churn_date": (start + dt.timedelta(days=float(d))).isoformat() if c else None,
                "engagement": round(float(e), 4),
            }
            for cid, c, d, e in zip(cust_ids, churned, churn_day, engagement)
        },
    }
    if ground_truth_path is not None:
        ground_truth_path.write_text(json.dumps(truth))
    return SyntheticShop(start, end, n, n_orders, n_sess, truth)
