"""Churn train -> register -> gate -> score, as plain functions (Dagster assets and the benchmark call these)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ml import plots
from ml.churn.config import ChurnConfig
from ml.churn.labels import observed_range
from ml.churn.score import score_customers, scoring_cutoff, write_scores
from ml.churn.train import INPUT_TABLES, ChurnTrainResult, train_churn
from ml.registry import ModelRegistry, ModelVersion, new_version
from ml.warehouse import data_fingerprint, missing_tables

CHURN_MODEL = "churn"


class NoPromotedModel(Exception):
    pass


@dataclass
class TrainOutcome:
    result: ChurnTrainResult
    version: ModelVersion
    plots: dict[str, Path]


def missing_inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    return missing_tables(con, INPUT_TABLES)


def train_and_register(
    con: duckdb.DuckDBPyConnection, registry: ModelRegistry, cfg: ChurnConfig = ChurnConfig()
) -> TrainOutcome:
    """Train a candidate and save it (not promoted: only the gate moves the pointer).

    Raises TooLittleHistory when the data cannot support the temporal split.
    """
    result = train_churn(con, cfg)
    version = new_version()
    first, observed_end = observed_range(con)
    metrics: dict[str, Any] = {
        "test": result.metrics,
        "baselines": result.baselines,
        "gate": result.gate,
        "rows": result.rows,
        "inter_purchase_gaps": result.gaps,
        "horizon_days": result.config.horizon_days,
        "bgnbd_params": result.bgnbd_params,
        "dropped_features": result.dropped_features,
        "notes": result.notes,
    }
    files = {
        "reliability.csv": pd.concat([c.assign(model=k) for k, c in result.reliability.items()]).to_csv(index=False),
        "lift.csv": pd.concat([d.assign(model=k) for k, d in result.lift.items()]).to_csv(index=False),
        "gate.json": pd.Series(result.gate).to_json(),
    }
    mv = registry.save(
        CHURN_MODEL,
        version,
        model=result.model,
        metrics=metrics,
        features={
            "features": result.model["features"],
            "dropped_features": result.dropped_features,
            "channels": result.model["candidate"]["channels"],
            # the resolved settings (H included): scoring uses exactly these
            "config": dataclasses.asdict(result.config),
        },
        training_window={**result.training_window, "orders_from": first, "orders_observed_until": observed_end},
        data_fingerprint=data_fingerprint(con, INPUT_TABLES),
        files=files,
        extra={
            "status": "candidate",
            "estimator": "HistGradientBoostingClassifier + CalibratedClassifierCV(sigmoid)",
            "model_kinds": ["candidate", *result.baselines],
        },
    )
    plot_paths = {
        "reliability": plots.reliability_plot(result.reliability, mv.path / "plots" / "reliability.png"),
        "lift": plots.lift_plot(result.lift, mv.path / "plots" / "lift.png"),
    }
    return TrainOutcome(result, mv, plot_paths)


def gate_and_promote(registry: ModelRegistry, version: str) -> dict[str, Any]:
    """Read the candidate's verdict and point the registry at its champion.

    Passed: the candidate is promoted. Refused: the best baseline of the same evaluation is
    (it is saved in the same version), so a shop where the candidate does not win still gets
    scores from the best model that was evaluated. No champion (no baseline beats the base
    rate's Brier): the pointer stays where it was. Returns the verdict.
    """
    mv = registry.get(CHURN_MODEL, version)
    decision = mv.metrics["gate"]
    champion = decision.get("champion") or ("candidate" if decision["passed"] else None)
    if champion:
        registry.promote(CHURN_MODEL, version, decision, model_kind=champion)
    return decision


def promoted_kind(registry: ModelRegistry) -> str | None:
    record = registry.promoted_record(CHURN_MODEL)
    return record.get("model_kind", "candidate") if record else None


def score_with_promoted(
    con: duckdb.DuckDBPyConnection,
    registry: ModelRegistry,
    as_of: dt.date | None = None,
) -> tuple[pd.DataFrame, ModelVersion]:
    mv = registry.promoted(CHURN_MODEL)
    if mv is None:
        raise NoPromotedModel("no churn model has passed evaluation yet")
    kind = promoted_kind(registry)
    model = mv.load_joblib()
    known = {f.name for f in dataclasses.fields(ChurnConfig)}
    saved = mv.features["config"]
    # score with the settings it was trained with (H included); settings this code lacks are ignored
    cfg = ChurnConfig(**{k: v for k, v in saved.items() if k in known})
    scores = score_customers(con, model, mv.version, cfg, as_of=as_of or scoring_cutoff(con), model_kind=kind)
    write_scores(con, scores)
    return scores, mv
