"""Champion selection, the published forecast and the forecast-vs-actual table."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from ml.forecast.backtest import (
    HOLDOUT, HORIZON, SELECT, BacktestResult, SeriesTooShort, backtest, local_scale, scale_interval,
)
from ml.forecast.models import ProphetForecaster, SeasonalNaive, default_models, model_by_name
from ml.forecast.series import SeriesKey
from ml.warehouse import table_exists, write_table

log = logging.getLogger(__name__)

FORECAST_TABLE = "ml.demand_forecast"
FORECAST_LOG_TABLE = "ml.demand_forecast_log"
ACCURACY_TABLE = "ml.forecast_accuracy"
BACKTEST_TABLE = "ml.forecast_backtest"
FORECAST_COLUMNS = {
    "series_id": "VARCHAR",
    "metric": "VARCHAR",
    "forecast_date": "DATE",
    "yhat": "DOUBLE",
    "yhat_lower": "DOUBLE",
    "yhat_upper": "DOUBLE",
    "model": "VARCHAR",
    "model_version": "VARCHAR",
    "generated_at": "TIMESTAMP",
}
LOG_COLUMNS = {**FORECAST_COLUMNS, "horizon_day": "INTEGER"}
ACCURACY_COLUMNS = {
    "series_id": "VARCHAR",
    "metric": "VARCHAR",
    "forecast_date": "DATE",
    "horizon_day": "INTEGER",
    "model": "VARCHAR",
    "model_version": "VARCHAR",
    "generated_at": "TIMESTAMP",
    "yhat": "DOUBLE",
    "yhat_lower": "DOUBLE",
    "yhat_upper": "DOUBLE",
    "actual": "DOUBLE",
    "abs_error": "DOUBLE",
    "in_interval": "BOOLEAN",
}
# One row per (series, model, fold). ``horizon`` is the fold's forecast length in days;
# ``coverage_80`` is the calibrated 80% interval's (in-sample on selection folds),
# ``coverage_80_raw`` the model's own; ``selected`` marks every row of the champion.
BACKTEST_COLUMNS = {
    "series_id": "VARCHAR",
    "metric": "VARCHAR",
    "model": "VARCHAR",
    "fold": "INTEGER",
    "role": "VARCHAR",
    "origin": "DATE",
    "horizon": "INTEGER",
    "mase": "DOUBLE",
    "coverage_80": "DOUBLE",
    "coverage_80_raw": "DOUBLE",
    "interval_scale": "DOUBLE",
    "selected": "BOOLEAN",
}
# When a series has no backtest yet (e.g. a brand-new category), publish the cheapest
# honest baseline until the next evaluation picks a champion.
FALLBACK_MODEL = SeasonalNaive().name


@dataclass
class SeriesEvaluation:
    key: SeriesKey
    result: BacktestResult | None
    champion: str | None
    skip_reason: str | None = None


def evaluate_series(
    series: dict[SeriesKey, pd.Series], seed: int = 0, max_folds: int = 8, country_holidays: str | None = "US",
    horizon: int = HORIZON,
) -> dict[SeriesKey, SeriesEvaluation]:
    """Backtest Prophet, seasonal naive and ETS on every series; champion = lowest mean MASE
    on the selection folds."""
    out = {}
    for key, y in series.items():
        try:
            res = backtest(y, default_models(seed, country_holidays), horizon=horizon, max_folds=max_folds)
        except SeriesTooShort as exc:
            out[key] = SeriesEvaluation(key, None, None, str(exc))
            continue
        if res.plan.warning:
            log.warning("%s: %s", key.label, res.plan.warning)
        out[key] = SeriesEvaluation(key, res, res.champion)
    return out


def champions_record(evals: dict[SeriesKey, SeriesEvaluation]) -> dict[str, Any]:
    """JSON-able: per series its champion, metrics per model, fold plan and warnings."""
    rec = {}
    for key, ev in evals.items():
        entry: dict[str, Any] = {"series_id": key.series_id, "metric": key.metric, "champion": ev.champion}
        if ev.result is not None:
            entry["metrics"] = ev.result.summary.set_index("model").to_dict(orient="index")
            entry["folds"] = len(ev.result.plan.origins)
            entry["select_folds"] = ev.result.plan.folds(SELECT)
            entry["holdout_folds"] = ev.result.plan.folds(HOLDOUT)
            # Published intervals use the factor fitted on every fold (the most recent residuals).
            entry["interval_scale"] = ev.result.scales.get(ev.champion, {}).get("all") if ev.champion else None
            entry["initial_days"] = ev.result.plan.initial
            entry["warning"] = ev.result.plan.warning
            entry["errors"] = ev.result.errors
        else:
            entry["skip_reason"] = ev.skip_reason
        rec[key.label] = entry
    return rec


def forecast_series(
    series: dict[SeriesKey, pd.Series],
    champions: dict[str, str | None],
    model_version: str,
    generated_at: dt.datetime,
    horizon: int = HORIZON,
    seed: int = 0,
    country_holidays: str | None = "US",
    interval_scales: dict[str, float | None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Refit each series' champion on its full history and forecast ``horizon`` days.

    ``interval_scales`` (series label -> conformal factor from the backtest) sets the 80%
    interval to yhat ± factor × the series' recent volatility; a series without one keeps
    the model's own interval.

    Returns (rows for ml.demand_forecast, fitted Prophet models by series label for the registry).
    """
    frames, prophets = [], {}
    for key, y in series.items():
        name = champions.get(key.label) or FALLBACK_MODEL
        if len(y) < 14:
            log.warning("%s: %d days of history, not forecast", key.label, len(y))
            continue
        model = model_by_name(name, seed, country_holidays)
        fc = model.fit_predict(y, horizon)
        factor = (interval_scales or {}).get(key.label) if champions.get(key.label) else None
        if factor is not None:
            fc = scale_interval(fc, float(factor), local_scale(y.to_numpy(float)))
        if isinstance(model, ProphetForecaster):
            prophets[key.label] = model.last_model
        frames.append(
            fc.assign(
                series_id=key.series_id, metric=key.metric, model=name, model_version=model_version,
                generated_at=pd.Timestamp(generated_at), forecast_date=fc["ds"].dt.date,
                horizon_day=range(1, len(fc) + 1),
            )
        )
    cols = list(LOG_COLUMNS)
    df = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    return df, prophets


