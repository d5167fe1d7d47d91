"""ML assets: churn training/evaluation and scoring, demand-forecast backtest, publication and accuracy.

The work happens in ``ml/`` (no Dagster there); these assets open the warehouse, call it,
and turn the results into metadata (metrics, gate verdicts, plots) for the UI.

Scheduling:
* training-like assets (``churn_candidate``, ``demand_forecast_backtest``) are tagged
  weekly and carry an automation condition: run when the marts they read were updated,
  and at least weekly;
* scoring-like assets (``churn_scores``, ``customer_value``, ``demand_forecast``,
  ``forecast_accuracy``) run in
  the nightly job, which selects everything not tagged weekly.
``churn_scores`` scores with the *promoted* model. It depends on ``churn_candidate`` so that
a run that trains (the first `nightjar run`) scores with the model its gate just promoted;
the nightly job does not select the candidate, so there a refused candidate never stops
the scores (the previous model stays in use).
"""

from contextlib import contextmanager
from typing import Optional

import dagster as dg

from dagster_project.keys import (
    CADENCE_WEEKLY, CHURN_CANDIDATE, CHURN_SCORES, CUSTOMER_VALUE, DEMAND_FORECAST, DIM_CUSTOMERS, FCT_DAILY_METRICS, FORECAST_ACCURACY,
    FORECAST_BACKTEST, STG_EVENTS, STG_ORDER_ITEMS, STG_ORDERS, STG_PRODUCTS,
)
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource

ML_GROUP = "ml"
OWNERS = ["team:ml"]

# Sessions are rebuilt from stg_events with the identity stitching known at each cutoff
# (ml/churn/features.py), not read from fct_sessions.
CHURN_DEPS = [DIM_CUSTOMERS, STG_EVENTS, STG_ORDERS, STG_ORDER_ITEMS, STG_PRODUCTS]
FORECAST_DEPS = [FCT_DAILY_METRICS, STG_ORDERS, STG_ORDER_ITEMS, STG_PRODUCTS]

# Retrain when any upstream mart was updated, and in any case every Monday 04:00 UTC.
RETRAIN = (
    # eager() alone never fires below daily-partitioned dbt models: every unbuilt partition
    # since NIGHTJAR_PARTITIONS_START counts as a missing dependency.
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    | (dg.AutomationCondition.cron_tick_passed("0 4 * * 1", "UTC") & ~dg.AutomationCondition.in_progress())
).with_label("marts updated or weekly")


class ChurnTrainConfig(dg.Config):
    # None: NIGHTJAR_CHURN_HORIZON_DAYS, else derived from the inter-purchase gaps (p90
    # rounded up to 30 days, 30..365).
    horizon_days: Optional[int] = None
    # None: NIGHTJAR_CHURN_CHECK_HORIZON (default true).
    check_horizon: Optional[bool] = None
    lookback_days: int = 365
    n_train_cutoffs: int = 6
    n_eval_cutoffs: int = 3
    min_auc_gain: float = 0.02
    n_bootstrap: int = 200
    use_session_features: bool = True


class CustomerValueConfig(dg.Config):
    # Days ahead that predicted purchases and CLV cover; the holdout evaluation uses the same
    # length (at most half the order history).
    horizon_days: int = 365
    # |corr(frequency, mean spend)| above which Gamma-Gamma is not used (ml/value/clv.py).
    max_abs_correlation: float = 0.3


class ForecastConfig(dg.Config):
    max_folds: int = 8
    seed: int = 0
    country_holidays: str = "US"
    horizon_days: int = 28


def _registry(warehouse: WarehouseResource):
    from ml.registry import ModelRegistry

    return ModelRegistry(warehouse.settings().artifacts_dir / "models")


def _skip(reason: str, **extra) -> dg.MaterializeResult:
    # Too little history is a normal state of a young shop: record why, do not fail the run.
    return dg.MaterializeResult(metadata={"skipped": True, "skip_reason": reason, **extra})


def _png(path) -> dg.MetadataValue:
    from ml.plots import png_markdown

    return dg.MetadataValue.md(png_markdown(path))


def _ml_asset(*, retrain: bool = False, **kwargs):
    """`dg.asset` with the group, owners and pool of every ML asset; `retrain=True` for the
    training-like ones."""
    if retrain:
        # Retraining follows its own automation; the nightly job only scores and forecasts.
        kwargs.update(automation_condition=RETRAIN, tags=CADENCE_WEEKLY)
    return dg.asset(group_name=ML_GROUP, owners=OWNERS, pool=WAREHOUSE_POOL, **kwargs)


