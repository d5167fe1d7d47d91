"""Churn: labels, splits, leakage, model quality vs baselines, gate, scoring, ground truth."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.churn import evaluate
from ml.churn.config import ChurnConfig, TooLittleHistory
from ml.churn.features import FEATURES, build_features, features_at
from ml.churn.labels import gap_summary, inter_purchase_gaps, labels, plan_cutoffs
from ml.churn.pipeline import CHURN_MODEL, gate_and_promote, score_with_promoted, train_and_register
from ml.churn.score import current_customers, score_customers
from ml.churn.train import train_churn
from ml.churn.truth import load_latent_churn, truth_metrics
from ml.registry import ModelRegistry
from ml_synthetic import build_synthetic_warehouse

T = dt.date(2024, 3, 1)


def _hand_made(con: duckdb.DuckDBPyConnection) -> None:
    """A few customers whose population membership and labels at T=2024-03-01, H=90 are known."""
    orders = [
        # order_id, customer, status, amount, created_at, updated_at
        ("o1", "A", "delivered", 10.0, "2024-01-10 10:00", "2024-01-12"),
        ("o2", "A", "delivered", 30.0, "2024-03-15 09:00", "2024-03-16"),  # in window -> A active
        ("o3", "B", "delivered", 20.0, "2023-06-01 12:00", "2023-06-02"),  # only order, 9 months ago
        ("o4", "C", "delivered", 20.0, "2022-12-01 12:00", "2022-12-02"),  # > 365 days: not in population
        ("o5", "D", "cancelled", 20.0, "2024-02-20 12:00", "2024-02-21"),  # cancelled before T
        ("o6", "E", "cancelled", 20.0, "2024-02-25 12:00", "2024-03-05"),  # cancelled after T: active at T
        ("o7", "F", "delivered", 20.0, "2024-02-01 12:00", "2024-02-02"),
        ("o8", "F", "delivered", 20.0, "2024-05-30 00:00", "2024-05-31"),  # = T + 90 days: outside window
        ("o9", "G", "delivered", 20.0, "2024-01-05 12:00", "2024-01-06"),
        ("o10", "G", "delivered", 20.0, "2024-05-29 23:00", "2024-05-30"),  # last hour of the window
        ("o11", "H", "refunded", 40.0, "2024-01-01 12:00", "2024-01-20"),  # refunded before T
        ("o12", "H", "delivered", 20.0, "2024-03-01 00:00", "2024-03-02"),  # exactly at T: label, not feature
        ("o13", "A", "refunded", 50.0, "2024-02-01 10:00", "2024-03-10"),  # refunded after T
    ]
    df = pd.DataFrame(orders, columns=["order_id", "customer_id", "status", "amount", "created_at", "updated_at"])
    df["created_at"] = pd.to_datetime(df["created_at"])
    df["updated_at"] = pd.to_datetime(df["updated_at"])
    con.register("_o", df)
    con.execute("CREATE SCHEMA staging; CREATE SCHEMA marts;")
    con.execute(
        """
        CREATE TABLE staging.stg_orders AS SELECT order_id, customer_id, status, 'USD' AS currency,
          amount AS total_amount, amount AS total_amount_usd, created_at, updated_at,
          created_at::DATE AS order_date, status = 'cancelled' AS is_cancelled, status = 'refunded' AS is_refunded
        FROM _o;
        CREATE TABLE staging.stg_products AS SELECT * FROM (VALUES
          ('p1', 'Book', 'books', 10.0, TIMESTAMP '2020-01-01'), ('p2', 'Lamp', 'home', 20.0, TIMESTAMP '2020-01-01'))
          t(product_id, product_name, category, price, updated_at);
        CREATE TABLE staging.stg_order_items AS
          SELECT order_id, 1::BIGINT AS line_number, 'p1' AS product_id, 1::BIGINT AS quantity, 10.0 AS unit_price,
                 10.0 AS line_amount, 10.0 AS line_amount_usd FROM _o
          UNION ALL SELECT 'o1', 2, 'p2', 1, 20.0, 20.0, 20.0;
        CREATE TABLE marts.dim_customers AS
          SELECT DISTINCT customer_id, md5(customer_id) AS email_hash, 'US' AS country,
                 TIMESTAMP '2022-01-01' AS created_at, NULL::TIMESTAMP AS first_order_at, NULL::TIMESTAMP AS last_order_at,
                 0::BIGINT AS orders_count, 0.0 AS gross_revenue_usd, 0.0 AS net_revenue_usd, 0::BIGINT AS recency_days,
                 1 AS r_score, 1 AS f_score, 1 AS m_score, 'x' AS rfm_segment,
                 CASE WHEN customer_id = 'A' THEN 'email' ELSE 'organic' END AS acquisition_channel
          FROM _o;
        CREATE TABLE marts.fct_sessions AS SELECT * FROM (VALUES
          ('s1', 'A', 'A', TIMESTAMP '2024-02-28 10:00'),   -- 2 days before T
          ('s2', 'A', 'A', TIMESTAMP '2024-02-10 10:00'),   -- 20 days before T
          ('s3', 'A', 'A', TIMESTAMP '2023-12-15 10:00'),   -- 77 days before T
          ('s4', 'A', 'A', TIMESTAMP '2024-03-02 10:00'))   -- after T: ignored
          t(session_id, user_key, customer_id, session_start);
        """
    )
    con.unregister("_o")


@pytest.fixture()
def hand_con():
    con = duckdb.connect()
    _hand_made(con)
    yield con
    con.close()


def test_population_and_labels_on_hand_made_data(hand_con):
    cfg = ChurnConfig(horizon_days=90)
    lab = labels(hand_con, [T], cfg).set_index("customer_id")["churned"].to_dict()
    # C: last order > 365 days ago; D: its only order was cancelled before T.
    assert lab == {"A": 0, "B": 1, "E": 1, "F": 1, "G": 0, "H": 0}
    # A shorter horizon turns G (order in the window's last hour) into a churner.
    assert labels(hand_con, [T], ChurnConfig(horizon_days=30)).set_index("customer_id")["churned"]["G"] == 1


def test_features_on_hand_made_data(hand_con):
    f = features_at(hand_con, T, ["A", "E", "H"]).set_index("customer_id")
    a = f.loc["A"]
    # A's orders before T: o1 (2024-01-10 10:00) and o13 (2024-02-01 10:00, refunded only after T).
    assert a["frequency"] == 2
    assert a["recency_days"] == pytest.approx((pd.Timestamp(T) - pd.Timestamp("2024-02-01 10:00")).total_seconds() / 86400)
    assert a["monetary"] == pytest.approx(60.0)
    assert a["aov"] == pytest.approx(30.0)
    assert a["refund_share"] == 0.0  # the refund happened after T
    assert a["category_breadth"] == 2  # o1 has a book and a lamp
    assert (a["sessions_7d"], a["sessions_30d"], a["sessions_90d"]) == (1, 2, 3)
    assert a["session_ratio_7_30"] == pytest.approx(0.5)
    assert a["days_since_last_session"] == pytest.approx(2 - 10 / 24)
    assert a["acquisition_channel"] == "email"
    assert f.loc["E", "frequency"] == 1  # its cancellation is only known after T
    h = f.loc["H"]
    assert h["frequency"] == 1 and h["refund_share"] == 1.0  # o12 at exactly T is not a feature
    assert np.isnan(h["days_since_last_session"])
    assert [c for c in f.columns if c not in ("cutoff", "order_days")] == FEATURES


def test_cutoff_plan_is_temporal():
    cfg = ChurnConfig(horizon_days=90, n_train_cutoffs=6)
    plan = plan_cutoffs(dt.date(2023, 1, 2), dt.date(2024, 8, 24), cfg)
    H = dt.timedelta(days=90)
    assert plan.test == dt.date(2024, 5, 1)  # 2024-06-01 + 90 days is past the observed end
    assert plan.calibration == dt.date(2024, 2, 1)
    assert plan.train == [dt.date(2023, m, 1) for m in range(8, 13)] + [dt.date(2024, 1, 1)]
    assert max(plan.train) < plan.calibration and plan.calibration + H <= plan.test
    assert plan.test + H <= dt.date(2024, 8, 24)
    assert all(d.day == 1 for d in [*plan.train, plan.calibration, plan.test])


def test_short_history_is_a_clear_skip():
    with pytest.raises(TooLittleHistory, match="too short|no cutoff|calibration"):
        plan_cutoffs(dt.date(2024, 1, 1), dt.date(2024, 7, 1), ChurnConfig())
    con = duckdb.connect()
    build_synthetic_warehouse(con, customers=200, days=200, seed=3)
    with pytest.raises(TooLittleHistory):
        train_churn(con, ChurnConfig())


@pytest.fixture(scope="module")
def synth_con():
    con = duckdb.connect()
    build_synthetic_warehouse(con, customers=2500, days=600, seed=11)
    yield con
    con.close()


def _mutate_after(con: duckdb.DuckDBPyConnection, cutoff: dt.date) -> None:
    """Change everything that happens at or after the cutoff instant, in every input table."""
    ts = f"TIMESTAMP '{cutoff} 00:00:00'"
    con.execute(
        f"""
        -- Orders after T: other amounts, statuses and items, some deleted, new ones added.
        UPDATE staging.stg_orders SET total_amount_usd = total_amount_usd * 7 + 1, status = 'refunded',
               is_refunded = true WHERE created_at >= {ts};
        DELETE FROM staging.stg_orders WHERE created_at >= {ts} AND hash(order_id) % 3 = 0;
        INSERT INTO staging.stg_orders
          SELECT 'new_' || customer_id, customer_id, 'delivered', 'USD', 99, 99, {ts} + INTERVAL 5 DAY,
                 {ts} + INTERVAL 5 DAY, ({ts} + INTERVAL 5 DAY)::DATE, false, false
          FROM (SELECT DISTINCT customer_id FROM staging.stg_orders WHERE created_at < {ts});
        UPDATE staging.stg_order_items SET quantity = quantity + 5, product_id = 'p_0000'
          WHERE order_id IN (SELECT order_id FROM staging.stg_orders WHERE created_at >= {ts});
        -- Status changes after T of orders placed before T: cancellations and refunds. Only
        -- orders still open at T can change (cancelled/refunded before T are final states).
        CREATE TEMP TABLE open_at_t AS SELECT order_id FROM staging.stg_orders
          WHERE created_at < {ts} AND NOT ((is_cancelled OR is_refunded) AND updated_at < {ts});
        UPDATE staging.stg_orders SET status = 'cancelled', is_cancelled = true, is_refunded = false,
               updated_at = {ts} + INTERVAL 1 DAY
          WHERE order_id IN (SELECT order_id FROM open_at_t) AND hash(order_id) % 4 = 0;
        UPDATE staging.stg_orders SET status = 'refunded', is_refunded = true, updated_at = {ts} + INTERVAL 2 HOUR
          WHERE order_id IN (SELECT order_id FROM open_at_t) AND hash(order_id) % 4 = 1;
        -- Sessions after T: half deleted, the rest moved around, new ones added.
        DELETE FROM marts.fct_sessions WHERE session_start >= {ts} AND hash(session_id) % 2 = 0;
        UPDATE marts.fct_sessions SET session_start = session_start + INTERVAL 3 DAY WHERE session_start >= {ts};
        INSERT INTO marts.fct_sessions BY NAME
          SELECT 'new_s_' || customer_id AS session_id, customer_id AS user_key, customer_id,
                 {ts} AS session_start, {ts}::DATE AS session_date
          FROM (SELECT DISTINCT customer_id FROM marts.fct_sessions);
        -- dim_customers' as-of-now columns change every night; features must not use them.
        UPDATE marts.dim_customers SET recency_days = 0, orders_count = orders_count + 100, r_score = 5,
               last_order_at = {ts} + INTERVAL 30 DAY;
        """
    )


def test_no_leakage_changing_data_after_cutoff_changes_no_feature():
    con = duckdb.connect()
    build_synthetic_warehouse(con, customers=600, days=500, seed=5)
    cutoff = dt.date(2023, 12, 1)
    keys = labels(con, [cutoff], ChurnConfig())[["cutoff", "customer_id"]]
    assert len(keys) > 100
    before = build_features(con, keys)
    _mutate_after(con, cutoff)
    after = build_features(con, keys)
    pd.testing.assert_frame_equal(before, after)
    # The population at T (who is scored) does not depend on the future either.
    pd.testing.assert_frame_equal(keys, labels(con, [cutoff], ChurnConfig())[["cutoff", "customer_id"]])
    # Sensitivity: the same comparison does catch a change one second before T.
    con.execute(
        f"UPDATE marts.fct_sessions SET session_start = TIMESTAMP '{cutoff}' - INTERVAL 1 SECOND "
        "WHERE session_id = (SELECT min(session_id) FROM marts.fct_sessions WHERE session_start < TIMESTAMP '2023-06-01')"
    )
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(before, build_features(con, keys))


def test_model_beats_baselines_on_planted_signal(synth_con):
    r = train_churn(synth_con, ChurnConfig())
    cand = r.metrics["candidate"]
    assert set(r.baselines) >= {"days_since_last_order", "logistic_rfm"}
    for b in r.baselines:
        assert cand["roc_auc"] >= r.metrics[b]["roc_auc"] + 0.02, (b, cand, r.metrics[b])
        assert cand["pr_auc"] >= r.metrics[b]["pr_auc"]
    assert cand["brier"] < cand["base_rate"] * (1 - cand["base_rate"])
    assert r.gate["passed"], r.gate["reasons"]
    assert cand["top_decile_lift"] > 1.2
    # Calibration improves (or keeps) Brier and cannot change the ranking (sigmoid is monotonic).
    raw = r.metrics["candidate_uncalibrated"]
    assert cand["roc_auc"] == pytest.approx(raw["roc_auc"], abs=1e-9)
    assert cand["brier"] <= raw["brier"] + 1e-3
    rel = r.reliability["hgb_calibrated"]
    assert len(rel) >= 5 and np.all(np.abs(rel["mean_predicted"] - rel["fraction_positive"]) < 0.2)
    assert list(r.lift["hgb_calibrated"]["decile"]) == list(range(1, 11))
    assert r.rows["train"] > r.rows["test"] > 100


def test_inter_purchase_gap_summary(synth_con):
    gaps = inter_purchase_gaps(synth_con)
    s = gap_summary(gaps)
    assert s["n_gaps"] == len(gaps) > 1000
    assert 0 < s["p50_days"] <= s["p75_days"] <= s["p90_days"] <= s["p95_days"]
    assert s["p90_days"] == pytest.approx(np.percentile(gaps, 90))


def _fake_metrics(auc: float, pr: float, brier: float, base: float = 0.3) -> dict:
    return {"roc_auc": auc, "pr_auc": pr, "brier": brier, "base_rate": base}


def test_gate_rules():
    cfg = ChurnConfig()
    baselines = {"recency": _fake_metrics(0.80, 0.60, float("nan")), "lr": _fake_metrics(0.78, 0.62, 0.18)}
    ok = evaluate.gate(_fake_metrics(0.83, 0.63, 0.15), baselines, cfg)
    assert ok["passed"] and ok["checks"]["roc_auc"]["best_baseline"] == "recency"
    small_gain = evaluate.gate(_fake_metrics(0.815, 0.70, 0.15), baselines, cfg)
    assert not small_gain["passed"] and "ROC-AUC" in small_gain["reasons"][0]
    worse_pr = evaluate.gate(_fake_metrics(0.90, 0.61, 0.15), baselines, cfg)
    assert not worse_pr["passed"] and worse_pr["reasons"] == [worse_pr["reasons"][0]] and "PR-AUC" in worse_pr["reasons"][0]
    bad_brier = evaluate.gate(_fake_metrics(0.90, 0.70, 0.22), baselines, cfg)  # 0.3*0.7 = 0.21
    assert not bad_brier["passed"] and "Brier" in bad_brier["reasons"][0]


def test_gate_promotes_and_refuses_through_the_registry(synth_con, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    good = train_and_register(synth_con, registry, ChurnConfig())
    assert registry.promoted(CHURN_MODEL) is None  # training alone never promotes
    assert gate_and_promote(registry, good.version.version)["passed"]
    assert registry.promoted(CHURN_MODEL).version == good.version.version
    # An impossible margin makes the next candidate fail: the pointer must not move.
    bad = train_and_register(synth_con, registry, ChurnConfig(min_auc_gain=0.5))
    decision = gate_and_promote(registry, bad.version.version)
    assert not decision["passed"] and "ROC-AUC" in decision["reasons"][0]
    assert registry.promoted(CHURN_MODEL).version == good.version.version
    with pytest.raises(PermissionError):
        registry.promote(CHURN_MODEL, bad.version.version, decision)
    # Scoring keeps using the promoted (previous) model.
    scores, mv = score_with_promoted(synth_con, registry)
    assert mv.version == good.version.version
    assert set(scores["model_version"]) == {good.version.version}


def test_scoring_covers_every_current_customer(synth_con):
    r = train_churn(synth_con, ChurnConfig())
    as_of = dt.date(2024, 8, 24)
    scores = score_customers(synth_con, r.model, "v-test", ChurnConfig(), as_of=as_of)
    current = current_customers(synth_con, as_of, ChurnConfig())
    assert sorted(scores["customer_id"]) == sorted(current) and len(current) > 300
    assert scores["score"].between(0, 1).all()
    expected_band = np.where(scores["score"] >= 0.6, "high", np.where(scores["score"] >= 0.3, "medium", "low"))
    assert (scores["band"].to_numpy() == expected_band).all()
    assert set(scores["band"]) == {"low", "medium", "high"}


def test_scores_rank_the_latent_churn_state(tmp_path):
    con = duckdb.connect()
    truth_file = tmp_path / "ground_truth.json"
    shop = build_synthetic_warehouse(con, customers=2000, days=560, seed=21, ground_truth_path=truth_file)
    r = train_churn(con, ChurnConfig())
    scores = score_customers(con, r.model, "v", ChurnConfig(), as_of=shop.end)
    m = truth_metrics(scores, load_latent_churn(truth_file))
    assert m["n_matched"] == len(scores)
    assert m["latent_roc_auc"] > 0.85
    assert m["latent_churn_rate_by_band"]["high"] > m["latent_churn_rate_by_band"]["low"] + 0.3


@pytest.mark.parametrize(
    "payload",
    [
        {"customers": {"c1": {"churned": True}, "c2": {"churned": False}}},
        {"customers": [{"customer_id": "c1", "is_churned": 1}, {"customer_id": "c2", "is_churned": 0}]},
        {"c1": {"state": "churned"}, "c2": {"state": "active"}},
    ],
)
def test_ground_truth_formats(tmp_path, payload):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(payload))
    assert load_latent_churn(path).to_dict() == {"c1": True, "c2": False}


def test_ground_truth_simulator_format_with_planned_churn(tmp_path):
    # The shape nightjar.simulator writes (format nightjar-simulator/1).
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"format": "nightjar-simulator/1", "customers": {
        "c1": {"churned": True, "churn_date": "2024-01-01", "planned_churn_date": None},
        "c2": {"churned": False, "churn_date": None, "planned_churn_date": "2024-02-01"},
        "c3": {"churned": False, "churn_date": None, "planned_churn_date": None},
        "c4": {"churned": False, "churn_date": None, "planned_churn_date": None},
    }}))
    from ml.churn.truth import load_planned_churn

    latent, planned = load_latent_churn(path), load_planned_churn(path)
    assert latent.to_dict() == {"c1": True, "c2": False, "c3": False, "c4": False}
    assert planned.to_dict() == {"c1": True, "c2": True, "c3": False, "c4": False}
    scores = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"], "score": [0.9, 0.7, 0.2, 0.8], "band": ["high", "high", "low", "high"]})
    m = truth_metrics(scores, latent, planned)
    assert m["latent_roc_auc"] == pytest.approx(1.0)  # c1 outranks c2..c4
    assert m["latent_churned_within_90d_roc_auc"] == pytest.approx(0.75)  # c4 (0.8) outranks c2 (0.7)


def test_ground_truth_unknown_format_fails_loudly(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"seed": 1, "customers": 5}))
    with pytest.raises(ValueError, match="unknown ground-truth format"):
        load_latent_churn(path)


def test_uninformative_features_are_the_empty_and_constant_ones():
    from ml.churn.feature_selection import drop_uninformative_features, uninformative_features

    df = pd.DataFrame({
        "empty": [np.nan, np.nan, np.nan],
        "infinite": [np.inf, -np.inf, np.nan],
        "zeros": [0.0, 0.0, 0.0],
        "one_channel": ["unknown"] * 3,
        "sometimes_missing": [1.0, np.nan, 1.0],  # missingness is information
        "varies": [1.0, 2.0, 3.0],
    })
    assert uninformative_features(df, list(df.columns)) == {
        "empty": "all empty", "infinite": "all empty", "zeros": "constant", "one_channel": "constant"}
    assert drop_uninformative_features(df, list(df.columns)) == ["sometimes_missing", "varies"]


def test_a_shop_without_events_trains_and_scores_on_order_features(caplog):
    """Orders only: every session feature is empty or 0 and every channel unknown. Training
    drops those columns (and says so) instead of crashing in HistGradientBoosting's binning."""
    con = duckdb.connect()
    build_synthetic_warehouse(con, customers=1200, days=500, seed=5)
    con.execute("DELETE FROM marts.fct_sessions")
    con.execute("UPDATE marts.dim_customers SET acquisition_channel = NULL")
    with caplog.at_level("WARNING", logger="ml.churn.train"):
        r = train_churn(con, ChurnConfig())
    session_features = ["sessions_7d", "sessions_30d", "sessions_90d", "session_ratio_7_30", "session_ratio_30_90",
                        "days_since_last_session", "acquisition_channel"]
    assert not set(session_features) & set(r.model["features"])
    assert {"recency_days", "frequency", "monetary"} <= set(r.model["features"])
    assert any("days_since_last_session (all empty)" in m and "sessions_7d (constant)" in m for m in caplog.messages)
    assert any(n.startswith("features without information dropped") for n in r.notes)
    assert 0.5 < r.metrics["candidate"]["roc_auc"] <= 1
    scores = score_customers(con, r.model, "v-orders-only", ChurnConfig(), as_of=dt.date(2024, 4, 1))
    assert len(scores) > 100 and scores["score"].between(0, 1).all()
