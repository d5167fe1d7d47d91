"""Demand forecast: fold plan, metrics, Prophet vs seasonal naive, series loading, publishing, accuracy."""
from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.forecast.backtest import SeriesTooShort, accuracy, backtest, mase_scale, plan_folds
from ml.forecast.models import ETS, ProphetForecaster, SeasonalNaive
from ml.forecast.pipeline import evaluate_and_select, publish_forecast, update_accuracy
from ml.forecast.publish import forecast_series, refresh_accuracy, write_forecast
from ml.forecast.series import SeriesKey, load_series
from ml.registry import ModelRegistry
from ml_synthetic import build_synthetic_warehouse


def planted_series(days: int = 900, seed: int = 0) -> pd.Series:
    """Level 100, yearly amplitude 30, weekly pattern +-15, noise sd 4."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2022-01-03", periods=days, freq="D")
    t = np.arange(days)
    weekly = np.array([-10, -8, -3, 0, 5, 15, 1])[idx.dayofweek]
    y = 100 + 30 * np.sin(2 * np.pi * t / 365.25) + weekly + rng.normal(0, 4, days)
    return pd.Series(y, index=idx)


def test_fold_plan():
    p = plan_folds(500, horizon=28, step=7, initial=365, max_folds=8)
    assert p.warning is None and p.initial == 365
    assert p.origins[-1] == 500 - 28 and np.all(np.diff(p.origins) == 7)
    assert len(p.origins) == 8 and p.origins[0] >= 365
    p = plan_folds(380, initial=365)  # 380 - 28 = 352 < 365: shorter initial window, with a warning
    assert p.initial == 56 and "shortened" in p.warning and p.origins[0] >= 56
    with pytest.raises(SeriesTooShort):
        plan_folds(60)


def test_accuracy_metrics_on_hand_numbers():
    y = np.array([10.0, 0.0, 20.0, 10.0])
    fc = pd.DataFrame({"yhat": [12.0, 0.0, 10.0, 10.0], "yhat_lower": [11, 0, 0, 11], "yhat_upper": [13, 1, 30, 12]})
    m = accuracy(y, fc, scale=4.0)
    assert m["mae"] == pytest.approx(3.0)
    assert m["mase"] == pytest.approx(0.75)
    # sMAPE: 200*2/22, 0 (0/0 is perfect), 200*10/30, 0 -> mean
    assert m["smape"] == pytest.approx((400 / 22 + 2000 / 30) / 4)
    assert m["coverage"] == pytest.approx(0.5)
    assert mase_scale(np.array([1.0, 2, 3, 4, 5, 6, 7, 3, 2, 3])) == pytest.approx((2 + 0 + 0) / 3)


def test_prophet_beats_seasonal_naive_on_planted_seasonality():
    y = planted_series()
    res = backtest(y, [ProphetForecaster(seed=1), SeasonalNaive()], max_folds=3)
    s = res.summary.set_index("model")
    assert res.champion == "prophet"
    assert s.loc["prophet", "mase"] < 0.8 * s.loc["seasonal_naive", "mase"]
    assert s.loc["prophet", "coverage"] > 0.6  # 80% nominal; noise is Gaussian here
    assert len(res.folds) == 6 and not res.errors


def test_models_clamp_at_zero_and_intervals_are_ordered():
    rng = np.random.default_rng(3)
    idx = pd.date_range("2024-01-01", periods=120, freq="D")
    # Mostly-zero intermittent demand with a downward trend: unclamped models go negative.
    y = pd.Series(np.maximum(0, 3 - np.arange(120) / 30 + rng.normal(0, 1, 120)).round(), index=idx)
    for model in (ProphetForecaster(seed=0, uncertainty_samples=100), SeasonalNaive(), ETS()):
        fc = model.fit_predict(y, 28)
        assert len(fc) == 28 and fc["ds"].iloc[0] == idx[-1] + pd.Timedelta(days=1)
        assert (fc[["yhat", "yhat_lower", "yhat_upper"]] >= 0).all().all(), model.name
        assert (fc["yhat_lower"] <= fc["yhat"] + 1e-9).all() and (fc["yhat"] <= fc["yhat_upper"] + 1e-9).all()


def test_prophet_is_reproducible_with_a_seed():
    y = planted_series(400)
    a = ProphetForecaster(seed=7, uncertainty_samples=100).fit_predict(y, 28)
    b = ProphetForecaster(seed=7, uncertainty_samples=100).fit_predict(y, 28)
    pd.testing.assert_frame_equal(a, b)


@pytest.fixture()
def synthetic_shop():
    con = duckdb.connect()
    shop = build_synthetic_warehouse(con, customers=800, days=420, seed=2, categories=["books", "toys"])
    yield con, shop
    con.close()


def test_series_include_new_categories_without_code_changes(synthetic_shop):
    con, shop = synthetic_shop
    series = load_series(con)
    labels = {k.label for k in series}
    assert labels == {"total/orders", "total/units", "total/net_revenue", "category:books/units", "category:toys/units"}
    total_units = series[SeriesKey("total", "units")]
    cat_sum = series[SeriesKey("category:books", "units")].add(series[SeriesKey("category:toys", "units")], fill_value=0)
    pd.testing.assert_series_equal(total_units, cat_sum.reindex(total_units.index, fill_value=0), check_names=False)
    assert total_units.index.is_monotonic_increasing and total_units.index.freq == "D"
    # A product in a new category sells: the new series appears, starting at its first sale.
    con.execute(
        """
        INSERT INTO staging.stg_products VALUES ('p_new', 'Seeds', 'garden', 3.0, TIMESTAMP '2024-01-01');
        UPDATE staging.stg_order_items SET product_id = 'p_new'
        WHERE order_id IN (SELECT order_id FROM staging.stg_orders WHERE order_date >= DATE '2024-01-15');
        """
    )
    series = load_series(con)
    garden = series[SeriesKey("category:garden", "units")]
    assert garden.index[0] >= pd.Timestamp("2024-01-15") and garden.sum() > 0


def test_publish_forecast_and_accuracy_fills_in_as_actuals_arrive(synthetic_shop, tmp_path):
    con, shop = synthetic_shop
    full = {t: con.execute(f"SELECT * FROM {t}").df() for t in ("marts.fct_daily_metrics", "staging.stg_orders")}
    cut = shop.end - dt.timedelta(days=20)
    con.execute(f"DELETE FROM marts.fct_daily_metrics WHERE metric_date >= DATE '{cut}'")
    con.execute(f"DELETE FROM staging.stg_orders WHERE order_date >= DATE '{cut}'")
    series = load_series(con)
    champions = {"total/orders": "prophet", "total/units": "ets"}  # others fall back to seasonal naive
    df, prophets = forecast_series(series, champions, "v1", dt.datetime(2024, 1, 1), horizon=28, seed=0)
    assert set(prophets) == {"total/orders"}
    assert df.groupby(["series_id", "metric"]).size().eq(28).all() and len(df) == 28 * len(series)
    assert df.loc[df["series_id"].eq("total") & df["metric"].eq("units"), "model"].eq("ets").all()
    assert df.loc[df["series_id"].eq("category:books"), "model"].eq("seasonal_naive").all()
    assert df["forecast_date"].min() == cut and (df[["yhat", "yhat_lower", "yhat_upper"]] >= 0).all().all()
    write_forecast(con, df)
    acc = refresh_accuracy(con, series)
    assert acc["rows"] == len(df) and acc["rows_with_actual"] == 0
    # The next nights' loads bring 20 more days of actuals.
    for table, frame in full.items():
        con.execute(f"DELETE FROM {table}")
        con.register("_full", frame)
        con.execute(f"INSERT INTO {table} SELECT * FROM _full")
        con.unregister("_full")
    acc = refresh_accuracy(con, load_series(con))
    assert acc["rows_with_actual"] == 20 * len(series)
    rows = con.execute(
        "SELECT count(*), count(actual), count(*) FILTER (WHERE abs_error = abs(actual - yhat)) FROM ml.forecast_accuracy"
    ).fetchall()[0]
    assert rows == (28 * len(series), 20 * len(series), 20 * len(series))
    # Re-publishing the same version replaces its log rows instead of duplicating them.
    write_forecast(con, df)
    assert con.execute("SELECT count(*) FROM ml.demand_forecast_log").fetchall()[0][0] == len(df)


def test_selection_and_publication_through_the_registry(synthetic_shop, tmp_path):
    con, _ = synthetic_shop
    reg = ModelRegistry(tmp_path / "models")
    sel = evaluate_and_select(con, reg, max_folds=2)
    # 420 days of history: the initial window is shortened (with a warning), not skipped.
    assert all(e["champion"] in {"prophet", "ets", "seasonal_naive"} for e in sel.record.values())
    assert any(e["warning"] for e in sel.record.values()) or all(e["initial_days"] == 365 for e in sel.record.values())
    assert reg.promoted("demand_forecast_selection").version == sel.version.version
    out = publish_forecast(con, reg, seed=0)
    assert out.champions == {k: v["champion"] for k, v in sel.record.items()}
    published = con.execute("SELECT DISTINCT series_id || '/' || metric, model FROM ml.demand_forecast").fetchall()
    assert dict(published) == out.champions
    prophet_files = {p.name for p in (out.version.path / "prophet").glob("*.json")} if (out.version.path / "prophet").exists() else set()
    assert len(prophet_files) == sum(1 for m in out.champions.values() if m == "prophet")
    assert update_accuracy(con)["rows"] == len(out.forecast)
