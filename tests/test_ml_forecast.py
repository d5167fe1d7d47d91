"""Demand forecast: fold plan, metrics, honest selection, interval calibration, series loading,
publishing, accuracy, the backtest table and its Dagster coverage check."""
from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.forecast.backtest import (
    HOLDOUT, SELECT, SeriesTooShort, accuracy, backtest, local_scale, mase_scale, plan_folds, scale_interval,
)
from ml.forecast.models import ETS, ProphetForecaster, SeasonalNaive, model_by_name
from ml.forecast.pipeline import evaluate_and_select, publish_forecast, update_accuracy
from ml.forecast.publish import (
    BACKTEST_COLUMNS, SeriesEvaluation, backtest_frame, forecast_series, refresh_accuracy, write_forecast,
)
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
    assert p.roles == [SELECT] * 4 + [HOLDOUT] * 4
    sel, hold = [p.origins[i] for i in p.folds(SELECT)], [p.origins[i] for i in p.folds(HOLDOUT)]
    assert hold[-1] == 500 - 28 and np.all(np.diff(hold) == 7) and np.all(np.diff(sel) == 7)
    # No selection window (origin .. origin + 27) reaches into the first holdout window.
    assert sel[-1] + 28 <= hold[0] and sel[0] >= 365
    p = plan_folds(380, initial=365)  # 380 - 56 = 324 < 365: shorter initial window, with a warning
    assert p.initial == 56 and "shortened" in p.warning and p.origins[0] >= 56 and len(p.origins) == 8
    p = plan_folds(130, initial=365)  # too short for 8 folds: fewer folds, still one of each role
    assert p.origins[0] >= 56 and p.folds(SELECT) and p.folds(HOLDOUT) and len(p.origins) < 8
    with pytest.raises(SeriesTooShort):
        plan_folds(100)


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
    res = backtest(y, [ProphetForecaster(seed=1), SeasonalNaive()], max_folds=4)
    s = res.summary.set_index("model")
    assert res.champion == "prophet"
    assert s.loc["prophet", "mase"] < 0.8 * s.loc["seasonal_naive", "mase"]
    assert s.loc["prophet", "coverage"] > 0.6  # 80% nominal; noise is Gaussian here
    assert len(res.folds) == 8 and not res.errors


def _weekly_then_biweekly(days: int = 560, switch: int = 560 - 49, seed: int = 0) -> pd.Series:
    """A weekly pattern on a level that moves week by week, then (from ``switch``) a pattern
    that repeats every two weeks: last week's values win early, those of two weeks ago late."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-01-02", periods=days, freq="D")
    t = np.arange(days)
    weekly = np.array([0, 2, 4, 6, 8, 20, 10], float)[t % 7]
    level = 100 + np.repeat(np.cumsum(rng.normal(0, 6, days // 7 + 1)), 7)[:days]
    y = level + weekly
    late = t >= switch
    y[late] = 100 + np.where((t[late] // 7) % 2 == 0, 0.0, 40.0) + weekly[late]
    return pd.Series(y, index=idx)


def test_selection_uses_earlier_folds_only():
    models = [SeasonalNaive(), SeasonalNaive(period=14, name="seasonal_naive_14")]
    y = _weekly_then_biweekly()
    res = backtest(y, models, max_folds=8)
    # The holdout windows (the last 49 days) all lie after the switch.
    assert res.plan.origins[res.plan.folds(HOLDOUT)[0]] >= 560 - 49
    s = res.summary.set_index("model")
    # The late-fold winner is the two-week model, the early-fold winner the weekly one...
    assert s.loc["seasonal_naive_14", "mase"] < s.loc["seasonal_naive", "mase"]
    assert s.loc["seasonal_naive", "select_mase"] < s.loc["seasonal_naive_14", "select_mase"]
    # ... and the champion is the early winner: holdout folds do not vote.
    assert res.champion == "seasonal_naive"
    key = SeriesKey("total", "orders")
    table = backtest_frame({key: SeriesEvaluation(key, res, res.champion)})
    assert list(table.columns) == list(BACKTEST_COLUMNS)
    assert len(table) == 2 * 8 and table["horizon"].eq(28).all()
    assert set(table.loc[table["selected"], "model"]) == {"seasonal_naive"}
    assert table.groupby("model")["selected"].nunique().eq(1).all()  # every row of a model agrees
    # Whatever happens in the holdout windows cannot change the choice.
    y2 = y.copy()
    y2.iloc[560 - 49 :] = y.iloc[560 - 49 :].to_numpy()[::-1]
    assert backtest(y2, models, max_folds=8).champion == "seasonal_naive"


def _growing_shop(days: int, seed: int) -> pd.Series:
    """Demand that triples over the period, weekly pattern, noise of known size: 8% of the level."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2022-01-03", periods=days, freq="D")
    level = 100 * 3 ** (np.arange(days) / days)
    weekly = np.array([0.9, 0.85, 0.9, 1.0, 1.1, 1.2, 1.05])[idx.day_of_week]
    return pd.Series(level * weekly * (1 + rng.normal(0, 0.08, days)), index=idx)


