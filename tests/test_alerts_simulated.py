"""The default alert rules against the simulator's planted incidents, end to end:
simulated landing files and shop → dlt → dbt marts → `nightjar alerts backtest`."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from nightjar.alerts.engine import backtest
from nightjar.alerts.rules import load_rules
from nightjar.runner import run_pipeline
from nightjar.settings import DEFAULT_ALERTS_FILE, get_settings
from nightjar.simulator import simulate

pytestmark = pytest.mark.slow


def test_planted_outage_and_marketing_spike_fire_the_default_rules_on_their_dates(data_dir: Path) -> None:
    # Seed 3 plants both incidents after day 110 of 150, past every rule's minimum history;
    # 2,000 customers give ~16 orders a day, so an outage stands out from daily noise.
    simulate(data_dir, start=date(2025, 1, 1), days=150, customers=2000, seed=3)
    truth = json.loads((data_dir / "ground_truth.json").read_text())["incidents"]
    outage, spike = truth["checkout_outage"]["date"], truth["marketing_spike"]["date"]

    result = run_pipeline("group:ingestion or group:staging or group:marts", print_summary=False)
    assert result.success

    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        rows = {r.rule: r for r in backtest(con, load_rules(DEFAULT_ALERTS_FILE), days=150)}
    # The outage fires the critical rule on its day, and only then.
    assert rows["checkout_outage"].fired_dates == [outage]
    # The flash sale triples traffic: an anomaly on that day.
    assert spike in rows["traffic_anomaly"].fired_dates
    # The bot spike must NOT look like traffic: bots are excluded from sessions.
    assert truth["bot_spike"]["date"] not in rows["traffic_anomaly"].fired_dates
