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
from ml.churn.features import FEATURES, build_features, drop_uninformative_features, features_at
from ml.churn.cdnow import load_cdnow
from ml.churn.labels import HorizonMismatch, choose_horizon, gap_summary, inter_purchase_gaps, labels, plan_cutoffs
from ml.churn.pipeline import CHURN_MODEL, gate_and_promote, promoted_kind, score_with_promoted, train_and_register
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
        CREATE TABLE staging.stg_events AS SELECT event_id, event_name, event_timestamp, event_timestamp::DATE AS event_date,
          event_timestamp AS received_at, anonymous_id, user_id, is_bot FROM (VALUES
          ('e1', 'page_viewed', TIMESTAMP '2024-02-28 10:00', 'dA', 'A', false),   -- 2 days before T
          ('e2', 'page_viewed', TIMESTAMP '2024-02-28 10:20', 'dA', NULL, false),  -- same session, stitched to A
          ('e3', 'page_viewed', TIMESTAMP '2024-02-10 10:00', 'dA', 'A', false),   -- 20 days before T
          ('e4', 'page_viewed', TIMESTAMP '2023-12-15 10:00', 'dA', 'A', false),   -- 77 days before T
          ('e5', 'page_viewed', TIMESTAMP '2024-03-02 10:00', 'dA', 'A', false),   -- after T: ignored
          ('e6', 'page_viewed', TIMESTAMP '2024-02-27 09:00', 'dA', 'A', true),    -- a bot: never a session
          -- device dE: anonymous visits before T, its first login (as E) only after T
          ('e7', 'page_viewed', TIMESTAMP '2024-02-26 08:00', 'dE', NULL, false),
          ('e8', 'page_viewed', TIMESTAMP '2024-01-20 08:00', 'dE', NULL, false),
          ('e9', 'user_identified', TIMESTAMP '2024-03-04 08:00', 'dE', 'E', false))
          t(event_id, event_name, event_timestamp, anonymous_id, user_id, is_bot);
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
    # E's device logged in only after T: at T its visits were anonymous, not E's.
    assert f.loc["E", "sessions_90d"] == 0 and np.isnan(f.loc["E", "days_since_last_session"])
    assert [c for c in f.columns if c not in ("cutoff", "order_days")] == FEATURES


def test_identity_stitching_is_as_known_at_the_cutoff(hand_con):
    """A login after T must not pull earlier anonymous visits into a customer's features;
    the same login before T must (the features go through the stitching, not fct_sessions)."""
    before = features_at(hand_con, T, ["A", "E"])
    # Another login after T, on A's device, as E: with "latest login ever" stitching A's
    # anonymous event e2 would become E's.
    hand_con.execute(
        "INSERT INTO staging.stg_events VALUES ('e10', 'user_identified', TIMESTAMP '2024-03-20 08:00', "
        "DATE '2024-03-20', TIMESTAMP '2024-03-20 08:00', 'dA', 'E', false)"
    )
    pd.testing.assert_frame_equal(before, features_at(hand_con, T, ["A", "E"]))
    # E's login moved to before T: its device's earlier visits are E's at T.
    hand_con.execute("UPDATE staging.stg_events SET event_timestamp = TIMESTAMP '2024-02-29 08:00' WHERE event_id = 'e9'")
    e = features_at(hand_con, T, ["E"]).set_index("customer_id").loc["E"]
    assert (e["sessions_7d"], e["sessions_30d"], e["sessions_90d"]) == (2, 2, 3)
    assert e["days_since_last_session"] == pytest.approx(1 - 8 / 24)


