"""The ML assets materialised by Dagster on a temporary DuckDB warehouse."""
from __future__ import annotations

import duckdb
import dagster as dg

from dagster_project.ml.assets import (
    CHURN_CANDIDATE,
    CHURN_SCORES,
    DEMAND_FORECAST,
    FORECAST_ACCURACY,
    FORECAST_BACKTEST,
    ML_ASSETS,
    ML_GROUP,
)
from dagster_project.ml.checks import ML_CHECKS
from dagster_project.ml.defs import defs as ml_defs
from dagster_project.resources import WarehouseResource
from ml.registry import ModelRegistry
from ml_synthetic import build_synthetic_warehouse
from nightjar.settings import get_settings

GATE = dg.AssetCheckKey(CHURN_CANDIDATE, "churn_promotion_gate")
SMALL_BACKTEST = {"ops": {"ml__demand_forecast_backtest": {"config": {"max_folds": 2}}}}


def _materialize(selection, run_config=None, instance=None):
    return dg.materialize(
        [*ML_ASSETS, *ML_CHECKS],
        selection=selection,
        resources={"warehouse": WarehouseResource()},
        run_config=run_config or {},
        raise_on_error=False,
        instance=instance,
    )


def _check(result, key: dg.AssetCheckKey):
    evals = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == key]
    assert len(evals) == 1, evals
    return evals[0]


def _metadata(result, key: dg.AssetKey) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    assert len(events) == 1
    return {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}


# `data_dir` (tests/conftest.py) points every NIGHTJAR_* setting at a fresh temp directory.


def test_definitions_shape():
    # As definitions.py merges it: the shared warehouse resource plus the ml domain.
    graph = dg.Definitions.merge(dg.Definitions(resources={"warehouse": WarehouseResource()}), ml_defs).resolve_asset_graph()
    for key in (CHURN_CANDIDATE, CHURN_SCORES, FORECAST_BACKTEST, DEMAND_FORECAST, FORECAST_ACCURACY):
        node = graph.get(key)
        assert node.group_name == ML_GROUP and node.owners == ["team:ml"]
        assert node.pools == {"duckdb_warehouse"}
    assert dg.AssetKey(["marts", "dim_customers"]) in graph.get(CHURN_CANDIDATE).parent_keys
    assert dg.AssetKey(["marts", "fct_daily_metrics"]) in graph.get(DEMAND_FORECAST).parent_keys
    assert FORECAST_BACKTEST in graph.get(DEMAND_FORECAST).parent_keys
    assert CHURN_CANDIDATE in graph.get(CHURN_SCORES).parent_keys
    assert graph.get(CHURN_CANDIDATE).automation_condition is not None
    gate = next(c for c in ML_CHECKS if GATE in c.check_keys)
    assert gate.check_specs_by_output_name and all(s.blocking for s in gate.check_specs)


