"""Customer lifetime value (ml/value): Gamma-Gamma on CDNOW, the holdout evaluation, and the
`ml/customer_value` asset on a temporary DuckDB warehouse."""
from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from dagster_project.keys import CUSTOMER_VALUE, STG_ORDERS
from dagster_project.ml.assets import ML_ASSETS
from dagster_project.ml.defs import defs as ml_defs
from dagster_project.resources import WarehouseResource
from ml.churn.cdnow import load_cdnow
from ml.registry import ModelRegistry
from ml.value import clv, history
from ml.value.evaluate import CDNOW_CUTOFF, CDNOW_HOLDOUT_END, evaluate
from ml_synthetic import build_synthetic_warehouse
from nightjar.settings import get_settings


def _cdnow_summary() -> pd.DataFrame:
    import lifetimes

    return pd.read_csv(os.path.join(os.path.dirname(lifetimes.__file__), "datasets",
                                    "cdnow_customers_summary_with_transactions.csv"))


def test_gamma_gamma_recovers_published_cdnow_parameters():
    # Fader, Hardie & Lee (2005), "RFM and CLV", on the 2,357-customer CDNOW sample's 946 repeat buyers.
    s = _cdnow_summary()
    gg = clv.fit_gamma_gamma(s["x"].to_numpy(), s["zbar"].to_numpy())
    assert gg.n_customers == 946
    for got, published in ((gg.p, 6.25), (gg.q, 3.74), (gg.v, 15.44)):
        assert got == pytest.approx(published, rel=0.02)
    # the independence assumption holds there (FHL report a correlation of 0.11)
    assert abs(clv.frequency_spend_correlation(s["x"].to_numpy(), s["zbar"].to_numpy())) < clv.MAX_ABS_CORRELATION
    # the conditional mean shrinks a repeat buyer's own average towards the population mean
    pop = gg.p * gg.v / (gg.q - 1)
    own = gg.conditional_mean(np.array([0, 1, 20]), np.array([0.0, 100.0, 100.0]))
    assert own[0] == pytest.approx(pop) and pop < own[1] < own[2] < 100


def test_cdnow_holdout_evaluation_against_naive_spend_rate():
    con = duckdb.connect()
    load_cdnow(con)
    horizon = (CDNOW_HOLDOUT_END - CDNOW_CUTOFF).days
    ev = evaluate(con, CDNOW_CUTOFF, horizon)
    # the whole CDNOW cohort (first purchases in Q1 1997) is in the calibration period
    assert ev.customers == con.execute("SELECT count(DISTINCT customer_id) FROM staging.stg_orders").fetchone()[0]
    actual = con.execute(
        "SELECT sum(total_amount_usd) FROM staging.stg_orders WHERE created_at >= ? AND created_at < ?",
        [CDNOW_CUTOFF, CDNOW_HOLDOUT_END]).fetchone()[0]
    assert ev.frame["actual"].sum() == pytest.approx(actual)
    f = ev.frame
    for name, col in (("bgnbd_gg", "predicted_clv"), ("naive_spend_rate", "naive")):
        assert ev.metrics[name]["mae"] == pytest.approx(np.mean(np.abs(f[col] - f["actual"])))
        assert ev.metrics[name]["spearman"] == pytest.approx(spearmanr(f[col], f["actual"]).statistic)
    assert ev.model.aov_model == "gamma_gamma" and abs(ev.model.correlation) < clv.MAX_ABS_CORRELATION
    # BG/NBD + Gamma-Gamma beats extrapolating each customer's past spend rate on both measures
    assert ev.metrics["bgnbd_gg"]["mae"] < ev.metrics["naive_spend_rate"]["mae"]
    assert ev.metrics["bgnbd_gg"]["spearman"] > ev.metrics["naive_spend_rate"]["spearman"]
    # and its total is close to what was spent (the naive rate overshoots a decaying cohort)
    assert abs(f["predicted_clv"].sum() / actual - 1) < abs(f["naive"].sum() / actual - 1)