def backtest_frame(evals: dict[SeriesKey, SeriesEvaluation], horizon: int = HORIZON) -> pd.DataFrame:
    """Rows of ml.forecast_backtest for every evaluated series."""
    parts = []
    for key, ev in evals.items():
        if ev.result is None or ev.result.folds.empty:
            continue
        f = ev.result.folds
        parts.append(pd.DataFrame({
            "series_id": key.series_id,
            "metric": key.metric,
            "model": f["model"],
            "fold": f["fold"],
            "role": f["role"],
            "origin": pd.to_datetime(f["origin"]).dt.date,
            "horizon": horizon,
            "mase": f["mase"],
            "coverage_80": f["coverage"],
            "coverage_80_raw": f["coverage_raw"],
            "interval_scale": f["model"].map(lambda m, r=ev.result: r.scales.get(m, {}).get(SELECT)),
            "selected": f["model"] == ev.champion,
        }))
    cols = list(BACKTEST_COLUMNS)
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def write_backtest(con: duckdb.DuckDBPyConnection, evals: dict[SeriesKey, SeriesEvaluation], horizon: int = HORIZON) -> int:
    return write_table(con, BACKTEST_TABLE, backtest_frame(evals, horizon), BACKTEST_COLUMNS)


def holdout_coverage(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per published series: the champion's mean holdout coverage and MASE from ml.forecast_backtest."""
    return con.execute(
        f"""
        SELECT series_id, metric, model, count(*) AS folds,
               avg(coverage_80) AS coverage_80, avg(mase) AS mase
        FROM {BACKTEST_TABLE}
        WHERE selected AND role = '{HOLDOUT}'
        GROUP BY 1, 2, 3 ORDER BY 1, 2
        """
    ).df()


def write_forecast(con: duckdb.DuckDBPyConnection, df: pd.DataFrame) -> int:
    """Replace the current forecast and append it to the log (idempotent per model_version)."""
    n = write_table(con, FORECAST_TABLE, df, FORECAST_COLUMNS)
    if table_exists(con, FORECAST_LOG_TABLE) and len(df):
        versions = sorted(df["model_version"].unique().tolist())
        placeholders = ", ".join("?" for _ in versions)
        con.execute(f"DELETE FROM {FORECAST_LOG_TABLE} WHERE model_version IN ({placeholders})", versions)
    write_table(con, FORECAST_LOG_TABLE, df, LOG_COLUMNS, mode="append")
    return n


def actuals_frame(series: dict[SeriesKey, pd.Series]) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"series_id": k.series_id, "metric": k.metric, "forecast_date": s.index.date, "actual": s.to_numpy(float)})
        for k, s in series.items()
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["series_id", "metric", "forecast_date", "actual"])


def refresh_accuracy(con: duckdb.DuckDBPyConnection, series: dict[SeriesKey, pd.Series]) -> dict[str, Any]:
    """Rebuild ml.forecast_accuracy: every logged forecast joined to its actual, if known yet.

    Rebuilt (not appended) so that late data — a refund that lowers a past day's net
    revenue — updates the actual and the error. Rows whose date is still in the future
    have NULL actual and fill in on later runs.
    """
    if not table_exists(con, FORECAST_LOG_TABLE):
        write_table(con, ACCURACY_TABLE, pd.DataFrame(columns=list(ACCURACY_COLUMNS)), ACCURACY_COLUMNS)
        return {"rows": 0, "rows_with_actual": 0}
    con.register("_actuals", actuals_frame(series))
    try:
        df = con.execute(
            f"""
            SELECT l.series_id, l.metric, l.forecast_date, l.horizon_day, l.model, l.model_version,
                   l.generated_at, l.yhat, l.yhat_lower, l.yhat_upper, a.actual,
                   abs(a.actual - l.yhat) AS abs_error,
                   CASE WHEN a.actual IS NULL THEN NULL
                        ELSE a.actual BETWEEN l.yhat_lower AND l.yhat_upper END AS in_interval
            FROM {FORECAST_LOG_TABLE} l
            LEFT JOIN _actuals a
              ON a.series_id = l.series_id AND a.metric = l.metric AND a.forecast_date = l.forecast_date
            ORDER BY l.series_id, l.metric, l.generated_at, l.forecast_date
            """
        ).df()
    finally:
        con.unregister("_actuals")
    write_table(con, ACCURACY_TABLE, df, ACCURACY_COLUMNS)
    known = df.dropna(subset=["actual"])
    return {
        "rows": int(len(df)),
        "rows_with_actual": int(len(known)),
        "mae": float(known["abs_error"].mean()) if len(known) else None,
        "coverage": float(known["in_interval"].astype(float).mean()) if len(known) else None,
    }