@contextmanager
def _inputs(warehouse: WarehouseResource, missing_inputs, read_only: bool = False):
    """Yield `(connection, None)`, or `(None, reason)` when the asset must skip: no
    warehouse yet (connecting would create an empty one), or input tables missing."""
    if not warehouse.path.exists():
        yield None, f"no warehouse at {warehouse.path}"
        return
    with warehouse.connect(read_only=read_only) as con:
        missing = missing_inputs(con)
        yield (None, f"input tables missing: {', '.join(missing)}") if missing else (con, None)


@_ml_asset(
    key=CHURN_CANDIDATE,
    deps=CHURN_DEPS,
    kinds={"sklearn", "duckdb"},
    retrain=True,
    description=(
        "Trains a churn candidate (HistGradientBoosting + sigmoid calibration) and three baselines "
        "(days since last order, logistic RFM, BG/NBD) on monthly cutoffs, evaluates them on the 3 "
        "latest fully observed cutoffs and saves them to the registry. The check "
        "`churn_promotion_gate` picks the champion that scores: the candidate or the best baseline."
    ),
)
def churn_candidate(context: dg.AssetExecutionContext, config: ChurnTrainConfig, warehouse: WarehouseResource):
    from ml.churn.config import ChurnConfig, TooLittleHistory
    from ml.churn.labels import HorizonMismatch
    from ml.churn.report import metrics_markdown
    from ml.churn.pipeline import missing_inputs, train_and_register

    settings = warehouse.settings()
    cfg = ChurnConfig(
        horizon_days=config.horizon_days if config.horizon_days is not None else settings.churn_horizon_days,
        check_horizon=config.check_horizon if config.check_horizon is not None else settings.churn_check_horizon,
        lookback_days=config.lookback_days,
        n_train_cutoffs=config.n_train_cutoffs, n_eval_cutoffs=config.n_eval_cutoffs,
        min_auc_gain=config.min_auc_gain, n_bootstrap=config.n_bootstrap,
        use_session_features=config.use_session_features,
    )
    with _inputs(warehouse, missing_inputs, read_only=True) as (con, skip):
        if skip:
            return _skip(skip)
        try:
            out = train_and_register(con, _registry(warehouse), cfg)
        except TooLittleHistory as exc:
            context.log.warning("churn training skipped: %s", exc)
            return _skip(str(exc))
        except HorizonMismatch as exc:
            # a label window that does not fit the shop is a configuration error: say what to set
            raise dg.Failure(description=str(exc)) from None
    r = out.result
    cand = r.metrics["candidate"]
    gate = r.gate
    interval = gate.get("checks", {}).get("auc_difference_interval", {})
    for note in r.notes:
        context.log.info(note)
    return dg.MaterializeResult(
        metadata={
            "model_version": out.version.version,
            "model_path": dg.MetadataValue.path(str(out.version.path)),
            "roc_auc": cand["roc_auc"],
            "pr_auc": cand["pr_auc"],
            "brier": cand["brier"],
            "top_decile_lift": cand["top_decile_lift"],
            "top_decile_vs_oracle": cand["top_decile_vs_oracle"],
            "test_base_rate": cand["base_rate"],
            "gate_passed": bool(gate["passed"]),
            "gate_reasons": "; ".join(gate["reasons"]),
            "gate_best_baseline": str(gate.get("best_baseline")),
            "gate_auc_gain": float(interval.get("value", float("nan"))),
            "gate_auc_gain_interval": dg.MetadataValue.json(
                {k: interval.get(k) for k in ("low", "high", "level", "n_boot", "n_customers")}),
            "champion": str(gate.get("champion")),
            "evaluation_cutoffs": dg.MetadataValue.json([p.test.isoformat() for p in r.plans]),
            "metrics": dg.MetadataValue.md(metrics_markdown(r.metrics, ["candidate", "candidate_uncalibrated", *r.baselines])),
            "bgnbd_params": dg.MetadataValue.json(r.bgnbd_params),
            "horizon_days": int(r.config.horizon_days),
            "dropped_features": ", ".join(r.dropped_features) or "none",
            "training_window": dg.MetadataValue.json(r.training_window),
            "rows": dg.MetadataValue.json(r.rows),
            "inter_purchase_gap_days": dg.MetadataValue.json(r.gaps),
            "notes": "; ".join(r.notes) or "none",
            "reliability_curve": _png(out.plots["reliability"]),
            "lift_chart": _png(out.plots["lift"]),
        }
    )


