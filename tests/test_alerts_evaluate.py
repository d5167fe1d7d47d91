"""Evaluation against a real (in-memory) DuckDB: planted incidents, quiet days, the state
machine (for, keep_firing_for, hysteresis, repeat, cooldown, no_data, mute) and catch-up."""
from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from nightjar.alerts import engine, sample
from nightjar.alerts.config import AlertsConfig
from nightjar.alerts.rules import load_rules, parse_rules
from nightjar.settings import DEFAULT_ALERTS_FILE

START = date(2024, 1, 1)
OUTAGE = date(2024, 6, 12)  # a Wednesday: orders = 0, sessions normal
SPIKE = date(2024, 9, 3)  # bot traffic: sessions x3
REVENUE_DROP = date(2024, 11, 5)  # two days at a third of the orders
INCIDENTS = [sample.Incident("checkout_outage", OUTAGE), sample.Incident("traffic_spike", SPIKE),
             sample.Incident("revenue_drop", REVENUE_DROP, days=2)]
CFG = AlertsConfig()  # only the log channel is configured


def _shop_con(seed=1, incidents=INCIDENTS, days=430) -> tuple[duckdb.DuckDBPyConnection, sample.SampleShop]:
    shop = sample.generate(START, days, seed=seed, incidents=incidents)
    con = duckdb.connect()
    sample.write(con, shop)
    return con, shop


def test_planted_incidents_fire_the_expected_rules_on_the_right_dates():
    con, _ = _shop_con()
    rows = {r.rule: r for r in engine.backtest(con, load_rules(DEFAULT_ALERTS_FILE), days=365)}
    assert rows["checkout_outage"].fired_dates == [OUTAGE.isoformat()]
    assert rows["traffic_anomaly"].fired_dates == [SPIKE.isoformat()]
    # revenue_drop needs two breaching days (`for: 2`): it fires on the second day of the drop
    assert rows["revenue_drop"].fired_dates == [(REVENUE_DROP + timedelta(days=1)).isoformat()]
    # the one-day outage is not a 'revenue drop' (for: 2) nor a traffic anomaly (sessions normal)
    assert OUTAGE.isoformat() not in rows["traffic_anomaly"].fired_dates
    # backtest wrote nothing
    assert con.execute("select count(*) from information_schema.schemata where schema_name = 'alerts'").fetchone()[0] == 0


def test_quiet_year_false_alert_rate_of_default_rules():
    """A simulated year without incidents, 5 seeds: report and bound false episodes."""
    rs = load_rules(DEFAULT_ALERTS_FILE)
    seeds = range(5)
    false_episodes: dict[str, int] = {r.name: 0 for r in rs.rules}
    evaluated = 0
    for seed in seeds:
        con, _ = _shop_con(seed=seed, incidents=[], days=400)
        for row in engine.backtest(con, rs, days=365):
            false_episodes[row.rule] += row.episodes
            evaluated += row.evaluated
    rule_years = len(rs.rules) * len(seeds)
    rate = sum(false_episodes.values()) / rule_years
    print(f"\nfalse alerts of the default rules over {len(seeds)} simulated quiet years: {false_episodes} "
          f"= {rate:.2f} episodes per rule-year ({sum(false_episodes.values())} of {evaluated} evaluations)")
    assert false_episodes["checkout_outage"] == 0
    assert false_episodes["traffic_anomaly"] <= 1
    assert rate <= 0.25


# --- the state machine, night by night ----------------------------------------------------
def _rules(**overrides):
    rule = {"name": "low_orders", "metric": "orders", "type": "threshold", "op": "<", "value": 10,
            "channels": ["log"], "repeat_interval": 0}
    rule.update(overrides)
    return parse_rules({"rules": [rule]})


def _nightly(series, rs, start=date(2025, 3, 3), con=None, skip=()):
    """Load one metric date per night and evaluate; returns {night index: [(kind, key)]}."""
    con = con or duckdb.connect()
    con.execute(sample.DDL)
    out = {}
    for i, v in enumerate(series):
        d = start + timedelta(days=i)
        if i not in skip:
            con.execute("insert into marts.fct_daily_metrics (metric_date, orders, sessions) values (?, ?, 1000)", [d, v])
        s = engine.evaluate_rules(con, rs, CFG, today=d + timedelta(days=1))
        kinds = [k.split(":")[2] for k in s.notifications]
        if kinds:
            out[i] = kinds
    return out, con


