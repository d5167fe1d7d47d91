"""Fit the CLV models on all orders, score every customer into ml.customer_value, register
the fit, and evaluate the same method on a temporal holdout for the record."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from ml.registry import ModelRegistry, ModelVersion, new_version
from ml.value import clv, history
from ml.value.evaluate import Evaluation, evaluate
from ml.warehouse import data_fingerprint, missing_tables, write_table

MODEL_NAME = "customer_value"
TABLE = "ml.customer_value"
COLUMNS = {
    "customer_id": "VARCHAR",
    "order_days": "BIGINT",
    "historical_revenue": "DOUBLE",
    "p_alive": "DOUBLE",
    "predicted_purchases": "DOUBLE",
    "predicted_avg_order_value": "DOUBLE",
    "predicted_clv": "DOUBLE",
    "horizon_days": "INTEGER",
    "aov_model": "VARCHAR",
    "model_version": "VARCHAR",
    "as_of": "DATE",
    "scored_at": "TIMESTAMP",
}
DEFAULT_HORIZON_DAYS = 365
# The holdout evaluation needs calibration history too: it uses at most half the order span.
MIN_EVAL_HORIZON_DAYS = 28


def missing_inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    return missing_tables(con, history.INPUT_TABLES)


@dataclass
class CLVOutput:
    scores: pd.DataFrame
    model: clv.CLVModel
    version: ModelVersion
    as_of: dt.date
    evaluation: Evaluation | None
    evaluation_note: str


def holdout_evaluation(con: duckdb.DuckDBPyConnection, horizon_days: int, max_abs_correlation: float) -> tuple[Evaluation | None, str]:
    """Evaluate on the latest fully observed holdout of min(horizon, half the order span) days."""
    first, last = history.order_span(con)
    span = (last - first).days + 1 if last else 0
    eval_horizon = min(horizon_days, span // 2)
    if eval_horizon < MIN_EVAL_HORIZON_DAYS:
        return None, f"not evaluated: {span} days of orders leave no {MIN_EVAL_HORIZON_DAYS}-day holdout"
    cutoff = last + dt.timedelta(days=1 - eval_horizon)
    try:
        ev = evaluate(con, cutoff, eval_horizon, max_abs_correlation)
    except clv.TooLittleHistory as exc:
        return None, f"not evaluated: {exc}"
    note = "" if eval_horizon == horizon_days else f"holdout shortened to {eval_horizon} days (half the order span)"
    return ev, note


def score_and_register(con: duckdb.DuckDBPyConnection, registry: ModelRegistry, horizon_days: int = DEFAULT_HORIZON_DAYS,
                       max_abs_correlation: float = clv.MAX_ABS_CORRELATION) -> CLVOutput:
    """Fit on every order, write one row per customer to ml.customer_value. Raises
    ``clv.TooLittleHistory`` when the shop has too few (repeat) customers."""
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    _, last = history.order_span(con)
    if last is None:
        raise clv.TooLittleHistory("staging.stg_orders is empty")
    as_of = last + dt.timedelta(days=1)  # score as of the end of the last day with orders
    summary = history.summary_at(con, as_of)
    model = clv.fit(summary, max_abs_correlation)
    evaluation, eval_note = holdout_evaluation(con, horizon_days, max_abs_correlation)
    version = registry.save(
        MODEL_NAME, new_version(),
        metrics={"evaluation": evaluation.metrics if evaluation else None, "evaluation_note": eval_note,
                 **({"evaluation_cutoff": evaluation.cutoff.isoformat(), "evaluation_horizon_days": evaluation.horizon_days}
                    if evaluation else {})},
        features={"inputs": ["order_days", "first_order_age_days", "recency_days", "repeat_value"]},
        training_window={"orders_before": as_of.isoformat()},
        data_fingerprint=data_fingerprint(con, history.INPUT_TABLES),
        extra={"params": model.describe(), "horizon_days": horizon_days},
    )
    scores = clv.predict(model, summary, horizon_days)
    scores["horizon_days"] = horizon_days
    scores["aov_model"] = model.aov_model
    scores["model_version"] = version.version
    scores["as_of"] = as_of
    scores["scored_at"] = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    write_table(con, TABLE, scores, COLUMNS)
    return CLVOutput(scores, model, version, as_of, evaluation, eval_note)
