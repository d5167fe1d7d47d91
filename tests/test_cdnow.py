"""CDNOW end to end: a real shop's 18 months of purchases (1997-01-01..1998-06-30, the copy
the `lifetimes` package ships) as an orders-only shop without a landing folder, through
`nightjar run`'s pipeline. How the file becomes shop tables: tests/cdnow_shop.py."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cdnow_shop import build_cdnow_shop, daily_totals, read_purchases
from nightjar.runner import run_pipeline
from nightjar.settings import get_settings
from querying import query

pytestmark = pytest.mark.slow


def test_cdnow_as_an_orders_only_shop(data_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    # CDNOW's inter-purchase gaps derive H = 210 days, which 18 months cannot hold three
    # evaluation splits of; the 90 days of the audit, set as a user would (ml/README.md).
    monkeypatch.setenv("NIGHTJAR_CHURN_HORIZON_DAYS", "90")
    monkeypatch.setenv("NIGHTJAR_CHURN_CHECK_HORIZON", "false")
    purchases = read_purchases()
    assert len(purchases) == 69_659 and len({p.customer for p in purchases}) == 23_570
    build_cdnow_shop(sa.create_engine(f"sqlite:///{data_dir / 'shop.sqlite'}"), purchases)

    result = run_pipeline()
    out = capsys.readouterr().out
    wh = get_settings().warehouse

    # Daily marts from the first order day (no 2000 floor, no partition start cuts them),
    # every day of the span, orders / gross revenue / units as the file has them.
    expected = daily_totals(purchases)
    daily = query(wh, "select metric_date, orders, gross_revenue, units, dau from marts.fct_daily_metrics "
                      "order by metric_date")
    first, last = date(1997, 1, 1), date(1998, 6, 30)
    assert [d for d, *_ in daily] == [first + timedelta(days=i) for i in range((last - first).days + 1)]
    for day, orders, gross, units, dau in daily:
        n, dollars, cds = expected.get(day, (0, 0, 0))
        assert (orders, units, dau) == (n, cds, 0), day
        assert gross == pytest.approx(float(dollars), abs=0.005), day
    assert query(wh, "select count(*), count(distinct customer_id) from staging.stg_orders") == [(69_659, 23_570)]
    assert query(wh, "select count(*) from marts.dim_customers") == [(23_570,)]
    assert query(wh, "select count(*) from marts.fct_sessions") == [(0,)]

    # A demand forecast of daily orders after the last day.
    forecast = query(wh, "select min(forecast_date), count(*) from ml.demand_forecast where series_id = 'total' "
                         "and metric = 'orders'")[0]
    assert forecast[0] > last and forecast[1] >= 28

    # Alert rules on order metrics are evaluated over the history (revenue_drop fires on
    # CDNOW's late-June 1998 dip); rules on event metrics have nothing to fire on.
    fired = {r[0] for r in query(wh, "select distinct rule_name from alerts.alert_events where transition = 'firing'")}
    assert "revenue_drop" in fired and not fired & {"conversion_drop", "traffic_anomaly"}

    # The summary says what a shop without events lacks, and leaves out event KPIs.
    assert "Data: orders only (no event data)" in out
    assert "No event data (no landing files)" in out
    kpis = [line.split()[0] for line in out.split("KPIs for 1998-06-30")[1].split("\n\n")[0].splitlines()[1:]]
    assert "Orders" in kpis and "AOV" in kpis and not {"DAU", "Sessions", "Conversion"} & set(kpis)

    # Churn scores are published (the candidate's gate verdict is in the registry when not).
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert result.success, f"failed steps: {failed}\n{out}"
    assert query(wh, "select count(*) > 0, min(score) >= 0, max(score) <= 1 from ml.churn_scores") == [(True,) * 3]
    # orders alone: the candidate does not beat the baselines, so a baseline scores
    kinds = {k for (k,) in query(wh, "select distinct model_kind from ml.churn_scores")}
    assert len(kinds) == 1 and kinds <= {"candidate", "days_since_last_order", "logistic_rfm", "bgnbd"}

    html = (data_dir / "reports" / "kpi_report_latest.html").read_text()
    assert "Nightjar KPI report — 1998-06-30" in html
    for section in ("active-users", "sessions", "retention", "funnel"):
        assert "needs event data" in html.split(f'<section id="{section}"')[1].split("</section>")[0], section
    for section in ("kpis", "revenue", "churn", "clv"):
        assert f'id="{section}" data-status="ok"' in html, section