@_ml_asset(
    key=CHURN_SCORES,
    deps=[CHURN_CANDIDATE, *CHURN_DEPS],
    kinds={"sklearn", "duckdb"},
    description=(
        "ml.churn_scores: churn probability and risk band for every current customer (>= 1 order in "
        "the last 365 days), scored by the champion of the latest evaluation (`model_kind`: the "
        "candidate or the best baseline)."
    ),
)
def churn_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from ml.churn.pipeline import NoPromotedModel, missing_inputs, score_with_promoted
    from ml.churn.truth import load_latent_churn, load_planned_churn, truth_metrics

    with _inputs(warehouse, missing_inputs) as (con, skip):
        if skip:
            return _skip(skip)
        try:
            scores, mv = score_with_promoted(con, _registry(warehouse))
        except NoPromotedModel as exc:
            return _skip(str(exc))
    metadata = {
        "dagster/row_count": len(scores),
        "model_version": mv.version,
        "model_kind": str(scores["model_kind"].iloc[0]) if len(scores) else "none",
        **({"scoring": dg.MetadataValue.json(scores.attrs["scoring"])} if scores.attrs.get("scoring") else {}),
        "bands": dg.MetadataValue.json(scores["band"].value_counts().to_dict()),
        "mean_score": float(scores["score"].mean()) if len(scores) else 0.0,
    }
    truth_file = warehouse.settings().ground_truth_file
    if truth_file.exists():
        # Simulated data only: how well do scores rank the simulator's latent churn state?
        try:
            metadata["ground_truth"] = dg.MetadataValue.json(
                truth_metrics(scores, load_latent_churn(truth_file), load_planned_churn(truth_file))
            )
        except (ValueError, KeyError) as exc:
            metadata["ground_truth"] = f"not compared: {exc}"
    return dg.MaterializeResult(metadata=metadata)


@_ml_asset(
    key=CUSTOMER_VALUE,
    deps=[STG_ORDERS],
    kinds={"duckdb"},
    description=(
        "ml.customer_value: predicted customer lifetime value (USD, undiscounted) over the horizon "
        "(run config, default 365 days) per customer: BG/NBD purchases × Gamma-Gamma average order "
        "value (the customer's own mean where frequency and spend correlate), with a temporal-holdout "
        "evaluation against the naive past-spend-rate predictor."
    ),
)
def customer_value(context: dg.AssetExecutionContext, config: CustomerValueConfig, warehouse: WarehouseResource):
    from ml.value.clv import TooLittleHistory
    from ml.value.pipeline import missing_inputs, score_and_register

    with _inputs(warehouse, missing_inputs) as (con, skip):
        if skip:
            return _skip(skip)
        try:
            out = score_and_register(con, _registry(warehouse), config.horizon_days, config.max_abs_correlation)
        except TooLittleHistory as exc:
            context.log.warning("customer value skipped: %s", exc)
            return _skip(str(exc))
    m = out.model
    for note in m.notes:
        context.log.warning(note)
    ev = out.evaluation
    metadata = {
        "dagster/row_count": len(out.scores),
        "model_version": out.version.version,
        "as_of": out.as_of.isoformat(),
        "horizon_days": config.horizon_days,
        "bgnbd_params": dg.MetadataValue.json(m.bgnbd.as_dict()),
        "gamma_gamma_params": dg.MetadataValue.json(m.gamma_gamma.as_dict() if m.gamma_gamma else {}),
        "aov_model": m.aov_model,
        "frequency_spend_correlation": m.correlation,
        "total_predicted_clv": float(out.scores["predicted_clv"].sum()),
        "notes": "; ".join(m.notes) or "none",
        "evaluation": dg.MetadataValue.md(f"```\n{ev.table()}\n```") if ev else out.evaluation_note,
    }
    if ev:
        metadata["evaluation_metrics"] = dg.MetadataValue.json(ev.metrics)
        metadata["evaluation_note"] = out.evaluation_note or "none"
    return dg.MaterializeResult(metadata=metadata)


