"""Shop shapes (DESIGN.md §6): events and orders, orders only (no landing folder, or an empty
one), events only (no shop database). Every shape is a valid night: the raw tables dbt's
sources read exist, the marts exist (empty where the data is missing), and the run
summary and the report say which parts need the missing source.

The events-and-orders shape is what every other end-to-end test runs (the simulator's
shops); CDNOW (tests/test_cdnow.py) is an orders-only shop without a landing folder."""
from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from nightjar.ingest import load_events, load_shop
from nightjar.runner import run_pipeline
from nightjar.settings import DBT_PROJECT_DIR, get_settings
from querying import query
from shop_fixtures import build_shop, orders

RAW_EVENT_TABLES = {"events", "events_rejected", "events_load_log"}
RAW_SHOP_TABLES = {"customers", "products", "orders", "order_items"}
MARTS = {"fct_sessions", "fct_retention_daily", "fct_retention_weekly", "fct_daily_metrics", "fct_funnel_daily",
         "dim_customers"}


def _tables(warehouse: Path, schema: str) -> set[str]:
    return {r[0] for r in query(warehouse, "select table_name from information_schema.tables where table_schema = ?",
                                [schema])}


def _count(warehouse: Path, table: str) -> int:
    return query(warehouse, f"select count(*) from {table}")[0][0]


# -- ingestion only (fast) -----------------------------------------------------------------

@pytest.mark.parametrize("landing", ["absent", "empty", "empty_day_folder"])
def test_no_landing_files_leaves_the_event_tables_empty_but_present(data_dir: Path, landing: str) -> None:
    settings = get_settings()
    if landing != "absent":
        settings.events_dir.mkdir(parents=True)
    if landing == "empty_day_folder":
        (settings.events_dir / "dt=2025-01-01").mkdir()
    first = load_events(settings)
    assert first["empty_tables_created"] == sorted(RAW_EVENT_TABLES)
    assert RAW_EVENT_TABLES <= _tables(settings.warehouse, "raw")
    assert all(_count(settings.warehouse, f"raw.{t}") == 0 for t in RAW_EVENT_TABLES)
    assert load_events(settings)["empty_tables_created"] == []  # once
    # the first landing file appends to them as if dlt had created them
    part = settings.events_dir / "dt=2025-01-02"
    part.mkdir(parents=True, exist_ok=True)
    (part / "a.jsonl").write_text('{"event_id": "e1", "event_name": "page_viewed", "anonymous_id": "a1", '
                                  '"timestamp": "2025-01-02T10:00:00Z"}\n{"oops"\n')
    summary = load_events(settings)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1, 1)
    assert query(settings.warehouse, "select event_id, timestamp from raw.events")[0][0] == "e1"
    assert query(settings.warehouse, "select lines_read from raw.events_load_log") == [(2,)]


def test_no_shop_database_leaves_the_shop_tables_empty_and_creates_no_file(data_dir: Path) -> None:
    settings = get_settings()
    summary = load_shop(settings)
    assert summary["shop_db"] is False and summary["rows_total"] == 0
    assert not (data_dir / "shop.sqlite").exists()
    assert RAW_SHOP_TABLES <= _tables(settings.warehouse, "raw")
    assert all(_count(settings.warehouse, f"raw.{t}") == 0 for t in RAW_SHOP_TABLES)
    # a shop database that appears later merges into the empty tables
    build_shop(sa.create_engine(f"sqlite:///{data_dir / 'shop.sqlite'}"))
    summary = load_shop(get_settings())
    assert summary["shop_db"] is True and summary["rows"]["orders"] == 60
    assert _count(settings.warehouse, "raw.orders") == 60


