"""Asset checks of the ML assets. ``churn_promotion_gate`` is the only thing that promotes a churn model."""

from typing import Any

import dagster as dg

from dagster_project.ml.assets import CHURN_CANDIDATE, DEMAND_FORECAST, FORECAST_BACKTEST
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource


def _latest_metadata(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict[str, Any] | None:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


@dg.asset_check(
    asset=CHURN_CANDIDATE,
    name="churn_promotion_gate",
    blocking=True,
    description=(
        "Promotes the candidate only if, over 3 temporal cutoffs, its mean ROC-AUC beats the best "
        "baseline by >= 0.02, the bootstrap 90% interval of that gain (customers resampled) lies above "
        "0 and its Brier is no worse than the best baseline's. Otherwise the best baseline becomes the "
        "champion that scores (warning); with no usable baseline either, the check fails (error) and "
        "the previous champion stays."
    ),
)
def churn_promotion_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    from ml.churn.pipeline import CHURN_MODEL, gate_and_promote, promoted_kind
    from ml.registry import ModelRegistry

    meta = _latest_metadata(context, CHURN_CANDIDATE)
    registry = ModelRegistry.in_artifacts(warehouse.settings().artifacts_dir)
    previous = registry.promoted_record(CHURN_MODEL)
    in_use = f"{previous['version']} ({previous.get('model_kind', 'candidate')})" if previous else None
    if meta is None or meta.get("skipped"):
        reason = (meta or {}).get("skip_reason", "the candidate was never materialised")
        # Nothing was trained, so nothing to refuse: a warning, not a blocking failure.
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            description=f"no candidate to gate: {reason}", metadata={"model_in_use": str(in_use)},
        )
    version = meta["model_version"]
    decision = gate_and_promote(registry, version)
    champion = decision.get("champion")
    record = registry.promoted_record(CHURN_MODEL)
    now_in_use = f"{record['version']} ({promoted_kind(registry)})" if record else None
    checks = decision.get("checks", {})
    interval = checks.get("auc_difference_interval", {})
    reasons = "; ".join(decision["reasons"])
    if decision["passed"]:
        description = f"promoted {version}: {reasons}"
    elif champion:
        description = f"refused candidate {version}: {reasons}; scoring with baseline {champion} of the same evaluation"
    else:
        description = f"refused {version}: {reasons}; no baseline beats the base rate either, {in_use} stays in use"
    return dg.AssetCheckResult(
        passed=bool(decision["passed"]),
        # A baseline champion still publishes scores: downstream scoring must not be blocked.
        severity=dg.AssetCheckSeverity.WARN if champion else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "candidate_version": version,
            "decision": "promoted" if decision["passed"] else "refused",
            "champion": str(champion),
            "model_in_use": str(now_in_use),
            "previous_model": str(in_use),
            "auc_gain": float(interval.get("value", float("nan"))),
            "auc_gain_interval_low": float(interval.get("low", float("nan"))),
            "auc_gain_interval_high": float(interval.get("high", float("nan"))),
            "reasons": reasons,
            "checks": dg.MetadataValue.json(checks),
        },
    )


@dg.asset_check(
    asset=DEMAND_FORECAST,
    name="forecast_is_well_formed",
    description="Every published series has its full horizon, no negative values and lower <= yhat <= upper.",
    pool=WAREHOUSE_POOL,
)
def forecast_is_well_formed(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    from ml.warehouse import table_exists

    meta = _latest_metadata(context, DEMAND_FORECAST) or {}
    if meta.get("skipped") or not warehouse.path.exists():
        return dg.AssetCheckResult(passed=True, description=f"nothing published: {meta.get('skip_reason', 'no warehouse')}")
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, "ml.demand_forecast"):
            return dg.AssetCheckResult(passed=False, description="ml.demand_forecast does not exist")
        bad, series, short = con.execute(
            """
            WITH per AS (SELECT series_id, metric, count(*) AS n FROM ml.demand_forecast GROUP BY 1, 2)
            SELECT (SELECT count(*) FROM ml.demand_forecast
                    WHERE yhat < 0 OR yhat_lower < 0 OR yhat_lower > yhat OR yhat > yhat_upper
                       OR yhat IS NULL),
                   (SELECT count(*) FROM per),
                   (SELECT count(*) FROM per WHERE n < (SELECT max(n) FROM per))
            """
        ).fetchall()[0]
    return dg.AssetCheckResult(
        passed=bad == 0 and short == 0 and series > 0,
        metadata={"bad_rows": int(bad), "series": int(series), "short_series": int(short)},
    )


COVERAGE_BAND = (0.70, 0.90)


@dg.asset_check(
    asset=FORECAST_BACKTEST,
    name="forecast_holdout_coverage",
    description=(
        "Warns when a published series' champion covers less than 70% or more than 90% of the "
        "holdout-fold actuals with its calibrated 80% interval (ml.forecast_backtest)."
    ),
    pool=WAREHOUSE_POOL,
)
def forecast_holdout_coverage(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    from ml.forecast.publish import BACKTEST_TABLE, holdout_coverage
    from ml.warehouse import table_exists

    meta = _latest_metadata(context, FORECAST_BACKTEST) or {}
    if meta.get("skipped") or not warehouse.path.exists():
        return dg.AssetCheckResult(passed=True, description=f"no backtest: {meta.get('skip_reason', 'no warehouse')}")
    with warehouse.connect(read_only=True) as con:
        if not table_exists(con, BACKTEST_TABLE):
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, description=f"{BACKTEST_TABLE} does not exist"
            )
        cov = holdout_coverage(con)
    lo, hi = COVERAGE_BAND
    cov["series"] = cov["series_id"] + "/" + cov["metric"]
    off = cov[(cov["coverage_80"] < lo) | (cov["coverage_80"] > hi)]
    per_series = {r.series: round(float(r.coverage_80), 3) for r in cov.itertuples()}
    return dg.AssetCheckResult(
        passed=off.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"holdout coverage of every published series within {lo:.2f}-{hi:.2f}" if off.empty else
            "holdout coverage outside " f"{lo:.2f}-{hi:.2f}: "
            + ", ".join(f"{r.series} {r.coverage_80:.2f} ({r.model})" for r in off.itertuples())
        ),
        metadata={
            "series": len(cov),
            "series_off_band": len(off),
            "mean_coverage_80": float(cov["coverage_80"].mean()) if len(cov) else float("nan"),
            "coverage_80_by_series": dg.MetadataValue.json(per_series),
        },
    )


ML_CHECKS = [churn_promotion_gate, forecast_is_well_formed, forecast_holdout_coverage]