def test_summary_follows_revenue_rules_point_in_time():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.stg_orders (order_id VARCHAR, customer_id VARCHAR, total_amount_usd DOUBLE,
                   created_at TIMESTAMP, updated_at TIMESTAMP, order_date DATE, is_cancelled BOOLEAN, is_refunded BOOLEAN)""")
    rows = [  # (customer, amount, created, updated, cancelled, refunded)
        ("a", 10.0, "2025-01-01 10:00", "2025-01-01 10:00", False, False),
        ("a", 5.0, "2025-01-01 18:00", "2025-01-01 18:00", False, False),   # same day: one purchase day
        ("a", 30.0, "2025-01-10 09:00", "2025-01-20 00:00", False, True),   # refunded after the cutoff
        ("a", 99.0, "2025-01-12 09:00", "2025-01-13 00:00", True, False),   # cancelled before the cutoff
        ("b", 20.0, "2025-01-05 12:00", "2025-01-06 00:00", False, True),   # refunded before the cutoff
        ("b", 40.0, "2025-01-20 12:00", "2025-01-20 12:00", False, False),  # after the cutoff
    ]
    for i, (c, amt, created, updated, canc, ref) in enumerate(rows):
        con.execute("INSERT INTO staging.stg_orders VALUES (?, ?, ?, ?, ?, ?::TIMESTAMP::DATE, ?, ?)",
                    [f"o{i}", c, amt, created, updated, created, canc, ref])
    s = history.summary_at(con, dt.date(2025, 1, 15)).set_index("customer_id")
    assert s.loc["a", "order_days"] == 2 and s.loc["a", "revenue"] == 45.0 and s.loc["a", "repeat_value"] == 30.0
    assert s.loc["b", "order_days"] == 1 and s.loc["b", "revenue"] == 0.0 and pd.isna(s.loc["b", "repeat_value"])
    x, t_x, T = history.rfm(s.reset_index())
    assert list(x) == [1, 0] and t_x[1] == 0 and T[0] > t_x[0] > 0
    later = history.spend_between(con, dt.date(2025, 1, 15), dt.date(2025, 2, 1)).set_index("customer_id")
    assert later["spend"].to_dict() == {"b": 40.0}  # a's refund is known now, so holdout spend omits it


def _materialize(run_config=None):
    return dg.materialize(ML_ASSETS, selection=dg.AssetSelection.assets(CUSTOMER_VALUE),
                          resources={"warehouse": WarehouseResource()}, run_config=run_config or {}, raise_on_error=False)


def _metadata(result) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == CUSTOMER_VALUE]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_customer_value_asset_definition():
    graph = dg.Definitions.merge(dg.Definitions(resources={"warehouse": WarehouseResource()}), ml_defs).resolve_asset_graph()
    node = graph.get(CUSTOMER_VALUE)
    assert STG_ORDERS in node.parent_keys and node.pools == {"duckdb_warehouse"}
    assert node.tags.get("nightjar/cadence") != "weekly"  # scored nightly


def test_customer_value_asset_materialises(data_dir):
    settings = get_settings()
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, customers=400, days=300, seed=3)
    res = _materialize({"ops": {"ml__customer_value": {"config": {"horizon_days": 90}}}})
    assert res.success
    meta = _metadata(res)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        buyers = con.execute("SELECT count(DISTINCT customer_id) FROM staging.stg_orders WHERE NOT is_cancelled "
                             "OR updated_at >= (SELECT max(order_date) + 1 FROM staging.stg_orders)").fetchone()[0]
        out = con.execute("SELECT * FROM ml.customer_value").df()
        revenue = con.execute("SELECT sum(CASE WHEN is_refunded THEN 0 ELSE total_amount_usd END) "
                              "FROM staging.stg_orders WHERE NOT is_cancelled").fetchone()[0]
    assert len(out) == out["customer_id"].nunique() == buyers == meta["dagster/row_count"]
    values = out[["historical_revenue", "predicted_purchases", "predicted_avg_order_value", "predicted_clv"]]
    assert values.notna().all().all() and (values >= 0).all().all()
    assert out["predicted_clv"].to_numpy() == pytest.approx((out["predicted_purchases"] * out["predicted_avg_order_value"]).to_numpy())
    assert out["historical_revenue"].sum() == pytest.approx(revenue)
    assert set(out["horizon_days"]) == {90} and set(out["model_version"]) == {meta["model_version"]}
    assert ((out["p_alive"] >= 0) & (out["p_alive"] <= 1)).all()
    # metadata: fitted parameters, the independence check and the holdout evaluation
    assert {"r", "alpha", "a", "b"} <= set(meta["bgnbd_params"])
    assert -1 <= meta["frequency_spend_correlation"] <= 1
    assert meta["aov_model"] == ("gamma_gamma" if abs(meta["frequency_spend_correlation"]) <= 0.3 else "empirical")
    assert set(meta["evaluation_metrics"]) == {"bgnbd_gg", "naive_spend_rate"}
    assert all(m["mae"] >= 0 for m in meta["evaluation_metrics"].values())
    registry = ModelRegistry(settings.artifacts_dir / "models")
    assert registry.get("customer_value", meta["model_version"]).manifest["params"]["aov_model"] == meta["aov_model"]


def test_customer_value_skips_with_reason(data_dir):
    settings = get_settings()
    res = _materialize()
    assert res.success and "no warehouse" in _metadata(res)["skip_reason"]
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, customers=15, days=30, seed=1)
    res = _materialize()
    meta = _metadata(res)
    assert res.success and meta["skipped"] is True and "repeat purchase" in meta["skip_reason"]


def test_correlated_frequency_and_spend_fall_back_to_own_mean():
    # CDNOW's sample with spend made to grow with frequency: Gamma-Gamma's assumption fails
    s = _cdnow_summary()
    summary = pd.DataFrame({
        "customer_id": s["ID"].astype(str), "order_days": s["x"] + 1,
        "first_order_age_days": s["T"] * 7, "recency_days": (s["T"] - s["t_x"]) * 7,
        "repeat_value": np.where(s["x"] > 0, 10.0 + 5.0 * s["x"], np.nan),
    })
    summary["revenue"] = 20.0 + s["x"] * np.nan_to_num(summary["repeat_value"])
    model = clv.fit(summary)
    assert model.correlation > clv.MAX_ABS_CORRELATION and model.aov_model == "empirical" and model.gamma_gamma is None
    assert "Gamma-Gamma not used" in model.notes[0]
    out = clv.predict(model, summary, 52 * 7)
    assert out["predicted_avg_order_value"].to_numpy() == pytest.approx((summary["revenue"] / summary["order_days"]).to_numpy())
    # with the check relaxed, the same data goes through Gamma-Gamma
    assert clv.fit(summary, max_abs_correlation=1.0).aov_model == "gamma_gamma"
