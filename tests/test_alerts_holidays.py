"""Holiday- and season-aware baselines, and scoring a backtest against planted incidents."""
from __future__ import annotations

import textwrap
from datetime import date, timedelta

import duckdb
import pytest

from nightjar.alerts import engine
from nightjar.alerts import evaluate as ev
from nightjar.alerts.backtest_score import format_score, score_backtest
from nightjar.alerts.engine import BacktestRow
from nightjar.alerts.holiday_calendar import black_friday, calendar_for
from nightjar.alerts.rules import RuleFileError, load_rules, parse_rules


def test_us_calendar_marks_holidays_the_day_after_and_year_end():
    cal = calendar_for("US")
    assert cal.reason(date(2025, 7, 4)) == "Independence Day"
    assert cal.reason(date(2025, 7, 5)) == "day after Independence Day"
    assert cal.reason(date(2025, 7, 7)) is None
    assert all(cal.affected(date(2025, 12, 24) + timedelta(days=i)) for i in range(11))  # 24 Dec .. 3 Jan
    assert not cal.affected(date(2026, 1, 6))
    assert black_friday(2025) == date(2025, 11, 28) and black_friday(2026) == date(2026, 11, 27)
    assert cal.peak_season(date(2025, 12, 10)) and not cal.peak_season(date(2025, 11, 25))
    # peak-season days are a baseline for peak-season days only
    assert not cal.usable_reference(date(2025, 12, 9), date(2026, 1, 13))
    assert cal.usable_reference(date(2025, 12, 9), date(2025, 12, 16))
    # the country matters: 4 July is an ordinary day in Germany, 3 October is not
    de = calendar_for("de")
    assert de.reason(date(2025, 7, 4)) is None and de.reason(date(2025, 10, 3))


def test_calendar_off_and_unknown_country():
    off = calendar_for("none")
    assert not off.enabled and off.reason(date(2025, 12, 25)) is None
    assert off.usable_reference(date(2025, 12, 25), date(2026, 1, 6))
    with pytest.raises(ValueError, match="NIGHTJAR_HOLIDAY_COUNTRY='XX'"):
        calendar_for("XX")


def _rules(tmp_path, text: str):
    p = tmp_path / "rules.yml"
    p.write_text(textwrap.dedent(text))
    return load_rules(p)


def _january_after_a_december_peak() -> duckdb.DuckDBPyConnection:
    """Revenue of 1,000 a day, tripled from Black Friday to New Year, back to 1,000 from
    4 January: the return to normal that a naive baseline calls an incident. Thanksgiving
    itself is quiet (300)."""
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("create table marts.fct_daily_metrics (metric_date date, net_revenue double)")
    rows = []
    d = date(2025, 9, 1)
    while d <= date(2026, 2, 15):
        v = 3000.0 if black_friday(2025) <= d <= date(2026, 1, 3) else 1000.0
        rows.append((d, 300.0 if d == date(2025, 11, 27) else v))
        d += timedelta(days=1)
    con.executemany("insert into marts.fct_daily_metrics values (?, ?)", rows)
    return con


RULE = """
    version: 1
    rules:
      - name: revenue_drop
        metric: net_revenue
        type: change
        weeks: 4
        direction: down
        percent: 40
        holidays: {policy}
"""


def _fired(con, tmp_path, policy: str) -> list[str]:
    return engine.backtest(con, _rules(tmp_path, RULE.format(policy=policy)), days=120,
                           until=date(2026, 2, 15))[0].fired_dates


