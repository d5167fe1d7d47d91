"""Rule files: the shipped default is valid; invalid files fail naming rule and field."""
from __future__ import annotations

import textwrap

import duckdb
import pytest

from nightjar.alerts import sample
from nightjar.alerts.rules import RuleFileError, check_against_warehouse, load_rules, parse_rules
from nightjar.settings import DEFAULT_ALERTS_FILE, get_settings


def _load(tmp_path, text: str):
    p = tmp_path / "rules.yml"
    p.write_text(textwrap.dedent(text))
    return load_rules(p)


def test_default_rules_ship_and_are_the_settings_default():
    assert get_settings({}).alerts_file == DEFAULT_ALERTS_FILE
    rs = load_rules(DEFAULT_ALERTS_FILE)
    names = {r.name for r in rs.rules}
    assert {"checkout_outage", "revenue_drop", "conversion_drop", "traffic_anomaly"} <= names
    outage = rs.get("checkout_outage")
    assert outage.when and outage.when[0].metric == "sessions" and outage.when[0].expect == "normal"
    assert {r.type for r in rs.rules} == {"change", "anomaly", "forecast_band", "threshold"}
    assert "marts.fct_daily_metrics" in {f.table for f in rs.freshness}
    # data-quality rules watch the monitoring.dq_* measures with the same engine
    dq = [r for r in rs.rules if r.category == "data_quality"]
    assert {r.table.split(".")[0] for r in dq} == {"monitoring"} and len(dq) >= 8
    assert all(r.name.startswith("dq_") for r in dq)
    # revenue_drop is not evaluated on holidays; baselines of change/anomaly rules skip them
    assert rs.get("revenue_drop").condition.p("holidays") == "skip"
    assert rs.get("traffic_anomaly").condition.p("holidays") == "exclude"
    assert len({r.fingerprint for r in rs.rules}) == len(rs.rules)


def test_invalid_rules_name_rule_and_field(tmp_path):
    with pytest.raises(RuleFileError) as err:
        _load(tmp_path, """
            rules:
              - name: revenue_drop
                metric: net_revenue
                type: change
                direction: sideways
                severity: urgent
                channels: [slack, pager]
              - name: spike
                metric: sessions
                type: anomaly
                window: 5
                for: 0
                repeat_interval: 2h
              - name: bad_threshold
                metric: orders
                type: threshold
                op: "=<"
                value: "ten"
              - name: spike
                metric: orders
                type: wobble
        """)
    msg = str(err.value)
    expected = [
        "rule 'revenue_drop': field 'percent': is required",
        "rule 'revenue_drop': field 'severity': must be one of info, warning, critical",
        "rule 'revenue_drop': field 'channels': unknown channel(s) pager",
        "rule 'spike': field 'window': must be at least 14 days",
        "rule 'spike': field 'for': must be an integer >= 1",
        "rule 'spike': field 'repeat_interval': expected a number of days",
        "rule 'bad_threshold': field 'value': must be int/float",
        "rule 'spike': field 'name': is used by more than one rule",
        "rule 'spike': field 'type': must be one of threshold, change, anomaly, forecast_band",
    ]
    for line in expected:
        assert line in msg, f"missing {line!r} in:\n{msg}"
    assert "rules.yml" in msg


def test_value_checks_and_unknown_fields(tmp_path):
    with pytest.raises(RuleFileError) as err:
        _load(tmp_path, """
            rules:
              - name: r1
                metric: "orders; drop table marts.fct_daily_metrics"
                type: threshold
                op: "<"
                value: 1
                sensitivity: 3
                no_data: panic
                mute: [{start: 2025-02-01, end: 2025-01-01}]
              - name: r2
                metric: orders
                table: raw.orders
                type: threshold
                op: "<"
                value: 1
        """)
    msg = str(err.value)
    assert "rule 'r1': field 'metric': must be a column name" in msg
    assert "rule 'r1': field 'sensitivity': is not a parameter of type 'threshold'" in msg
    assert "rule 'r1': field 'no_data': must be one of alert, ok, keep" in msg
    assert "rule 'r1': field 'mute[0]': end is before start" in msg
    assert "rule 'r2': field 'table': 'raw.orders' is not an allowed mart" in msg


def test_yaml_errors_and_empty_files(tmp_path):
    with pytest.raises(RuleFileError, match="not valid YAML"):
        _load(tmp_path, "rules: [name: x\n")
    with pytest.raises(RuleFileError, match="field 'rules': must be a non-empty list"):
        _load(tmp_path, "rules: []\n")
    with pytest.raises(RuleFileError, match="cannot read the rule file"):
        load_rules(tmp_path / "missing.yml")