@_ml_asset(
    key=FORECAST_BACKTEST,
    deps=FORECAST_DEPS,
    kinds={"prophet", "duckdb"},
    retrain=True,
    description=(
        "Rolling-origin backtest (28-day horizon, 7-day step, 8 folds) of Prophet, seasonal naive and "
        "ETS on every demand series. The champion per series is the lowest mean MASE on the earlier "
        "(selection) folds, its interval is calibrated on them, and both are scored on the later "
        "(holdout) folds. Every fold's MASE and coverage go to ml.forecast_backtest."
    ),
)
def demand_forecast_backtest(context: dg.AssetExecutionContext, config: ForecastConfig, warehouse: WarehouseResource):
    from ml.forecast.pipeline import NothingToForecast, champion_table_markdown, evaluate_and_select, missing_inputs

    with _inputs(warehouse, missing_inputs) as (con, skip):
        if skip:
            return _skip(skip)
        try:
            out = evaluate_and_select(
                con, _registry(warehouse), seed=config.seed, max_folds=config.max_folds,
                country_holidays=config.country_holidays or None,
            )
        except NothingToForecast as exc:
            return _skip(str(exc))
    warnings = {k: v["warning"] for k, v in out.record.items() if v.get("warning")}
    for label, w in warnings.items():
        context.log.warning("%s: %s", label, w)
    champions = {k: v["champion"] for k, v in out.record.items()}
    metadata = {
        "selection_version": out.version.version,
        "champions": dg.MetadataValue.json(champions),
        "prophet_wins": sum(1 for c in champions.values() if c == "prophet"),
        "series": len(champions),
        "backtest": dg.MetadataValue.md(champion_table_markdown(out.record)),
        "warnings": dg.MetadataValue.json(warnings),
        "mase_chart": _png(out.plots["mase"]),
    }
    total_orders = out.plots.get("backtest total/orders")
    if total_orders:
        metadata["backtest_total_orders"] = _png(total_orders)
    return dg.MaterializeResult(metadata=metadata)


@_ml_asset(
    key=DEMAND_FORECAST,
    deps=[FORECAST_BACKTEST, *FORECAST_DEPS],
    kinds={"prophet", "duckdb"},
    description=(
        "ml.demand_forecast: 28-day daily forecast with 80% interval per series, from each series' "
        "backtest champion refitted on the full history (Prophet only where it won); clamped at 0."
    ),
)
def demand_forecast(context: dg.AssetExecutionContext, config: ForecastConfig, warehouse: WarehouseResource):
    from ml.forecast.pipeline import NothingToForecast, missing_inputs, publish_forecast

    with _inputs(warehouse, missing_inputs) as (con, skip):
        if skip:
            return _skip(skip)
        try:
            out = publish_forecast(
                con, _registry(warehouse), horizon=config.horizon_days, seed=config.seed,
                country_holidays=config.country_holidays or None, refresh=False,
            )
        except NothingToForecast as exc:
            return _skip(str(exc))
    metadata = {
        "dagster/row_count": len(out.forecast),
        "model_version": out.version.version,
        "models": dg.MetadataValue.json(out.champions),
    }
    for label in ("total/orders", "total/units", "total/net_revenue"):
        if label in out.plots:
            metadata[f"forecast_{label.replace('/', '_')}"] = _png(out.plots[label])
    return dg.MaterializeResult(metadata=metadata)


@_ml_asset(
    key=FORECAST_ACCURACY,
    deps=[DEMAND_FORECAST, FCT_DAILY_METRICS, STG_ORDERS, STG_ORDER_ITEMS, STG_PRODUCTS],
    kinds={"duckdb"},
    description=(
        "ml.forecast_accuracy: every published forecast next to its actual (NULL until the day has "
        "data), absolute error and whether the actual fell inside the 80% interval."
    ),
)
def forecast_accuracy(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from ml.forecast.pipeline import missing_inputs, update_accuracy

    with _inputs(warehouse, missing_inputs) as (con, skip):
        if skip:
            return _skip(skip)
        acc = update_accuracy(con)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": acc["rows"],
            "rows_with_actual": acc["rows_with_actual"],
            "mae": acc.get("mae") if acc.get("mae") is not None else float("nan"),
            "interval_coverage": acc.get("coverage") if acc.get("coverage") is not None else float("nan"),
        }
    )


ML_ASSETS = [churn_candidate, churn_scores, customer_value, demand_forecast_backtest, demand_forecast, forecast_accuracy]