def test_change_baseline_skips_the_peak_season_and_holidays(tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_HOLIDAY_COUNTRY", "US")
    con = _january_after_a_december_peak()
    # without the calendar the quiet Thanksgiving and the January return to normal "drop"
    assert _fired(con, tmp_path, "ignore") == ["2025-11-27", "2026-01-04"]
    # with it, January is compared with November (like with like); Thanksgiving is still judged
    assert _fired(con, tmp_path, "exclude") == ["2025-11-27"]
    # `skip` does not judge the holidays themselves either
    assert _fired(con, tmp_path, "skip") == []
    # Thanksgiving is not a holiday in the United Kingdom
    monkeypatch.setenv("NIGHTJAR_HOLIDAY_COUNTRY", "GB")
    assert _fired(con, tmp_path, "skip") == ["2025-11-27"]


def test_a_real_drop_in_january_still_fires(tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTJAR_HOLIDAY_COUNTRY", "US")
    con = _january_after_a_december_peak()
    con.execute("update marts.fct_daily_metrics set net_revenue = 100 where metric_date = date '2026-01-14'")
    assert _fired(con, tmp_path, "skip") == ["2026-01-14"]


def test_anomaly_history_leaves_holidays_out():
    cal = calendar_for("US")
    d = date(2026, 1, 12)
    values = {d - timedelta(days=k): (5000.0 if cal.affected(d - timedelta(days=k)) or
                                      cal.peak_season(d - timedelta(days=k)) else 100.0 + k % 3)
              for k in range(1, 120)}
    values[d] = 101.0
    cond = parse_rules({"rules": [{"name": "a", "metric": "m", "type": "anomaly", "direction": "both"}]}).rules[0].condition
    data = ev.SeriesData({"m": values}, min(values), d, calendar=cal)
    obs = ev.observe(cond, data, d)
    assert obs.outcome == "ok" and abs(obs.expected - 101) < 2
    data_off = ev.SeriesData({"m": values}, min(values), d, calendar=calendar_for(""))
    assert ev.observe(cond, data_off, d).expected > 1000  # December dominates without the calendar


def test_holidays_parameter_is_validated(tmp_path):
    with pytest.raises(RuleFileError) as err:
        _rules(tmp_path, """
            rules:
              - {name: a, metric: orders, type: change, percent: 50, holidays: sometimes}
              - {name: b, metric: orders, type: threshold, op: "<", value: 1, holidays: exclude}
              - {name: c, metric: orders, type: threshold, op: "<", value: 1, holidays: skip}
        """)
    msg = str(err.value)
    assert "rule 'a': field 'holidays': must be one of exclude, skip, ignore" in msg
    assert "rule 'b': field 'holidays': type 'threshold' has no baseline" in msg
    assert "rule 'c'" not in msg


def test_monitoring_tables_are_alertable_raw_tables_are_not(tmp_path):
    rs = _rules(tmp_path, """
        tables:
          monitoring.dq_event_quality: {date_column: metric_date}
        rules:
          - {name: bots, metric: bot_share, table: monitoring.dq_event_quality, filter: {source: all},
             type: anomaly, direction: up}
    """)
    assert rs.rules[0].category == "data_quality"
    with pytest.raises(RuleFileError, match="only tables of the schemas marts, monitoring"):
        _rules(tmp_path, """
            tables:
              raw.events: {date_column: received_at}
            rules:
              - {name: a, metric: orders, type: threshold, op: "<", value: 1}
        """)


def _row(rule: str, severity: str, fired: list[str], category: str = "business") -> BacktestRow:
    return BacktestRow(rule, "change", severity, 100, len(fired), len(fired), len(fired), fired, category)


def test_score_matches_incidents_within_the_tolerance_and_counts_other_dates():
    incidents = {"checkout_outage": date(2026, 3, 2), "bot_spike": date(2026, 4, 10),
                 "tracking_outage": date(2026, 5, 5), "before_the_replay": date(2025, 1, 1)}
    rows = [
        _row("checkout_outage", "critical", ["2026-03-02", "2026-06-01"]),
        _row("revenue_drop", "critical", ["2026-03-03", "2026-06-01", "2026-07-09"]),
        _row("dq_bot_share_spike", "warning", ["2026-04-11"], "data_quality"),
        _row("traffic_anomaly", "warning", ["2026-05-07"]),  # two days late: not a detection
    ]
    score = score_backtest(rows, incidents, tolerance_days=1, first_date=date(2026, 1, 1),
                           last_date=date(2026, 12, 31))
    found = {i.kind: i for i in score.incidents}
    assert set(found) == {"checkout_outage", "bot_spike", "tracking_outage"}  # outside the replay: left out
    assert found["checkout_outage"].detected and found["checkout_outage"].delay_days == 0
    assert found["checkout_outage"].rules == ["checkout_outage", "revenue_drop"]
    assert found["bot_spike"].delay_days == 1 and found["bot_spike"].rules == ["dq_bot_share_spike"]
    assert score.missed == ["tracking_outage"]
    # two critical rules on 2026-06-01 are one date; 2026-07-09 another
    assert score.other_dates["critical"] == [date(2026, 6, 1), date(2026, 7, 9)]
    assert score.other_dates["warning"] == [date(2026, 5, 7)]
    assert score.other_by_rule["critical"] == {"checkout_outage": [date(2026, 6, 1)],
                                               "revenue_drop": [date(2026, 6, 1), date(2026, 7, 9)]}
    text = format_score(score)
    assert "tracking_outage" in text and "NO" in text and "critical     2" in text


def test_cli_refuses_an_unknown_holiday_country(data_dir, monkeypatch, capsys):
    from nightjar.cli import main

    monkeypatch.setenv("NIGHTJAR_HOLIDAY_COUNTRY", "XX")
    assert main(["alerts", "validate"]) == 2
    assert "NIGHTJAR_HOLIDAY_COUNTRY='XX'" in capsys.readouterr().err
    monkeypatch.setenv("NIGHTJAR_HOLIDAY_COUNTRY", "GB")
    assert main(["alerts", "validate"]) == 0