def test_for_requires_consecutive_breaches_and_pending_cancels():
    out, con = _nightly([50, 5, 50, 5, 5, 5, 50], _rules(**{"for": 2}))
    assert out == {4: ["firing"], 6: ["resolved"]}
    transitions = con.execute("select transition from alerts.alert_events where transition is not null "
                              "order by metric_date").fetchall()
    assert [t[0] for t in transitions] == ["pending", "cancelled", "pending", "firing", "resolved"]
    ep = con.execute("select episode, started_date, fired_date, resolved_date, status, notified "
                     "from alerts.alert_episodes").fetchall()
    assert ep == [(1, date(2025, 3, 6), date(2025, 3, 7), date(2025, 3, 9), "resolved", True)]


def test_repeat_interval_reminds_while_firing():
    out, con = _nightly([50, 5, 5, 5, 5, 5, 50], _rules(repeat_interval="2d"))
    assert out == {1: ["firing"], 3: ["repeat"], 5: ["repeat"], 6: ["resolved"]}
    keys = [r[0] for r in con.execute("select idempotency_key from alerts.outbox order by created_at, 1").fetchall()]
    assert len(keys) == len(set(keys)) == 4


def test_keep_firing_for_prevents_flapping():
    out, _ = _nightly([50, 5, 50, 5, 50, 50, 50], _rules(keep_firing_for=1))
    assert out == {1: ["firing"], 5: ["resolved"]}
    flappy, _ = _nightly([50, 5, 50, 5, 50, 50, 50], _rules())
    assert flappy == {1: ["firing"], 2: ["resolved"], 3: ["firing"], 4: ["resolved"]}


def test_resolve_threshold_hysteresis():
    out, _ = _nightly([50, 5, 15, 15, 25], _rules(resolve_value=20))
    assert out == {1: ["firing"], 4: ["resolved"]}


def test_cooldown_suppresses_a_second_episode_soon_after():
    out, con = _nightly([50, 5, 50, 5, 50, 50, 50, 50, 5, 50], _rules(cooldown="5d"))
    assert out == {1: ["firing"], 2: ["resolved"], 8: ["firing"], 9: ["resolved"]}
    eps = con.execute("select episode, notified from alerts.alert_episodes order by 1").fetchall()
    assert eps == [(1, True), (2, False), (3, True)]
    why = con.execute("select notification from alerts.alert_events where metric_date = ?",
                      [date(2025, 3, 6)]).fetchone()[0]
    assert why == "suppressed:cooldown"


@pytest.mark.parametrize("policy, expected", [
    ("keep", {1: ["firing"], 5: ["resolved"]}),
    ("ok", {1: ["firing"], 2: ["resolved"]}),
    ("alert", {1: ["firing"], 5: ["resolved"]}),
])
def test_no_data_policy(policy, expected):
    # night 2 has a NULL value, night 3 no row at all (a gap), night 4 NULL again
    rs = _rules(no_data=policy)
    con = duckdb.connect()
    out, con = _nightly([50, 5, None, 50, None, 50], rs, con=con, skip={3})
    # night 3's missing row is evaluated (as no data) on night 4 together with night 4
    assert out == expected
    outcomes = [r[0] for r in con.execute("select outcome from alerts.alert_events order by metric_date").fetchall()]
    assert outcomes[2:5] == ["no_data", "no_data", "no_data"]


def test_no_data_alert_fires_on_missing_values():
    out, _ = _nightly([50, None, None, 50], _rules(no_data="alert", value=-1))
    assert out == {1: ["firing"], 3: ["resolved"]}


def test_mute_window_defers_the_firing_notification():
    # 2025-03-04 is a Tuesday; Tuesdays and Wednesdays are muted
    out, con = _nightly([50, 5, 5, 5, 50], _rules(mute=[{"weekdays": ["tue", "wed"], "reason": "deploys"}]))
    assert out == {3: ["firing"], 4: ["resolved"]}
    notes = [r[0] for r in con.execute("select notification from alerts.alert_events order by metric_date").fetchall()]
    assert notes[1:3] == ["suppressed:muted (deploys)"] * 2


