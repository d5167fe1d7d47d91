"""Nightly scoring: every current customer gets a calibrated churn probability and a band."""
from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ml.churn.config import ChurnConfig
from ml.churn.features import build_features
from ml.churn.train import predict
from ml.warehouse import write_table

CHURN_SCORES_TABLE = "ml.churn_scores"
CHURN_SCORES_COLUMNS = {
    "customer_id": "VARCHAR",
    "score": "DOUBLE",
    "band": "VARCHAR",
    "model_version": "VARCHAR",
    "scored_at": "TIMESTAMP",
}


def scoring_cutoff(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The day after the last observed order or session: scores use everything we have."""
    last = con.execute(
        """
        SELECT greatest((SELECT max(created_at) FROM staging.stg_orders),
                        (SELECT max(session_start) FROM marts.fct_sessions))
        """
    ).fetchall()[0][0]
    return last.date() + dt.timedelta(days=1)


def current_customers(con: duckdb.DuckDBPyConnection, as_of: dt.date, cfg: ChurnConfig) -> list[str]:
    """Current customers = the churn population at ``as_of``: >= 1 order in the lookback window.

    Customers without an order in the last ``lookback_days`` have already churned by the
    definition and are not scored (they are not "current").
    """
    rows = con.execute(
        """
        SELECT DISTINCT customer_id FROM staging.stg_orders
        WHERE created_at < ?::TIMESTAMP AND created_at >= ?::TIMESTAMP - to_days(?::INT)
          AND NOT (is_cancelled AND updated_at < ?::TIMESTAMP)
        ORDER BY 1
        """,
        [as_of, as_of, cfg.lookback_days, as_of],
    ).fetchall()
    return [r[0] for r in rows]


def band(score: np.ndarray, cfg: ChurnConfig) -> np.ndarray:
    # Fixed thresholds on a *calibrated* probability mean the same thing across model versions.
    return np.where(score >= cfg.band_high, "high", np.where(score >= cfg.band_low, "medium", "low"))


def score_customers(
    con: duckdb.DuckDBPyConnection,
    model: dict[str, Any],
    model_version: str,
    cfg: ChurnConfig = ChurnConfig(),
    as_of: dt.date | None = None,
    scored_at: dt.datetime | None = None,
) -> pd.DataFrame:
    as_of = as_of or scoring_cutoff(con)
    scored_at = scored_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    ids = current_customers(con, as_of, cfg)
    feats = build_features(con, pd.DataFrame({"cutoff": [as_of] * len(ids), "customer_id": ids}))
    p = predict(model, feats) if len(feats) else np.array([], float)
    return pd.DataFrame(
        {
            "customer_id": feats["customer_id"].astype(str),
            "score": p,
            "band": band(p, cfg),
            "model_version": model_version,
            "scored_at": pd.Timestamp(scored_at),
        }
    )


def write_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> int:
    return write_table(con, CHURN_SCORES_TABLE, scores, CHURN_SCORES_COLUMNS)
