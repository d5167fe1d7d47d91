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
        features={"features": result.model["features"], "channels": result.model["channels"], "config": dataclasses.asdict(cfg)},
        training_window={**result.training_window, "orders_from": first, "orders_observed_until": observed_end},
        data_fingerprint=data_fingerprint(con, INPUT_TABLES),
        files=files,
        extra={"status": "candidate", "estimator": "HistGradientBoostingClassifier + CalibratedClassifierCV(sigmoid)"},
    )
    plot_paths = {
        "reliability": plots.reliability_plot(result.reliability, mv.path / "plots" / "reliability.png"),
        "lift": plots.lift_plot(result.lift, mv.path / "plots" / "lift.png"),
    }
    return TrainOutcome(result, mv, plot_paths)


def gate_and_promote(registry: ModelRegistry, version: str) -> dict[str, Any]:
    """Read the candidate's gate verdict; promote it when it passed. Returns the verdict."""
    mv = registry.get(CHURN_MODEL, version)
    decision = mv.metrics["gate"]
    if decision["passed"]:
        registry.promote(CHURN_MODEL, version, decision)
    return decision


def score_with_promoted(
    con: duckdb.DuckDBPyConnection,
    registry: ModelRegistry,
    as_of: dt.date | None = None,
) -> tuple[pd.DataFrame, ModelVersion]:
    mv = registry.promoted(CHURN_MODEL)
    if mv is None:
        raise NoPromotedModel("no churn model has passed the promotion gate yet")
    model = mv.load_joblib()
    cfg = ChurnConfig(**mv.features["config"])  # score with the settings it was trained with
    scores = score_customers(con, model, mv.version, cfg, as_of=as_of or scoring_cutoff(con))
    write_scores(con, scores)
    return scores, mv
