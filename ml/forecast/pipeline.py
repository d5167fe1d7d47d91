"""Forecast evaluate -> select champions -> publish -> accuracy, as plain functions."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ml import plots
from ml.forecast.backtest import HORIZON
from ml.forecast.publish import (
    SeriesEvaluation,
    champions_record,
    evaluate_series,
    forecast_series,
    refresh_accuracy,
    write_backtest,
    write_forecast,
)
from ml.forecast.series import SeriesKey, load_series
from ml.registry import ModelRegistry, ModelVersion, new_version
from ml.warehouse import data_fingerprint, missing_tables

SELECTION_MODEL = "demand_forecast_selection"  # backtests + champion per series (promoted pointer)
FORECAST_MODEL = "demand_forecast"  # nightly fits (Prophet JSON) behind ml.demand_forecast
INPUT_TABLES = ["marts.fct_daily_metrics", "staging.stg_orders", "staging.stg_order_items", "staging.stg_products"]


class NothingToForecast(Exception):
    pass


@dataclass
class SelectionOutcome:
    evals: dict[SeriesKey, SeriesEvaluation]
    record: dict[str, Any]
    version: ModelVersion
    plots: dict[str, Path]


def missing_inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    return missing_tables(con, INPUT_TABLES)


def _window(series: dict[SeriesKey, pd.Series]) -> dict[str, Any]:
    return {k.label: {"from": s.index.min().date(), "to": s.index.max().date(), "days": len(s)} for k, s in series.items()}


def evaluate_and_select(
    con: duckdb.DuckDBPyConnection, registry: ModelRegistry, seed: int = 0, max_folds: int = 8,
    country_holidays: str | None = "US",
) -> SelectionOutcome:
    series = load_series(con)
    if not series:
        raise NothingToForecast("no daily series: marts.fct_daily_metrics has no orders")
    evals = evaluate_series(series, seed=seed, max_folds=max_folds, country_holidays=country_holidays)
    record = champions_record(evals)
    if not any(ev.champion for ev in evals.values()):
        reasons = "; ".join(f"{k.label}: {ev.skip_reason}" for k, ev in evals.items())
        raise NothingToForecast(f"no series has enough history for a backtest ({reasons})")
    write_backtest(con, evals)
    version = new_version()
    summary = pd.concat(
        [ev.result.summary.assign(series=k.label) for k, ev in evals.items() if ev.result is not None], ignore_index=True
    )
    preds = pd.concat(
        [ev.result.predictions.assign(series=k.label) for k, ev in evals.items() if ev.result is not None and len(ev.result.predictions)],
        ignore_index=True,
    )
    mv = registry.save(
        SELECTION_MODEL,
        version,
        metrics=record,
        features={"series": [k.label for k in series], "models": sorted(summary["model"].unique().tolist())},
        training_window=_window(series),
        data_fingerprint=data_fingerprint(con, INPUT_TABLES),
        files={"backtest_summary.csv": summary.to_csv(index=False), "backtest_predictions.csv": preds.to_csv(index=False)},
        extra={
            "champions": {k: v["champion"] for k, v in record.items()},
            "interval_scales": {k: v.get("interval_scale") for k, v in record.items()},
        },
    )
    plot_paths = {"mase": plots.metric_bars(summary, "mase", mv.path / "plots" / "backtest_mase.png", "Holdout-fold MASE by series and model (lower is better)")}
    for key, ev in evals.items():
        if ev.result is None or ev.champion is None:
            continue
        champ = ev.result.predictions[ev.result.predictions["model"] == ev.champion]
        last = champ[champ["fold"] == champ["fold"].max()]
        plot_paths[f"backtest {key.label}"] = plots.forecast_plot(
            series[key], last, f"{key.label}: champion {ev.champion}, latest backtest fold",
            mv.path / "plots" / f"backtest_{key.slug}.png", backtest=champ,
        )
    # Choosing the lowest-MASE model per series *is* this model's gate: it always yields a
    # champion for every evaluable series, so the selection is promoted when it exists.
    registry.promote(SELECTION_MODEL, version, {"passed": True, "reasons": ["champion = lowest mean MASE on the selection folds per series"]})
    return SelectionOutcome(evals, record, mv, plot_paths)


@dataclass
class PublishOutcome:
    forecast: pd.DataFrame
    version: ModelVersion
    accuracy: dict[str, Any]
    champions: dict[str, str | None]
    plots: dict[str, Path]


def publish_forecast(
    con: duckdb.DuckDBPyConnection, registry: ModelRegistry, horizon: int = HORIZON, seed: int = 0,
    country_holidays: str | None = "US", keep_versions: int = 30, refresh: bool = True,
) -> PublishOutcome:
    """Refit each series' promoted champion on the full history, write ml.demand_forecast
    with its interval scaled by the champion's conformal factor from the backtest.

    ``refresh`` also rebuilds ml.forecast_accuracy (the Dagster graph does that in its own asset).
    """
    series = load_series(con)
    if not series:
        raise NothingToForecast("no daily series: marts.fct_daily_metrics has no orders")
    selection = registry.promoted(SELECTION_MODEL)
    champions: dict[str, str | None] = selection.manifest.get("champions", {}) if selection else {}
    scales: dict[str, float | None] = selection.manifest.get("interval_scales", {}) if selection else {}
    generated_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    version = new_version()
    df, prophets = forecast_series(series, champions, version, generated_at, horizon, seed, country_holidays, scales)
    if df.empty:
        raise NothingToForecast("every series is shorter than 14 days")
    from prophet.serialize import model_to_json

    files = {f"prophet/{SeriesKey(*label.rsplit('/', 1)).slug}.json": model_to_json(m) for label, m in prophets.items()}
    used = {f"{r.series_id}/{r.metric}": r.model for r in df[["series_id", "metric", "model"]].drop_duplicates().itertuples()}
    mv = registry.save(
        FORECAST_MODEL,
        version,
        metrics={
            "champions": used,
            "selection_version": selection.version if selection else None,
            "backtest": selection.metrics if selection else None,
        },
        features={"series": sorted(used), "horizon_days": horizon, "interval": 0.8, "interval_scales": scales},
        training_window=_window(series),
        data_fingerprint=data_fingerprint(con, INPUT_TABLES),
        files=files,
        extra={"generated_at": generated_at},
    )
    registry.prune(FORECAST_MODEL, keep=keep_versions)
    write_forecast(con, df)
    acc = refresh_accuracy(con, series) if refresh else {}
    plot_paths = {}
    for key, y in series.items():
        fc = df[(df["series_id"] == key.series_id) & (df["metric"] == key.metric)]
        if len(fc):
            plot_paths[key.label] = plots.forecast_plot(
                y, fc.assign(ds=pd.to_datetime(fc["forecast_date"])), f"{key.label} ({used[key.label]}), 28 days, 80% interval",
                mv.path / "plots" / f"forecast_{key.slug}.png",
            )
    return PublishOutcome(df, mv, acc, used, plot_paths)


def update_accuracy(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Rebuild ml.forecast_accuracy from the forecast log and today's actuals."""
    return refresh_accuracy(con, load_series(con))


def champion_table_markdown(record: dict[str, Any]) -> str:
    """Champion (chosen on selection folds) against every model on the holdout folds."""
    lines = [
        "| series | champion | holdout MASE prophet | seasonal naive | ETS | holdout coverage 80% (champion, calibrated) "
        "| raw coverage | interval scale | folds (select + holdout) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, e in record.items():
        m = e.get("metrics") or {}
        champ = e.get("champion")

        def f(model: str, key: str = "mase") -> str:
            v = m.get(model, {}).get(key)
            return "–" if v is None or v != v else f"{v:.3f}"
        if champ is None:
            lines.append(f"| {label} | skipped: {e.get('skip_reason')} | | | | | | | |")
            continue
        scale = e.get("interval_scale")
        lines.append(
            f"| {label} | **{champ}** | {f('prophet')} | {f('seasonal_naive')} | {f('ets')} | "
            f"{f(champ, 'coverage')} | {f(champ, 'coverage_raw')} | {'–' if scale is None else f'{scale:.2f}'} | "
            f"{len(e.get('select_folds', []))} + {len(e.get('holdout_folds', []))} |"
        )
    return "\n".join(lines)


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, indent=1)
