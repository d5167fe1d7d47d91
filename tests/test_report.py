"""The KPI report: plain functions over a fixture warehouse, and the Dagster asset."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_project.keys import KPI_REPORT
from dagster_project.report.assets import REPORT_DEPS, kpi_report
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource
from nightjar.report import build_report, kpi_summary

AS_OF = date(2025, 3, 31)  # the fixture's last metric day ("yesterday")
DAYS = 60
SECTIONS = ("kpis", "active-users", "sessions", "revenue", "retention", "funnel", "channels", "churn", "clv",
            "alerts", "data-quality")
# A reference to a remote resource: src/href/url()/@import/xmlns pointing at http(s).
REMOTE_REF = re.compile(r"""(src|href|action|xmlns(:\w+)?)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|@import""", re.I)


def _dau(d: date) -> int:
    return 1234 if d == AS_OF else 1111 if d == AS_OF - timedelta(days=7) else 1000 + (d.toordinal() % 50)


def build_fixture_warehouse(path: Path, *, only: set[str] | None = None, empty: set[str] = frozenset()) -> None:
    """A small warehouse with the contract's mart / ml / alerts columns (ARCHITECTURE.md).

    `only` restricts which tables exist (`schema.table` names); tables in `empty` exist
    without rows.
    """
    con = duckdb.connect(str(path))

    def want(name: str) -> bool:
        return only is None or name in only

    for schema in ("marts", "ml", "alerts", "monitoring"):
        con.execute(f"create schema if not exists {schema}")
    days = [AS_OF - timedelta(days=i) for i in range(DAYS - 1, -1, -1)]
    if want("marts.fct_daily_metrics"):
        con.execute(
            """create table marts.fct_daily_metrics(metric_date date, dau bigint, wau bigint, mau bigint,
            stickiness double, new_users bigint, sessions bigint, avg_session_duration_seconds double,
            bounce_rate double, conversion_rate double, orders bigint, units bigint, gross_revenue double,
            refunds double, net_revenue double, aov double, arpdau double)"""
        )
        if "marts.fct_daily_metrics" not in empty:
            rows = []
            for d in days:
                dau = _dau(d)
                sessions = int(dau * 1.4)
                orders = 40 if d == AS_OF else 32 if d == AS_OF - timedelta(days=7) else 30 + d.day % 7
                gross = orders * 52.5
                refunds = 21.0 if d == AS_OF else 10.0
                net = gross - refunds
                rows.append((d, dau, dau * 4, dau * 9, dau / (dau * 9), 60 + d.day, sessions, 181.0, 0.41,
                             orders / sessions, orders, orders * 2, gross, refunds, net, gross / orders, net / dau))
            con.executemany("insert into marts.fct_daily_metrics values (" + ",".join("?" * 17) + ")", rows)
    if want("marts.fct_retention_weekly"):
        con.execute(
            "create table marts.fct_retention_weekly(cohort_week date, week_number bigint, cohort_size bigint,"
            " active_users bigint, retention_rate double)"
        )
        if "marts.fct_retention_weekly" not in empty:
            first_monday = AS_OF - timedelta(days=AS_OF.weekday()) - timedelta(weeks=7)
            for c in range(8):
                cw = first_monday + timedelta(weeks=c)
                size = 100 + 10 * c
                for w in range(0, 8 - c):  # no rows for weeks that have not started
                    rate = 1.0 if w == 0 else round(0.5 / w, 4)
                    con.execute("insert into marts.fct_retention_weekly values (?,?,?,?,?)",
                                [cw, w, size, round(size * rate), rate])
    if want("marts.fct_funnel_daily"):  # the dbt model's wide layout: one column per step
        con.execute(
            """create table marts.fct_funnel_daily(metric_date date, viewers bigint, product_viewers bigint,
            cart_adders bigint, checkout_starters bigint, purchasers bigint, view_to_product_rate double,
            product_to_cart_rate double, cart_to_checkout_rate double, checkout_to_purchase_rate double,
            overall_conversion_rate double)"""
        )
        if "marts.fct_funnel_daily" not in empty:
            con.executemany(
                "insert into marts.fct_funnel_daily values (?,?,?,?,?,?,?,?,?,?,?)",
                [(d, 1000, 500, 200, 100, 40, 0.5, 0.4, 0.5, 0.4, 0.04) for d in days],
            )
    if want("marts.fct_channel_daily"):  # the dbt model's layout: a pair of columns per attribution model
        models = ("first_touch", "last_touch", "last_non_direct_touch", "linear", "time_decay", "position_based")
        con.execute(
            "create table marts.fct_channel_daily(metric_date date, channel varchar, sessions bigint, "
            "converted_sessions bigint, "
            + ", ".join(f"attributed_orders_{m} double, attributed_revenue_usd_{m} double" for m in models) + ")"
        )
        if "marts.fct_channel_daily" not in empty:
            paid = (300.0, 200.0, 250.0, 240.0, 230.0, 260.0)  # revenue per model and day
            rows = []
            for d in days:
                rows.append((d, "paid_search", 100, 5, *(x for r in paid for x in (r / 50, r))))
                rows.append((d, "direct", 50, 2, *(x for _ in models for x in (2.0, 100.0))))
            con.executemany("insert into marts.fct_channel_daily values (" + ",".join("?" * 16) + ")", rows)
    if want("ml.demand_forecast"):
        con.execute(
            """create table ml.demand_forecast(series_id varchar, metric varchar, forecast_date date, yhat double,
            yhat_lower double, yhat_upper double, model varchar, model_version varchar, generated_at timestamp)"""
        )
        if "ml.demand_forecast" not in empty:
            for run, gen in enumerate([datetime(2025, 3, 31, 2), datetime(2025, 4, 1, 2)]):
                for i in range(-14, 28):
                    d = AS_OF + timedelta(days=i + 1)
                    for series, metric, base in (("total", "net_revenue", 1600.0), ("total", "orders", 31.0),
                                                 ("electronics", "net_revenue", 700.0)):
                        yhat = base + run * 10 + i
                        con.execute("insert into ml.demand_forecast values (?,?,?,?,?,?,?,?,?)",
                                    [series, metric, d, yhat, yhat * 0.8, yhat * 1.2, "prophet", f"v{run + 1}", gen])
    if want("ml.churn_scores"):
        con.execute(
            "create table ml.churn_scores(customer_id varchar, score double, band varchar, model_kind varchar,"
            " model_version varchar, scored_at timestamp)"
        )
        if "ml.churn_scores" not in empty:
            for i in range(200):
                score = (i % 100) / 100
                band = "high" if score >= 0.7 else "medium" if score >= 0.4 else "low"
                con.execute("insert into ml.churn_scores values (?,?,?,?,?,?)",
                            [f"c_{i:06d}", score, band, "bgnbd", "churn-v3", datetime(2025, 4, 1, 2)])
    if want("ml.customer_value"):  # ml/value/pipeline.py
        con.execute(
            """create table ml.customer_value(customer_id varchar, order_days bigint, historical_revenue double,
            p_alive double, predicted_purchases double, predicted_avg_order_value double, predicted_clv double,
            horizon_days integer, aov_model varchar, model_version varchar, as_of date, scored_at timestamp)"""
        )
        if "ml.customer_value" not in empty:
            # 100 customers worth 1..100 USD: decile k holds 100-10k+1 .. 100-10(k-1)
            for i in range(1, 101):
                con.execute("insert into ml.customer_value values (?,?,?,?,?,?,?,?,?,?,?,?)",
                            [f"c_{i:06d}", 2, 10.0, 0.5, 1.0, float(i), float(i), 365, "gamma_gamma", "clv-v1",
                             AS_OF + timedelta(days=1), datetime(2025, 4, 1, 2)])
    if want("alerts.alert_events"):  # nightjar/alerts/state.py: one row per rule evaluation
        con.execute(
            """create table alerts.alert_events(fingerprint varchar, metric_date date, rule_name varchar,
            rule_type varchar, metric varchar, labels json, outcome varchar, value double, expected double,
            lower_bound double, upper_bound double, change_pct double, score double, status_before varchar,
            status_after varchar, transition varchar, episode integer, notification varchar, severity varchar,
            detail varchar, run_id varchar, evaluated_at timestamptz)"""
        )
        if "alerts.alert_events" not in empty:
            rows = [
                ("f_dau", "2025-03-29", "dau_drop", "threshold", "dau", "ok", 1000, 1000, 0.0, "ok", "ok", None,
                 None, "warning", "ALL QUIET 1"),
                ("f_dau", "2025-03-30", "dau_drop", "threshold", "dau", "breach", 800, 1000, -20.0, "ok", "firing",
                 "firing", "firing", "warning", "DAU dropped 20% below forecast"),
                ("f_rev", "2025-03-31", "revenue_spike", "anomaly", "net_revenue", "breach", 5000, 1600, 212.5,
                 "ok", "firing", "firing", "firing", "critical", "Net revenue tripled"),
                ("f_dau", "2025-03-31", "dau_drop", "threshold", "dau", "ok", 1234, 1100, 12.18, "firing",
                 "resolved", "resolved", "resolved", "warning", "DAU back to normal"),
                ("f_aov", "2025-03-31", "aov_band", "band", "aov", "ok", 52.5, 52.0, 0.96, "ok", "ok", None,
                 None, "info", "ALL QUIET 2"),
            ]
            con.executemany(
                "insert into alerts.alert_events (fingerprint, metric_date, rule_name, rule_type, metric, outcome,"
                " value, expected, change_pct, status_before, status_after, transition, notification, severity,"
                " detail, episode, evaluated_at) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, 1, now())",
                rows,
            )
    if want("monitoring.dq_event_quality"):  # dbt_project/models/monitoring, 'all' = sum over sources
        con.execute("create table monitoring.dq_event_quality(metric_date date, source varchar, raw_rows bigint,"
                    " events bigint, duplicate_rows bigint, duplicate_share double, bot_events bigint,"
                    " bot_share double)")
        for d in days:
            bots = 1200 if d == AS_OF else 100
            for source in ("native", "all"):
                con.execute("insert into monitoring.dq_event_quality values (?,?,?,?,?,?,?,?)",
                            [d, source, 5050, 5000, 50, 50 / 5050, bots, bots / 5000])
    if want("monitoring.dq_schema_drift"):
        con.execute("create table monitoring.dq_schema_drift(metric_date date, source varchar, event_names bigint,"
                    " property_keys bigint, new_event_names bigint, vanished_event_names bigint,"
                    " new_property_keys bigint, vanished_property_keys bigint)")
        con.executemany("insert into monitoring.dq_schema_drift values (?, 'native', 8, 20, ?, 0, ?, 0)",
                        [(d, 1 if d == AS_OF else 0, 3 if d == AS_OF else 0) for d in days])
    if want("alerts.alert_events") and "alerts.alert_events" not in empty:
        con.execute("""insert into alerts.alert_events (fingerprint, metric_date, rule_name, rule_type, metric, labels,
            outcome, value, expected, status_before, status_after, transition, notification, severity, detail,
            episode, evaluated_at) values ('f_bots', '2025-03-30', 'dq_bot_share_spike', 'anomaly', 'bot_share',
            '{"rule": "dq_bot_share_spike", "table": "monitoring.dq_event_quality", "source": "all"}', 'breach',
            0.24, 0.02, 'ok', 'firing', 'firing', 'firing', 'warning', 'bot traffic x12', 1, now())""")
    con.close()


def _materialize(tmp_data_dir: Path) -> dg.ExecuteInProcessResult:
    result = dg.materialize([kpi_report], resources={"warehouse": WarehouseResource()})
    assert result.success
    return result


def _sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([a-z-]+)" data-status="(ok|unavailable)"', html))


# --------------------------------------------------------------------------- tests


def test_kpi_summary_compares_yesterday_with_same_day_last_week(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    build_fixture_warehouse(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = kpi_summary(con)
    finally:
        con.close()
    by_name = {kpi: (value, change) for kpi, value, change in rows}
    assert by_name["DAU"][0] == 1234
    assert by_name["DAU"][1] == pytest.approx(1234 / 1111 - 1)
    assert by_name["Orders"] == (40, pytest.approx(40 / 32 - 1))
    assert by_name["Net revenue (USD)"][0] == pytest.approx(40 * 52.5 - 21.0)
    assert {"WAU", "MAU", "Sessions", "Conversion rate"} <= set(by_name)


def test_kpi_summary_ignores_a_partial_today_and_handles_missing_metrics(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    build_fixture_warehouse(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        # Run "on" the fixture's last day: that day is today, so incomplete; yesterday is reported.
        rows = kpi_summary(con, today=AS_OF)
        assert dict((k, v) for k, v, _ in rows)["DAU"] == _dau(AS_OF - timedelta(days=1))
    finally:
        con.close()
    assert kpi_summary(duckdb.connect(":memory:")) == []


def test_report_asset_definition() -> None:
    spec = kpi_report.specs_by_key[KPI_REPORT]
    assert spec.group_name == "reports"
    assert set(spec.kinds) == {"html", "duckdb"}
    deps = {d.asset_key for d in spec.deps}
    assert deps == set(REPORT_DEPS)
    assert dg.AssetKey(["alerts", "alert_events"]) in deps and dg.AssetKey(["ml", "churn_scores"]) in deps
    assert kpi_report.op.pool == WAREHOUSE_POOL


def test_materialized_report_is_self_contained_and_complete(data_dir: Path) -> None:
    warehouse = data_dir / "warehouse.duckdb"
    build_fixture_warehouse(warehouse)
    before = warehouse.stat().st_mtime_ns
    result = _materialize(data_dir)

    dated = data_dir / "reports" / f"kpi_report_{AS_OF.isoformat()}.html"
    latest = data_dir / "reports" / "kpi_report_latest.html"
    assert dated.exists() and latest.exists()
    html = dated.read_text(encoding="utf-8")
    assert latest.read_text(encoding="utf-8") == html
    assert warehouse.stat().st_mtime_ns == before  # read-only

    # self-contained: no remote resources (indeed no http(s) URL at all), no scripts
    assert not re.search(r"https?://", html), re.search(r".{40}https?://.{40}", html)
    assert not REMOTE_REF.search(html)
    assert "<script" not in html.lower() and "<img" not in html.lower()

    # every section rendered with data
    assert _sections(html) == {s: "ok" for s in SECTIONS}
    assert "Not available yet" not in html
    assert html.count("<svg") >= 5

    # KPI numbers computed from the fixture
    assert "1,234" in html  # yesterday's DAU
    assert "1,111" in html  # same day last week
    assert "+11.1%" in html  # 1234 / 1111 - 1
    assert "$2,079.00" in html  # net revenue 40 * 52.5 - 21
    # retention heatmap: the newest complete week-1 rate (0.5), cohort sizes
    assert "50%" in html and ">170<" in html
    # funnel over 7 days: 7,000 viewers, 280 purchasers = 4.0% of the first step
    funnel = html.split('id="funnel"')[1].split("</section>")[0]
    assert "7,000" in funnel and "280" in funnel and "4.0%" in funnel
    # channels over 30 days: paid search first (last non-direct revenue), 5 % of its sessions convert
    channels = html.split('id="channels"')[1].split("</section>")[0]
    table = channels.split("<tbody>")[1]
    assert table.index("paid_search") < table.index("direct")
    assert "3,000" in channels and "5.0%" in channels and "$7,500.00" in channels and "$9,000.00" in channels
    # forecast: the latest run (v2) of the total net revenue series
    assert "prophet v2" in html and "v1" not in html.split('id="revenue"')[1].split("</section>")[0]
    # churn: 200 scored, bands, and which model scored (here a baseline champion)
    assert "200 customers scored" in html and "high" in html
    assert "model bgnbd churn-v3" in html.split('id="churn"')[1].split("</section>")[0]
    # CLV deciles: the top tenth (91..100 USD) holds 955 / 5050 of the total, the bottom 55 / 5050
    clv = html.split('id="clv"')[1].split("</section>")[0]
    assert "100 customers" in clv and "$5,050.00" in clv and "next 365 days" in clv and "Gamma-Gamma" in clv
    rows = clv.split("<tbody>")[1].split("</tr>")
    assert rows[0].startswith("<tr><td>1</td><td>10</td><td>$95.50</td>") and "18.9%" in rows[0]
    assert rows[9].startswith("<tr><td>10</td><td>10</td><td>$5.50</td>") and "1.1%" in rows[9]
    # alerts: breaches and transitions only, newest first; one still firing
    alerts = html.split('id="alerts"')[1].split("</section>")[0]
    assert "ALL QUIET" not in alerts
    assert alerts.index("DAU back to normal") < alerts.index("DAU dropped 20%")
    assert "Net revenue tripled" in alerts and "+212.5%" in alerts and "-20.0%" in alerts  # change_pct is in %
    assert "4 alert events" in alerts and "2 firing now" in alerts
    # data quality: the dq_* measures of the last days and the data-quality alert (not the business ones)
    dq = html.split('id="data-quality"')[1].split("</section>")[0]
    assert "<td>2025-03-31</td><td>5,000</td><td>24.00%</td><td>0.99%</td>" in dq  # events, bot and duplicate share
    assert "<td>1 / 0</td><td>3 / 0</td>" in dq  # a new event name and three new property keys
    assert "dq_bot_share_spike" in dq and "bot traffic x12" in dq and "DAU dropped" not in dq
    assert dq.count("<td>2025-03-") == 14 + 1  # 14 days of measures, one alert

    md = result.asset_materializations_for_node("reports__kpi_report")[0].metadata
    assert md["path"].value == str(dated)
    assert md["url"].value == dated.resolve().as_uri() and md["url"].value.startswith("file://")
    assert "| DAU | 1,234 | 1,111 | ▲ +11.1% |" in md["kpis"].value
    assert md["sections_available"].value == len(SECTIONS)


def test_missing_and_empty_tables_render_a_note_not_an_error(data_dir: Path) -> None:
    warehouse = data_dir / "warehouse.duckdb"
    build_fixture_warehouse(
        warehouse,
        only={"marts.fct_daily_metrics", "ml.churn_scores", "marts.fct_funnel_daily"},
        empty={"ml.churn_scores", "marts.fct_funnel_daily"},
    )
    result = _materialize(data_dir)
    html = (data_dir / "reports" / "kpi_report_latest.html").read_text(encoding="utf-8")
    status = _sections(html)
    assert {s for s, v in status.items() if v == "ok"} == {"kpis", "active-users", "sessions", "revenue"}
    for sid in ("retention", "funnel", "churn", "clv", "alerts", "data-quality"):
        part = html.split(f'id="{sid}"')[1].split("</section>")[0]
        assert "Not available yet" in part, sid
    assert "ml.churn_scores is empty" in html
    assert "marts.fct_funnel_daily is empty" in html
    assert "alerts.alert_events does not exist" in html
    # revenue still shows the actuals, with a note about the forecast
    revenue = html.split('id="revenue"')[1].split("</section>")[0]
    assert "<svg" in revenue and "ml.demand_forecast does not exist" in revenue
    assert "1,234" in html
    md = result.asset_materializations_for_node("reports__kpi_report")[0].metadata
    assert "churn" in md["sections_unavailable"].value


def test_no_warehouse_at_all_still_writes_a_report(data_dir: Path) -> None:
    result = _materialize(data_dir)
    reports = data_dir / "reports"
    latest = reports / "kpi_report_latest.html"
    assert latest.exists()
    assert len(list(reports.glob("kpi_report_????-??-??.html"))) == 1
    html = latest.read_text(encoding="utf-8")
    assert set(_sections(html).values()) == {"unavailable"} and len(_sections(html)) == len(SECTIONS)
    assert not (data_dir / "warehouse.duckdb").exists()  # reading never creates the warehouse
    md = result.asset_materializations_for_node("reports__kpi_report")[0].metadata
    assert "No daily metrics yet" in md["kpis"].value


def test_a_table_of_unexpected_shape_degrades_to_a_note(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    build_fixture_warehouse(path, only={"marts.fct_daily_metrics"})
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists ml")
    con.execute("create table ml.churn_scores(customer_id varchar, probability double)")  # no `score`
    con.execute("insert into ml.churn_scores values ('c_1', 0.3)")
    con.execute("create schema if not exists alerts")
    con.execute("create table alerts.alert_events(id integer, note varchar)")
    con.execute("insert into alerts.alert_events values (1, '<b>escaped</b> & safe')")
    con.execute(  # a long funnel layout is read too
        "create table marts.fct_funnel_daily as select * from (values "
        "(date '2025-03-31', 'viewed', 1, 90), (date '2025-03-31', 'bought', 2, 9)) t(metric_date, step, step_order, users)"
    )
    report = build_report(con)
    con.close()
    status = {s.id: s.available for s in report.sections}
    assert status["churn"] is False and "has no column(s) score" in report.html
    assert status["alerts"] is True and "&lt;b&gt;escaped&lt;/b&gt; &amp; safe" in report.html
    assert status["funnel"] is True and "10.0%" in report.html.split('id="funnel"')[1]