def test_metrics_are_checked_against_the_mart(tmp_path):
    con = duckdb.connect()
    con.execute(sample.DDL)
    rs = parse_rules({"rules": [
        {"name": "ok_rule", "metric": "orders", "type": "threshold", "op": "<", "value": 1},
        {"name": "typo", "metric": "order", "type": "threshold", "op": "<", "value": 1},
        {"name": "text_metric", "metric": "metric_date", "type": "threshold", "op": "<", "value": 1},
        {"name": "gated", "metric": "orders", "type": "threshold", "op": "<", "value": 1,
         "when": [{"metric": "sesions", "type": "threshold", "op": ">", "value": 1}]},
        {"name": "by_country", "metric": "orders", "type": "threshold", "op": "<", "value": 1,
         "filter": {"country": "DE"}},
    ]})
    problems = check_against_warehouse(rs, con)
    assert not [p for p in problems if "ok_rule" in p]
    assert any(p.startswith("rule 'typo': field 'metric': 'order' is not a column of marts.fct_daily_metrics")
               for p in problems)
    assert any(p.startswith("rule 'text_metric': field 'metric': 'metric_date' is DATE, not numeric")
               for p in problems)
    assert any(p.startswith("rule 'gated': field 'when[0].metric': 'sesions'") for p in problems)
    assert any(p.startswith("rule 'by_country': field 'filter': 'country'") for p in problems)


def test_names_and_columns_with_a_trailing_newline_are_refused():
    # YAML block scalars (`name: |`) keep the final newline
    with pytest.raises(RuleFileError) as err:
        parse_rules({"rules": [
            {"name": "revenue_drop\n", "metric": "orders", "type": "threshold", "op": "<", "value": 1},
            {"name": "by_day", "metric": "orders\n", "type": "threshold", "op": "<", "value": 1,
             "filter": {"country\n": "DE"}},
        ], "freshness": [{"name": "stale\n", "table": "marts.fct_daily_metrics", "max_lag_days": 2}]})
    msg = str(err.value)
    assert "rule 'revenue_drop\n': field 'name': must be lower_snake_case" in msg
    assert "rule 'by_day': field 'metric': must be a column name" in msg
    assert "rule 'by_day': field 'filter'" in msg
    assert "freshness 'stale\n': field 'name': must be lower_snake_case" in msg


def _rule_on_the_mart(**extra):
    return {"name": "filtered", "metric": "orders", "type": "threshold", "op": "<", "value": 1, **extra}


def test_filter_values_are_checked_against_the_column_type(tmp_path):
    import datetime as dt

    from nightjar.alerts import engine
    from nightjar.alerts.config import load_config

    con = duckdb.connect()
    con.execute(sample.DDL)
    con.execute("insert into marts.fct_daily_metrics (metric_date, orders) values ('2025-03-03', 3)")
    bad = parse_rules({"rules": [_rule_on_the_mart(filter={"metric_date": "yesterday"})]})
    problems = check_against_warehouse(bad, con)
    assert problems == ["rule 'filtered': field 'filter': 'metric_date' is a DATE column: "
                        "the value must be a date (YYYY-MM-DD), not 'yesterday'"]
    # evaluation refuses it as a rule-file error, not a database traceback
    with pytest.raises(RuleFileError, match="'metric_date' is a DATE column"):
        engine.evaluate_rules(con, bad, load_config({}), today=dt.date(2025, 3, 4))
    numeric = parse_rules({"rules": [{**_rule_on_the_mart(filter={"sessions": "many"}), "name": "n"}]})
    assert check_against_warehouse(numeric, con) == [
        "rule 'n': field 'filter': 'sessions' is a BIGINT column: the value must be a number, not 'many'"]
    good = parse_rules({"rules": [_rule_on_the_mart(filter={"metric_date": "2025-03-03", "sessions": 0})]})
    assert check_against_warehouse(good, con) == []


def test_an_unknown_forecast_series_is_refused(tmp_path):
    with pytest.raises(RuleFileError, match="rule 'band': field 'series': must be 'total' or 'category:<name>'"):
        parse_rules({"rules": [{"name": "band", "metric": "orders", "type": "forecast_band", "series": "totl"}]})

    con = duckdb.connect()
    con.execute(sample.DDL)
    con.execute("create schema ml; create table ml.demand_forecast (series_id varchar, metric varchar, "
                "forecast_date date, yhat double, yhat_lower double, yhat_upper double, model varchar, "
                "model_version varchar, generated_at timestamp)")
    con.execute("insert into ml.demand_forecast values ('total', 'orders', '2025-03-03', 1, 0, 2, 'm', 'v', now()), "
                "('category:books', 'units', '2025-03-03', 1, 0, 2, 'm', 'v', now())")
    rs = parse_rules({"rules": [
        {"name": "ok_band", "metric": "orders", "type": "forecast_band"},
        {"name": "garden", "metric": "units", "type": "forecast_band", "series": "category:garden"},
        {"name": "wrong_metric", "metric": "orders", "type": "forecast_band", "series": "category:books"},
    ]})
    assert check_against_warehouse(rs, con) == [
        "rule 'garden': field 'series': ml.demand_forecast has no forecast for series 'category:garden', "
        "metric 'units' (published: category:books/units, total/orders)",
        "rule 'wrong_metric': field 'forecast_metric': ml.demand_forecast has no forecast for series "
        "'category:books', metric 'orders' (published: category:books/units, total/orders)",
    ]
