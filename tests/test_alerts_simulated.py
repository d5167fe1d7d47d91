"""The default alert rules against the default simulated shop's planted incidents, end to end:
simulated landing files and shop → dlt → dbt marts and dq_* measures → `nightjar alerts backtest`
scored against `ground_truth.json`.

The two-year shop is the session's `default_shop` (tests/conftest.py), built once and shared
with tests/test_attribution_simulated.py; tests/test_alerts_dagster.py covers the alert asset
and its sensors."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from conftest import DEFAULT_SHOP_END
from nightjar.alerts.backtest_score import load_ground_truth, score_backtest
from nightjar.alerts.engine import backtest
from nightjar.alerts.rules import load_rules
from nightjar.cli import main
from nightjar.report import build_report
from nightjar.settings import DEFAULT_ALERTS_FILE, get_settings

pytestmark = pytest.mark.slow


def test_default_rules_find_every_planted_incident_of_the_default_shop(default_shop_env: Path, capsys) -> None:
    data_dir = default_shop_env
    incidents = load_ground_truth(data_dir / "ground_truth.json")
    assert set(incidents) == {"checkout_outage", "bot_spike", "marketing_spike", "tracking_outage"}

    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        # until the last simulated day: the day after holds only sessions that ran past midnight
        rows = backtest(con, load_rules(DEFAULT_ALERTS_FILE), days=730, until=DEFAULT_SHOP_END)
        report = build_report(con)
    score = score_backtest(rows, incidents, tolerance_days=1)
    detail = {i.kind: (i.date.isoformat(), i.delay_days, i.rules) for i in score.incidents}
    # every planted incident fires some rule on its day or the day after
    assert score.missed == [], detail
    # critical alerts on at most two other dates in two years
    assert len(score.other_dates["critical"]) <= 2, score.other_by_rule.get("critical")

    by_rule = {r.rule: r for r in rows}
    iso = {k: d.isoformat() for k, d in incidents.items()}
    # the outage fires the critical checkout rule on its day, and only then
    assert by_rule["checkout_outage"].fired_dates == [iso["checkout_outage"]]
    # the flash sale triples traffic: a traffic anomaly on that day
    assert iso["marketing_spike"] in by_rule["traffic_anomaly"].fired_dates
    # the bot spike is not traffic (bots are filtered out of sessions); the data monitor sees it
    assert iso["bot_spike"] not in by_rule["traffic_anomaly"].fired_dates
    assert iso["bot_spike"] in by_rule["dq_bot_share_spike"].fired_dates
    # events stopped while orders went on: the event-volume monitor, not the checkout rule
    assert iso["tracking_outage"] in by_rule["dq_event_volume_drop"].fired_dates
    assert iso["tracking_outage"] not in by_rule["checkout_outage"].fired_dates
    # post-holiday lulls are not revenue incidents
    assert [d for d in by_rule["revenue_drop"].fired_dates if d[5:7] == "01"] == []

    # the report has a data-quality section built from the dq_* measures
    dq = next(s for s in report.sections if s.id == "data-quality")
    assert dq.available and "bot share" in dq.body

    # the CLI scores itself against the data dir's ground truth
    assert main(["alerts", "backtest", "--days", "730"]) == 0
    out = capsys.readouterr().out
    assert "dq_bot_share_spike" in out and "data_quality" in out
    scored = out.split("detected  delay  rules")[1].split("alerts on other dates")[0].splitlines()
    for kind in incidents:
        line = next(ln for ln in scored if ln.startswith(kind))
        assert " yes " in line, line
    summary = json.loads((data_dir / "ground_truth.json").read_text())["incidents"]
    assert summary["tracking_outage"]["events_lost_from_hour_utc"] == 4