def test_uninformative_features_are_dropped():
    frame = pd.DataFrame({"recency_days": [1.0, 5.0, 9.0], "sessions_7d": [0.0, 0.0, 0.0],
                          "days_since_last_session": [np.nan] * 3, "acquisition_channel": ["x", "x", "x"]})
    kept, dropped = drop_uninformative_features(frame, ["recency_days", "sessions_7d", "days_since_last_session",
                                                        "acquisition_channel"])
    assert dropped == ["sessions_7d", "days_since_last_session", "acquisition_channel"]
    assert list(kept.columns) == ["recency_days"]


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
        plan_cutoffs(dt.date(2024, 1, 1), dt.date(2024, 7, 1), ChurnConfig(horizon_days=90))
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
        -- Events after T: half deleted, the rest moved around, new ones added — among them a
        -- login on every device as *another* customer, which "latest login ever" stitching
        -- would use to hand that device's earlier anonymous visits to someone else.
        DELETE FROM staging.stg_events WHERE event_timestamp >= {ts} AND hash(event_id) % 2 = 0;
        UPDATE staging.stg_events SET event_timestamp = event_timestamp + INTERVAL 3 DAY WHERE event_timestamp >= {ts};
        INSERT INTO staging.stg_events BY NAME
          SELECT 'relogin_' || anonymous_id AS event_id, 'user_identified' AS event_name,
                 {ts} + INTERVAL 1 HOUR AS event_timestamp, anonymous_id, max(user_id) || '_other' AS user_id,
                 false AS is_bot
          FROM staging.stg_events WHERE user_id IS NOT NULL GROUP BY anonymous_id;
        INSERT INTO staging.stg_events BY NAME
          SELECT 'new_e_' || user_id AS event_id, 'page_viewed' AS event_name, {ts} AS event_timestamp,
                 'd_new' AS anonymous_id, user_id, false AS is_bot
          FROM (SELECT DISTINCT user_id FROM staging.stg_events WHERE user_id IS NOT NULL);
        -- fct_sessions is not a feature source: even wiping it changes nothing.
        DELETE FROM marts.fct_sessions;
        -- dim_customers' as-of-now columns change every night; features must not use them.
        UPDATE marts.dim_customers SET recency_days = 0, orders_count = orders_count + 100, r_score = 5,
               last_order_at = {ts} + INTERVAL 30 DAY;
        """
    )


def test_no_leakage_changing_data_after_cutoff_changes_no_feature():
    con = duckdb.connect()
    build_synthetic_warehouse(con, customers=600, days=500, seed=5)
    cutoff = dt.date(2023, 12, 1)
    keys = labels(con, [cutoff], ChurnConfig(horizon_days=90))[["cutoff", "customer_id"]]
    assert len(keys) > 100
    before = build_features(con, keys)
    _mutate_after(con, cutoff)
    after = build_features(con, keys)
    pd.testing.assert_frame_equal(before, after)
    # The population at T (who is scored) does not depend on the future either.
    pd.testing.assert_frame_equal(keys, labels(con, [cutoff], ChurnConfig(horizon_days=90))[["cutoff", "customer_id"]])
    # Sensitivity: the same comparison does catch a change one second before T.
    con.execute(
        f"UPDATE staging.stg_events SET event_timestamp = TIMESTAMP '{cutoff}' - INTERVAL 1 SECOND "
        "WHERE event_id = (SELECT min(event_id) FROM staging.stg_events WHERE event_timestamp < TIMESTAMP '2023-06-01')"
    )
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(before, build_features(con, keys))


@pytest.fixture(scope="module")
def trained(synth_con):
    return train_churn(synth_con, ChurnConfig())


def test_model_beats_baselines_on_planted_signal(trained):
    r = trained
    cand = r.metrics["candidate"]
    assert r.baselines == ["days_since_last_order", "logistic_rfm", "bgnbd"]
    assert len(r.plans) == 3 and [p.test.month for p in r.plans] == [4, 5, 6]  # three consecutive test cutoffs
    for b in r.baselines:
        assert cand["roc_auc"] >= r.metrics[b]["roc_auc"] + 0.02, (b, cand, r.metrics[b])
        assert cand["brier"] <= r.metrics[b]["brier"]
    assert r.gate["passed"] and r.gate["champion"] == "candidate", r.gate["reasons"]
    interval = r.gate["checks"]["auc_difference_interval"]
    assert 0 < interval["low"] < interval["value"] < interval["high"]
    # BG/NBD scores the label (P(no purchase within H)), so it beats the rank-only recency.
    assert r.metrics["bgnbd"]["roc_auc"] > r.metrics["days_since_last_order"]["roc_auc"]
    assert set(r.bgnbd_params) == {p.test.isoformat() for p in r.plans}
    assert all(p["penalizer"] == 0.0 and p["r"] > 0 and p["alpha"] > 0 for p in r.bgnbd_params.values())
    assert 0.5 < cand["top_decile_vs_oracle"] <= 1.0
    # Calibration improves (or keeps) Brier and cannot change the ranking (sigmoid is monotonic).
    raw = r.metrics["candidate_uncalibrated"]
    assert cand["roc_auc"] == pytest.approx(raw["roc_auc"], abs=1e-9)
    assert cand["brier"] <= raw["brier"] + 1e-3
    rel = r.reliability["candidate"]
    assert len(rel) >= 5 and np.all(np.abs(rel["mean_predicted"] - rel["fraction_positive"]) < 0.2)
    assert list(r.lift["candidate"]["decile"]) == list(range(1, 11))
    assert r.rows["train"] > r.rows["calibration"] > 100
    # H derived from the shop: the gap p90 rounded up to 30 days.
    assert r.config.horizon_days == 30 * np.ceil(r.gaps["p90_days"] / 30)


def test_inter_purchase_gap_summary(synth_con):
    gaps = inter_purchase_gaps(synth_con)
    s = gap_summary(gaps)
    assert s["n_gaps"] == len(gaps) > 1000
    assert 0 < s["p50_days"] <= s["p75_days"] <= s["p90_days"] <= s["p95_days"]
    assert s["p90_days"] == pytest.approx(np.percentile(gaps, 90))
    assert len(inter_purchase_gaps(synth_con, before=dt.date(2023, 6, 1))) < len(gaps)


def test_horizon_adapts_to_the_gaps_or_says_what_to_set():
    gaps = {"n_gaps": 5000, "p90_days": 74.0}
    assert choose_horizon(gaps, ChurnConfig())[0] == 90
    assert choose_horizon({"n_gaps": 5000, "p90_days": 12.0}, ChurnConfig())[0] == 30  # lower bound
    assert choose_horizon(gaps, ChurnConfig(horizon_days=120))[0] == 120
    with pytest.raises(HorizonMismatch, match="at least 90"):
        choose_horizon(gaps, ChurnConfig(horizon_days=60))
    with pytest.raises(HorizonMismatch, match="max_horizon_days=365.*at least 420"):
        choose_horizon({"n_gaps": 5000, "p90_days": 400.0}, ChurnConfig())
    assert choose_horizon({"n_gaps": 10, "p90_days": 400.0}, ChurnConfig())[0] == 90  # too few gaps to judge


def test_cdnow_refuses_a_90_day_horizon():
    # CDNOW's customers buy every few months: p90 of the gaps is ~200 days.
    con = duckdb.connect()
    load_cdnow(con)
    with pytest.raises(HorizonMismatch, match=r"horizon_days=90 .* \(200 days .* at least 210"):
        train_churn(con, ChurnConfig(horizon_days=90))


def _fold(rng, n: int, gain: float, cutoff: str, calibrated: bool = True) -> evaluate.FoldScores:
    """A cutoff where the baseline sees a noisy signal and the candidate a less noisy one."""
    y = rng.random(n) < 0.4
    signal = y + rng.normal(0, 1, n)
    base = 1 / (1 + np.exp(-(signal - 0.4) * 1.5))
    cand_signal = y + rng.normal(0, 1 / (1 + gain * 12), n)
    cand = 1 / (1 + np.exp(-(cand_signal - 0.4) * 3))
    if not calibrated:
        cand = 0.5 + cand / 2
    ids = np.array([f"c{i}" for i in range(n)])
    return evaluate.FoldScores(cutoff, y.astype(int), ids, {"candidate": cand, "baseline": base})


def test_gate_rules():
    cfg = ChurnConfig(n_bootstrap=200)
    rng = np.random.default_rng(0)
    folds = [_fold(rng, 3000, 0.5, f"2024-0{m}-01") for m in (4, 5, 6)]
    ok = evaluate.gate(folds, ["baseline"], {"candidate", "baseline"}, cfg)
    assert ok["passed"] and ok["champion"] == "candidate" and ok["best_baseline"] == "baseline"
    assert ok["checks"]["auc_difference_interval"]["low"] > 0
    # The same margin demanded above what the candidate has: refused, the baseline scores.
    strict = evaluate.gate(folds, ["baseline"], {"candidate", "baseline"}, ChurnConfig(min_auc_gain=0.5))
    assert not strict["passed"] and strict["champion"] == "baseline" and "ROC-AUC" in strict["reasons"][0]
    # A mean gain over the margin on a few dozen customers: the interval straddles 0.
    few = [_fold(np.random.default_rng(s), 40, 0.05, f"2024-0{m}-01") for s, m in ((1, 4), (2, 5), (3, 6))]
    g = evaluate.gate(few, ["baseline"], {"candidate", "baseline"}, cfg)
    assert g["checks"]["roc_auc"]["passed"] and g["checks"]["brier"]["passed"]
    assert not g["passed"] and len(g["reasons"]) == 1 and "interval" in g["reasons"][0]
    assert g["checks"]["auc_difference_interval"]["low"] < 0 < g["checks"]["auc_difference_interval"]["high"]
    # A better ranking with worse probabilities than the baseline: refused on Brier.
    skewed = [_fold(np.random.default_rng(s), 3000, 0.5, f"2024-0{m}-01", calibrated=False) for s, m in ((4, 4), (5, 5), (6, 6))]
    b = evaluate.gate(skewed, ["baseline"], {"candidate", "baseline"}, cfg)
    assert not b["passed"] and b["reasons"] == [b["reasons"][0]] and "Brier" in b["reasons"][0]


def test_bootstrap_resamples_customers_not_rows():
    rng = np.random.default_rng(7)
    fold = _fold(rng, 600, 0.3, "2024-04-01")
    # The same customers at three cutoffs with identical rows: resampling customers moves the
    # three together, so the interval is as wide as for one cutoff — not sqrt(3) narrower.
    one = evaluate.bootstrap_auc_difference([fold], "candidate", "baseline", 300, 1)
    three = evaluate.bootstrap_auc_difference([fold, fold, fold], "candidate", "baseline", 300, 1)
    assert three["n_customers"] == 600
    assert three["high"] - three["low"] == pytest.approx(one["high"] - one["low"], rel=0.05)


def test_gate_promotes_and_falls_back_to_the_best_baseline(synth_con, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    good = train_and_register(synth_con, registry, ChurnConfig())
    assert registry.promoted(CHURN_MODEL) is None  # training alone never promotes
    assert gate_and_promote(registry, good.version.version)["passed"]
    assert registry.promoted(CHURN_MODEL).version == good.version.version
    assert promoted_kind(registry) == "candidate"
    # Without the session features the candidate does not beat BG/NBD on this shop: refused,
    # and the best baseline of that evaluation becomes the champion that scores.
    weak = train_and_register(synth_con, registry, ChurnConfig(use_session_features=False))
    decision = gate_and_promote(registry, weak.version.version)
    assert not decision["passed"] and "ROC-AUC" in decision["reasons"][0]
    assert decision["champion"] == decision["best_baseline"] == "bgnbd"
    assert registry.promoted(CHURN_MODEL).version == weak.version.version
    assert promoted_kind(registry) == "bgnbd"
    with pytest.raises(PermissionError):
        registry.promote(CHURN_MODEL, weak.version.version, decision)  # the refused candidate itself
    with pytest.raises(PermissionError):
        registry.promote(CHURN_MODEL, weak.version.version, decision, model_kind="logistic_rfm")  # not the champion
    scores, mv = score_with_promoted(synth_con, registry)
    assert mv.version == weak.version.version
    assert set(scores["model_kind"]) == {"bgnbd"} and set(scores["model_version"]) == {weak.version.version}
    assert scores["score"].between(0, 1).all() and len(scores) > 300
    assert scores.attrs["scoring"]["bgnbd_params"]["penalizer"] == 0.0
    saved = weak.version.metrics
    assert saved["bgnbd_params"] and saved["horizon_days"] == weak.result.config.horizon_days


def test_scoring_covers_every_current_customer(synth_con, trained):
    as_of = dt.date(2024, 8, 24)
    current = current_customers(synth_con, as_of, ChurnConfig())
    assert len(current) > 300
    for kind in ["candidate", *trained.baselines]:
        scores = score_customers(synth_con, trained.model, "v-test", trained.config, as_of=as_of, model_kind=kind)
        assert sorted(scores["customer_id"]) == sorted(current)
        assert set(scores["model_kind"]) == {kind}
        assert scores["score"].between(0, 1).all()
        expected_band = np.where(scores["score"] >= 0.6, "high", np.where(scores["score"] >= 0.3, "medium", "low"))
        assert (scores["band"].to_numpy() == expected_band).all()
        if kind == "candidate":
            assert set(scores["band"]) == {"low", "medium", "high"}


def test_scores_rank_the_latent_churn_state(tmp_path):
    con = duckdb.connect()
    truth_file = tmp_path / "ground_truth.json"
    shop = build_synthetic_warehouse(con, customers=2000, days=560, seed=21, ground_truth_path=truth_file)
    r = train_churn(con, ChurnConfig())
    scores = score_customers(con, r.model, "v", r.config, as_of=shop.end)
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


def test_a_shop_without_events_trains_and_scores_on_order_features(caplog):
    """Orders only: every session feature is empty or 0 and every channel unknown. Training
    drops those columns (and says so) instead of crashing in HistGradientBoosting's binning."""
    con = duckdb.connect()
    build_synthetic_warehouse(con, customers=1200, days=500, seed=5)
    con.execute("DELETE FROM staging.stg_events")
    con.execute("DELETE FROM marts.fct_sessions")
    con.execute("UPDATE marts.dim_customers SET acquisition_channel = NULL")
    with caplog.at_level("WARNING", logger="ml.churn.features"):
        r = train_churn(con, ChurnConfig())
    session_features = ["sessions_7d", "sessions_30d", "sessions_90d", "session_ratio_7_30", "session_ratio_30_90",
                        "days_since_last_session", "acquisition_channel"]
    assert set(session_features) <= set(r.dropped_features)
    assert not set(session_features) & set(r.model["features"])
    assert {"recency_days", "frequency", "monetary"} <= set(r.model["features"])
    assert any("dropping" in m and "days_since_last_session" in m for m in caplog.messages)
    assert any(n.startswith("dropped empty or constant features") for n in r.notes)
    assert 0.5 < r.metrics["candidate"]["roc_auc"] <= 1
    champion = r.gate["champion"]
    scores = score_customers(con, r.model, "v-orders-only", r.config, as_of=r.plan.test, model_kind=champion)
    assert len(scores) > 100 and scores["score"].between(0, 1).all()