def test_a_configured_shop_file_that_does_not_exist_is_an_error(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("NIGHTJAR_SHOP_DB_URL", f"sqlite:///{data_dir / 'typo.sqlite'}")
    with pytest.raises(FileNotFoundError, match="typo.sqlite"):
        load_shop(get_settings())
    assert not (data_dir / "typo.sqlite").exists()


# -- whole nights (slow) ---------------------------------------------------------------------

def _usd_rates() -> dict[str, float]:
    with open(DBT_PROJECT_DIR / "seeds" / "currency_rates.csv") as fh:
        return {r["currency"]: float(r["usd_per_unit"]) for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_orders_only_night_with_an_empty_landing_folder(data_dir: Path, capsys) -> None:
    engine = sa.create_engine(f"sqlite:///{data_dir / 'shop.sqlite'}")
    build_shop(engine)  # 60 orders over 60 days, three currencies
    (data_dir / "landing" / "events").mkdir(parents=True)
    result = run_pipeline()
    out = capsys.readouterr().out
    assert result.success, out
    wh = get_settings().warehouse
    assert RAW_EVENT_TABLES | RAW_SHOP_TABLES <= _tables(wh, "raw")
    assert MARTS <= _tables(wh, "marts")
    for empty in ("raw.events", "marts.fct_sessions", "marts.fct_retention_daily", "marts.fct_retention_weekly"):
        assert _count(wh, empty) == 0, empty
    # orders and revenue by day, from the shop rows themselves
    rates = _usd_rates()
    expected: dict[date, list] = defaultdict(lambda: [0, 0.0])
    with engine.connect() as con:
        for row in con.execute(sa.select(orders.c.created_at, orders.c.currency, orders.c.total_amount)):
            expected[row.created_at.date()][0] += 1
            expected[row.created_at.date()][1] += float(row.total_amount) * rates[row.currency]
    daily = {d: (n, g, aov, dau, sessions) for d, n, g, aov, dau, sessions in query(
        wh, "select metric_date, orders, gross_revenue, aov, dau, sessions from marts.fct_daily_metrics")}
    assert set(daily) == set(expected)
    for day, (n, gross) in expected.items():
        assert daily[day][:2] == (n, pytest.approx(gross, abs=1e-6)), day
        assert daily[day][2] == pytest.approx(gross / n)
        assert daily[day][3:] == (0, 0)
    assert _count(wh, "marts.dim_customers") == 20
    # said plainly, in the summary and the report
    assert "Data: orders only (no event data)" in out
    assert "No event data (no landing files)" in out
    kpis = [line.split()[0] for line in out.split("KPIs for")[1].split("\n\n")[0].splitlines()[1:]]
    assert "Orders" in kpis and "AOV" in kpis and not {"DAU", "Sessions", "Conversion"} & set(kpis)
    html = (data_dir / "reports" / "kpi_report_latest.html").read_text()
    for section in ("active-users", "sessions", "retention", "funnel"):
        block = html.split(f'<section id="{section}"')[1].split("</section>")[0]
        assert 'data-status="unavailable"' in block and "needs event data" in block, section
    assert 'id="revenue" data-status="ok"' in html


@pytest.mark.slow
def test_events_only_night_without_a_shop_database(small_shop: Path, capsys) -> None:
    (small_shop / "shop.sqlite").unlink()
    result = run_pipeline()
    out = capsys.readouterr().out
    assert result.success, out
    assert not (small_shop / "shop.sqlite").exists()  # `nightjar run` never invents a shop
    wh = get_settings().warehouse
    assert RAW_SHOP_TABLES <= _tables(wh, "raw")
    assert all(_count(wh, f"raw.{t}") == 0 for t in RAW_SHOP_TABLES)
    assert MARTS <= _tables(wh, "marts")
    for filled in ("marts.fct_sessions", "marts.fct_retention_daily", "marts.fct_retention_weekly",
                   "marts.fct_funnel_daily"):
        assert _count(wh, filled) > 0, filled
    totals = query(wh, "select sum(dau), sum(sessions), sum(orders), sum(gross_revenue), count(aov) "
                       "from marts.fct_daily_metrics")[0]
    assert totals[0] > 0 and totals[1] > 0 and totals[2:] == (0, 0, 0)
    assert "churn_scores" not in _tables(wh, "ml") or _count(wh, "ml.churn_scores") == 0
    # why the order-based parts are empty: the run account, the summary, the report
    assert "Data: events only (no shop orders)" in out
    assert "ml/churn_candidate: nothing produced (staging.stg_orders is empty)" in out
    assert "ml/demand_forecast_backtest: nothing produced (no daily series" in out
    assert "ml/customer_value: nothing produced (staging.stg_orders is empty)" in out
    assert "Churn model: none (churn is learnt from shop orders; no orders loaded)" in out
    assert "No shop orders (no shop database)" in out
    html = (small_shop / "reports" / "kpi_report_latest.html").read_text()
    for section in ("revenue", "churn", "clv"):
        block = html.split(f'<section id="{section}"')[1].split("</section>")[0]
        assert "needs shop orders" in block, section
    assert 'id="active-users" data-status="ok"' in html and 'id="funnel" data-status="ok"' in html
