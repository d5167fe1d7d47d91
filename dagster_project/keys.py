"""Asset keys shared by the dlt ingestion assets and the dbt sources.

One function produces the key of every raw table, so that a dbt `source('raw', 'x')`
and the ingestion asset that loads `raw.x` are the same node in the lineage graph.
"""
from __future__ import annotations

import dagster as dg

RAW_SCHEMA = "raw"


def table_key(qualified_table: str) -> dg.AssetKey:
    """`schema.table` -> the asset key of that warehouse table (`schema/table`)."""
    return dg.AssetKey(qualified_table.split("."))


def raw_asset_key(table: str, schema: str = RAW_SCHEMA) -> dg.AssetKey:
    return table_key(f"{schema}.{table}")


# Keys of the dbt models other domains depend on (the dbt translator names them the same way).
DIM_CUSTOMERS = table_key("marts.dim_customers")
FCT_SESSIONS = table_key("marts.fct_sessions")
FCT_DAILY_METRICS = table_key("marts.fct_daily_metrics")
FCT_RETENTION_WEEKLY = table_key("marts.fct_retention_weekly")
FCT_FUNNEL_DAILY = table_key("marts.fct_funnel_daily")
STG_EVENTS = table_key("staging.stg_events")
FCT_CHANNEL_DAILY = table_key("marts.fct_channel_daily")
STG_ORDERS = table_key("staging.stg_orders")
STG_ORDER_ITEMS = table_key("staging.stg_order_items")
STG_PRODUCTS = table_key("staging.stg_products")
# The data-quality measures the dq_* alert rules watch (dbt_project/models/monitoring).
DQ_TABLES = tuple(table_key(f"monitoring.{name}") for name in (
    "dq_event_volume", "dq_event_quality", "dq_rejects", "dq_late_files", "dq_schema_drift", "dq_shop_changes"))

# Assets written by Python.
CHURN_CANDIDATE = table_key("ml.churn_candidate")
CHURN_SCORES = table_key("ml.churn_scores")
CUSTOMER_VALUE = table_key("ml.customer_value")
FORECAST_BACKTEST = table_key("ml.demand_forecast_backtest")
DEMAND_FORECAST = table_key("ml.demand_forecast")
FORECAST_ACCURACY = table_key("ml.forecast_accuracy")
ALERT_EVENTS = table_key("alerts.alert_events")
KPI_REPORT = table_key("reports.kpi_report")

# Assets tagged weekly (model retraining) are left out of the nightly job and follow their
# own automation condition.
CADENCE_TAG = "nightjar/cadence"
CADENCE_WEEKLY = {CADENCE_TAG: "weekly"}