# --- catch-up after many days ------------------------------------------------------------------
def test_backfill_catch_up_is_one_notification_per_episode_and_each_date_once():
    shop = sample.generate(START, 430, seed=1, incidents=INCIDENTS)
    con = duckdb.connect()
    con.execute(sample.DDL)
    rs = load_rules(DEFAULT_ALERTS_FILE)
    sample.append_rows(con, shop, START, date(2024, 10, 31))
    first = engine.evaluate_rules(con, rs, CFG, today=date(2024, 11, 1))
    assert first.evaluations == 7 * 4 + 1  # initial lookback of 7 dates x 4 mart rules (+ freshness)
    # a warehouse without the monitoring.dq_* measures: their rules and freshness policies wait
    dq = {r.name for r in rs.rules if r.category == "data_quality"} | {"dq_events_stale", "dq_shop_stale"}
    assert {k for k, why in first.skipped.items() if why.endswith("is not built yet")} == dq
    # the pipeline was down: 30 days arrive at once, with a 2-day revenue drop inside
    sample.append_rows(con, shop, date(2024, 11, 1), date(2024, 11, 30))
    catch = engine.evaluate_rules(con, rs, CFG, today=date(2024, 12, 1))
    per_rule = {r: len(ds) for r, ds in catch.dates_by_rule.items()}
    assert per_rule == {"checkout_outage": 30, "revenue_drop": 30, "conversion_drop": 30, "traffic_anomaly": 30}
    keys = catch.notifications
    revenue = [k for k in keys if k.startswith(rs.get("revenue_drop").fingerprint)]
    # the episode fired and resolved inside the replay: one notification, in its final state
    assert len(revenue) == 1 and revenue[0].endswith(":resolved")
    payload = con.execute("select payload->>'fired_date', payload->'catch_up'->>'notifications_coalesced' "
                          "from alerts.outbox where idempotency_key = ?", [revenue[0]]).fetchone()
    assert payload == ((REVENUE_DROP + timedelta(days=1)).isoformat(), "2")
    # one notification per episode overall
    n_episodes = con.execute("select count(*) from alerts.alert_episodes where fired_date >= '2024-11-01'").fetchone()[0]
    assert len([k for k in keys if not k.startswith(rs.freshness[0].fingerprint)]) == n_episodes
    # every metric date evaluated exactly once, and a rerun evaluates nothing new
    dup = con.execute("select count(*) from (select fingerprint, metric_date, count(*) c from alerts.alert_events "
                      "group by all having c > 1)").fetchone()[0]
    assert dup == 0
    again = engine.evaluate_rules(con, rs, CFG, today=date(2024, 12, 1))
    assert again.dates_by_rule == {} and again.notifications == []


def test_forecast_band_waits_for_the_forecast():
    shop = sample.generate(START, 120, seed=3, incidents=[sample.Incident("revenue_drop", date(2024, 4, 20), 3)])
    con = duckdb.connect()
    sample.write(con, shop)
    con.execute("delete from ml.demand_forecast where forecast_date > '2024-04-21'")
    rs = parse_rules({"rules": [{"name": "orders_band", "metric": "orders", "type": "forecast_band",
                                 "direction": "down", "for": 2, "channels": ["log"]}]})
    s1 = engine.evaluate_rules(con, rs, CFG, today=date(2024, 5, 1))
    assert s1.dates_by_rule["orders_band"][-1] == "2024-04-21"  # not past the last published forecast
    sample.write(con, shop)  # the forecast for the remaining days is published
    con.execute("delete from alerts.alert_events where false")
    s2 = engine.evaluate_rules(con, rs, CFG, today=date(2024, 5, 1))
    assert s2.dates_by_rule["orders_band"][0] == "2024-04-22"
    fired = con.execute("select metric_date from alerts.alert_events where transition = 'firing'").fetchall()
    assert fired == [(date(2024, 4, 21),)]


def test_cli_backtest_prints_a_table_and_writes_nothing(data_dir, capsys):
    from nightjar.cli import main

    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    sample.write(con, sample.generate(START, 400, seed=1, incidents=[sample.Incident("checkout_outage",
                                                                                      date(2024, 12, 4))]))
    con.close()
    assert main(["alerts", "backtest", "--days", "90"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("checkout_outage"))
    assert line.split()[-1] == "2024-12-04"
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from information_schema.schemata where schema_name = 'alerts'").fetchone()[0] == 0
    con.close()
    assert main(["alerts", "test", "checkout_outage", "--channel", "log"]) == 0
    assert "log      ok" in capsys.readouterr().out


def test_the_day_in_progress_is_not_judged_until_it_has_ended():
    """A 02:00 nightly run already sees two hours of today: a collapsed partial day
    must not fire the outage rule; it is evaluated on the next run, once complete."""
    shop = sample.generate(START, 200, seed=1, incidents=[])
    con = duckdb.connect()
    con.execute(sample.DDL)
    rs = load_rules(DEFAULT_ALERTS_FILE)
    last = START + timedelta(days=199)
    sample.append_rows(con, shop, START, last)
    # today's partial row: a tenth of the traffic, no orders yet
    con.execute("update marts.fct_daily_metrics set sessions = sessions // 10, orders = 0, units = 0, "
                "gross_revenue = 0, net_revenue = 0 where metric_date = ?", [last])
    partial = engine.evaluate_rules(con, rs, CFG, today=last)
    assert all(last.isoformat() not in dates for dates in partial.dates_by_rule.values())
    assert "checkout_outage" not in partial.firing
    # the next night the day is complete (here: still collapsed) and is judged exactly once
    complete = engine.evaluate_rules(con, rs, CFG, today=last + timedelta(days=1))
    assert complete.dates_by_rule["checkout_outage"] == [last.isoformat()]