def test_calibrated_intervals_cover_80_percent_of_unseen_folds():
    # Six shops whose noise grows with their level. ETS's own 80% interval (one error variance
    # for the whole history) is too narrow for the latest weeks; calibrated on the selection
    # folds, the interval covers 75-85% of the holdout actuals on average over the shops (as
    # the README's tables average over series; one shop alone is noisier: 0.62-0.87 here).
    cov, raw = [], []
    for seed in range(6):
        res = backtest(_growing_shop(700, seed), [ETS()], max_folds=16)
        s = res.summary.set_index("model").loc["ets"]
        cov.append(s["coverage"])
        raw.append(s["coverage_raw"])
        hold, sel = res.folds[res.folds["role"] == HOLDOUT], res.folds[res.folds["role"] == SELECT]
        assert len(hold) == len(sel) == 8 and hold["origin"].min() > sel["origin"].max()
    assert 0.75 <= np.mean(cov) <= 0.85, cov
    assert np.mean(raw) < 0.75, raw


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
    selected = con.execute("SELECT DISTINCT series_id || '/' || metric, model FROM ml.forecast_backtest WHERE selected").fetchall()
    assert dict(selected) == out.champions
    # The published interval is the champion's own, scaled by the factor from the backtest.
    scales = reg.promoted("demand_forecast_selection").manifest["interval_scales"]
    assert set(scales) == set(out.champions) and all(c > 0 for c in scales.values())
    key = SeriesKey("total", "orders")
    y = load_series(con)[key]
    raw = model_by_name(out.champions[key.label], seed=0).fit_predict(y, 28)
    expected = scale_interval(raw, scales[key.label], local_scale(y.to_numpy(float)))
    got = out.forecast[(out.forecast["series_id"] == "total") & (out.forecast["metric"] == "orders")]
    np.testing.assert_allclose(got[["yhat", "yhat_lower", "yhat_upper"]].to_numpy(float),
                               expected[["yhat", "yhat_lower", "yhat_upper"]].to_numpy(float), rtol=1e-9)
    prophet_files = {p.name for p in (out.version.path / "prophet").glob("*.json")} if (out.version.path / "prophet").exists() else set()
    assert len(prophet_files) == sum(1 for m in out.champions.values() if m == "prophet")
    assert update_accuracy(con)["rows"] == len(out.forecast)


def test_backtest_asset_writes_the_table_and_its_check_warns_on_off_coverage(data_dir):
    import dagster as dg

    from dagster_project.ml.assets import FORECAST_BACKTEST, ML_ASSETS
    from dagster_project.ml.checks import ML_CHECKS
    from dagster_project.resources import WarehouseResource
    from nightjar.settings import get_settings

    settings = get_settings()
    con = duckdb.connect(str(settings.warehouse))
    shop = build_synthetic_warehouse(con, customers=300, days=300, seed=5, categories=["books"])
    # A demand shock in the last 28 days (the holdout window): orders jump fivefold, so no
    # interval calibrated before it can cover them.
    con.execute(
        "UPDATE marts.fct_daily_metrics SET orders = orders * 5 WHERE metric_date >= ?",
        [shop.end - dt.timedelta(days=28)],
    )
    con.close()
    res = dg.materialize(
        [*ML_ASSETS, *ML_CHECKS],
        selection=dg.AssetSelection.assets(FORECAST_BACKTEST),
        resources={"warehouse": WarehouseResource()},
        run_config={"ops": {"ml__demand_forecast_backtest": {"config": {"max_folds": 2}}}},
        raise_on_error=False,
    )
    assert res.success  # a warning, not a failed run
    (check,) = [e for e in res.get_asset_check_evaluations() if e.asset_check_key.name == "forecast_holdout_coverage"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "total/orders" in check.description
    by_series = check.metadata["coverage_80_by_series"].value
    assert by_series["total/orders"] < 0.7 and set(by_series) == {
        "total/orders", "total/units", "total/net_revenue", "category:books/units"
    }
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert [r[0] for r in con.execute("DESCRIBE ml.forecast_backtest").fetchall()] == list(BACKTEST_COLUMNS)
        per_series = con.execute(
            """
            SELECT series_id || '/' || metric, count(DISTINCT model) FILTER (WHERE selected),
                   count(*), count(*) FILTER (WHERE role = 'holdout')
            FROM ml.forecast_backtest GROUP BY 1
            """
        ).fetchall()
    # Exactly one selected model per series; 3 models x (1 selection + 1 holdout fold).
    assert {r[0] for r in per_series} == set(by_series)
    assert all(r[1:] == (1, 6, 3) for r in per_series), per_series


def test_cdnow_daily_series(tmp_path):
    from ml.forecast.evaluate import cdnow_file, cdnow_series

    f = tmp_path / "CDNOW_master.txt"
    f.write_text(
        " customer_id  date number_of_cds  dollar_value\n"
        " 00001 19970101  1   11.77\n 00002 19970101  5   77.00\n 00002 19970103  2   20.76\n"
    )
    s = cdnow_series(f)
    orders, revenue = s[SeriesKey("cdnow", "orders")], s[SeriesKey("cdnow", "revenue")]
    assert orders.tolist() == [2, 0, 1] and revenue.round(2).tolist() == [88.77, 0.0, 20.76]
    assert orders.index.freq == "D"
    real = cdnow_series(cdnow_file())  # the copy the lifetimes package ships: 1997-01-01 .. 1998-06-30
    assert real[SeriesKey("cdnow", "orders")].sum() == 69659 and len(real[SeriesKey("cdnow", "orders")]) == 546
