"""Nightly scoring: every current customer gets a churn probability and a band from the champion.

The champion is the candidate when its gate passed, otherwise the best baseline of the same
evaluation (``model_kind``); every kind outputs a probability of the label, so bands mean
the same thing whichever model scored.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ml.churn import bgnbd
from ml.churn.config import ChurnConfig
from ml.churn.features import build_features
from ml.churn.labels import horizon
from ml.churn.train import MODEL_KINDS, bgnbd_churn_probability, fit_bgnbd, predict, recency_input, rfm_input
from ml.warehouse import write_table

log = logging.getLogger(__name__)

CHURN_SCORES_TABLE = "ml.churn_scores"
CHURN_SCORES_COLUMNS = {
    "customer_id": "VARCHAR",
    "score": "DOUBLE",
    "band": "VARCHAR",
    "model_kind": "VARCHAR",
    "model_version": "VARCHAR",
    "scored_at": "TIMESTAMP",
}


def scoring_cutoff(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The day after the last observed order or event: scores use everything we have."""
    last = con.execute(
        """
        SELECT greatest((SELECT max(created_at) FROM staging.stg_orders),
                        (SELECT max(event_timestamp) FROM staging.stg_events))
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


def model_of_kind(bundle: dict[str, Any], kind: str) -> Any:
    """The fitted model of ``kind`` in a saved bundle (a candidate-only bundle keeps the
    candidate's parts at its top level)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown churn model kind {kind!r} (known: {', '.join(MODEL_KINDS)})")
    if kind == "candidate" and "estimator" in bundle:
        return bundle
    if kind not in bundle:
        raise KeyError(f"the saved churn model has no {kind!r} part (it has {', '.join(sorted(bundle))})")
    return bundle[kind]


def score_kind(
    con: duckdb.DuckDBPyConnection, bundle: dict[str, Any], kind: str, feats: pd.DataFrame, as_of: dt.date,
    cfg: ChurnConfig,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(probabilities, notes) of the model ``kind`` for the rows of ``feats`` (features at ``as_of``)."""
    model = model_of_kind(bundle, kind)
    if kind == "candidate":
        return predict(model, feats, cfg.n_threads), {}
    if kind == "days_since_last_order":
        return model.predict_proba(recency_input(feats))[:, 1], {}
    if kind == "logistic_rfm":
        return model.predict_proba(rfm_input(feats))[:, 1], {}
    # BG/NBD is unsupervised: as in its evaluation, it is refitted on the history before the
    # scoring cutoff; the parameters saved at training are the fallback if that fit fails.
    try:
        params = fit_bgnbd(con, as_of, cfg.max_bgnbd_fit_rows, cfg.random_state)
        info = {"bgnbd_params": params.as_dict(), "bgnbd_fitted_at": as_of.isoformat()}
    except bgnbd.BGNBDFitError as exc:
        params = bgnbd.BGNBDParams(**model["params"])
        info = {"bgnbd_params": params.as_dict(), "bgnbd_fallback": f"saved parameters used: {exc}"}
        log.warning("churn scoring: %s", info["bgnbd_fallback"])
    return bgnbd_churn_probability(params, feats, horizon(cfg)), info


def score_customers(
    con: duckdb.DuckDBPyConnection,
    model: dict[str, Any],
    model_version: str,
    cfg: ChurnConfig = ChurnConfig(),
    as_of: dt.date | None = None,
    scored_at: dt.datetime | None = None,
    model_kind: str = "candidate",
) -> pd.DataFrame:
    as_of = as_of or scoring_cutoff(con)
    scored_at = scored_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    ids = current_customers(con, as_of, cfg)
    feats = build_features(con, pd.DataFrame({"cutoff": [as_of] * len(ids), "customer_id": ids}))
    p, info = score_kind(con, model, model_kind, feats, as_of, cfg) if len(feats) else (np.array([], float), {})
    out = pd.DataFrame(
        {
            "customer_id": feats["customer_id"].astype(str),
            "score": p,
            "band": band(p, cfg),
            "model_kind": model_kind,
            "model_version": model_version,
            "scored_at": pd.Timestamp(scored_at),
        }
    )
    out.attrs["scoring"] = info
    return out


def write_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> int:
    return write_table(con, CHURN_SCORES_TABLE, scores, CHURN_SCORES_COLUMNS)