def test_ml_assets_materialise_and_gate(data_dir):
    settings = get_settings()
    con = duckdb.connect(str(settings.warehouse))
    build_synthetic_warehouse(
        con, customers=1500, days=520, seed=4, categories=["books", "toys"], ground_truth_path=settings.ground_truth_file
    )
    con.close()
    instance = dg.DagsterInstance.ephemeral()

    # Training night: candidate + gate (the check promotes it), then scores in the same run.
    res = _materialize(dg.AssetSelection.assets(CHURN_CANDIDATE, CHURN_SCORES), instance=instance)
    assert res.success
    gate = _check(res, GATE)
    assert gate.passed and "promoted" in gate.description
    cand = _metadata(res, CHURN_CANDIDATE)
    assert cand["gate_passed"] is True and cand["roc_auc"] > 0.75 and cand["champion"] == "candidate"
    assert 0 < cand["gate_auc_gain_interval"]["low"] <= cand["gate_auc_gain"] <= cand["gate_auc_gain_interval"]["high"]
    assert len(cand["evaluation_cutoffs"]) == 3 and set(cand["bgnbd_params"]) == set(cand["evaluation_cutoffs"])
    assert {"r", "alpha", "a", "b"} <= set(cand["bgnbd_params"][cand["evaluation_cutoffs"][-1]])
    gate_meta = {k: getattr(v, "value", v) for k, v in gate.metadata.items()}
    assert gate_meta["decision"] == "promoted" and gate_meta["auc_gain_interval_low"] > 0
    assert "data:image/png;base64," in cand["reliability_curve"]
    registry = ModelRegistry(settings.artifacts_dir / "models")
    assert registry.promoted("churn").version == cand["model_version"]
    assert (registry.promoted("churn").path / "plots" / "lift.png").exists()
    # the first run that trains also scores, with the model its gate just promoted
    assert _metadata(res, CHURN_SCORES)["model_version"] == cand["model_version"]
    assert _metadata(res, CHURN_SCORES)["model_kind"] == "candidate"

    # Nightly: scores with the promoted model, forecasts, accuracy.
    res = _materialize(
        dg.AssetSelection.assets(CHURN_SCORES, FORECAST_BACKTEST, DEMAND_FORECAST, FORECAST_ACCURACY),
        SMALL_BACKTEST, instance,
    )
    assert res.success
    assert _check(res, dg.AssetCheckKey(DEMAND_FORECAST, "forecast_is_well_formed")).passed
    scores_meta = _metadata(res, CHURN_SCORES)
    assert scores_meta["model_version"] == cand["model_version"]
    assert scores_meta["ground_truth"]["latent_roc_auc"] > 0.8
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        cols = [r[0] for r in con.execute("DESCRIBE ml.churn_scores").fetchall()]
        assert cols == ["customer_id", "score", "band", "model_kind", "model_version", "scored_at"]
        n, lo, hi, versions = con.execute(
            "SELECT count(*), min(score), max(score), count(DISTINCT model_version) FROM ml.churn_scores"
        ).fetchall()[0]
        assert n == scores_meta["dagster/row_count"] > 100 and 0 <= lo < hi <= 1 and versions == 1
        fc_cols = [r[0] for r in con.execute("DESCRIBE ml.demand_forecast").fetchall()]
        assert fc_cols == [
            "series_id", "metric", "forecast_date", "yhat", "yhat_lower", "yhat_upper", "model", "model_version",
            "generated_at",
        ]
        per_series = dict(con.execute("SELECT series_id || '/' || metric, count(*) FROM ml.demand_forecast GROUP BY 1").fetchall())
        assert per_series == {s: 28 for s in ["total/orders", "total/units", "total/net_revenue", "category:books/units", "category:toys/units"]}
        champions = _metadata(res, FORECAST_BACKTEST)["champions"]
        published = dict(con.execute("SELECT DISTINCT series_id || '/' || metric, model FROM ml.demand_forecast").fetchall())
        assert published == champions  # Prophet only where it won the backtest
        assert con.execute("SELECT count(*), count(actual) FROM ml.forecast_accuracy").fetchall()[0] == (140, 0)

    # A candidate that does not win — here without the session features it cannot beat BG/NBD:
    # the check refuses it (a warning, so the run goes on) and the best baseline of the same
    # evaluation scores, in the same run.
    res = _materialize(
        dg.AssetSelection.assets(CHURN_CANDIDATE, CHURN_SCORES),
        {"ops": {"ml__churn_candidate": {"config": {"use_session_features": False}}}},
        instance,
    )
    assert res.success
    gate = _check(res, GATE)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    assert "refused candidate" in gate.description and "ROC-AUC" in gate.description
    weak = _metadata(res, CHURN_CANDIDATE)
    assert weak["gate_passed"] is False and weak["champion"] in {"bgnbd", "logistic_rfm", "days_since_last_order"}
    assert weak["gate_auc_gain_interval"]["low"] <= 0 or weak["gate_auc_gain"] < 0.02
    assert registry.promoted("churn").version == weak["model_version"]
    scores_meta = _metadata(res, CHURN_SCORES)
    assert scores_meta["model_kind"] == weak["champion"] and scores_meta["model_version"] == weak["model_version"]
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        kinds = con.execute("SELECT DISTINCT model_kind, model_version FROM ml.churn_scores").fetchall()
        assert kinds == [(weak["champion"], weak["model_version"])]
        assert con.execute("SELECT count(*) FROM ml.churn_scores WHERE score BETWEEN 0 AND 1").fetchone()[0] > 100


def test_too_little_history_is_a_skip_not_a_failure(data_dir):
    settings = get_settings()
    con = duckdb.connect(str(settings.warehouse))
    build_synthetic_warehouse(con, customers=150, days=60, seed=8, categories=["books"])
    con.close()
    res = _materialize(dg.AssetSelection.groups(ML_GROUP))
    assert res.success
    cand = _metadata(res, CHURN_CANDIDATE)
    assert cand["skipped"] is True and "cutoff" in cand["skip_reason"]
    gate = _check(res, GATE)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    assert _metadata(res, CHURN_SCORES)["skip_reason"] == "no churn model has passed evaluation yet"
    bt = _metadata(res, FORECAST_BACKTEST)
    assert bt["skipped"] is True and "history" in bt["skip_reason"]
    # 60 days is enough to publish a seasonal-naive forecast, not to backtest one.
    fc = _metadata(res, DEMAND_FORECAST)
    assert fc["dagster/row_count"] == 28 * 4
    assert set(fc["models"].values()) == {"seasonal_naive"}
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='ml'").fetchall()}
    assert "churn_scores" not in tables and "demand_forecast" in tables


def test_a_tampered_promoted_model_fails_the_scoring_asset(data_dir):
    settings = get_settings()
    con = duckdb.connect(str(settings.warehouse))
    build_synthetic_warehouse(con, customers=150, days=60, seed=8, categories=["books"])
    con.close()
    registry = ModelRegistry(settings.artifacts_dir / "models")
    version = "20240101T000000000000Z"
    mv = registry.save("churn", version, model={"estimator": None}, metrics={}, features={"config": {}},
                       training_window={}, data_fingerprint="f")
    registry.promote("churn", version, {"passed": True, "reasons": ["ok"]})
    (mv.path / "model.joblib").write_bytes((mv.path / "model.joblib").read_bytes() + b"tampered")

    res = _materialize(dg.AssetSelection.assets(CHURN_SCORES))
    assert not res.success  # a failure, not a skip
    (failure,) = [e for e in res.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "ModelIntegrityError" in str(failure.event_specific_data.error)
    assert "changed after registration" in str(failure.event_specific_data.error)
    assert not [e for e in res.get_asset_materialization_events() if e.asset_key == CHURN_SCORES]
