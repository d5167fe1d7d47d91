"""Ingestion of a small simulated shop (nightjar.simulator): exact reconciliation with the
files, the shop database and the simulator's ground truth, before and after append_days."""
from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

simulator = pytest.importorskip("nightjar.simulator")

from nightjar.ingest import load_events, load_shop  # noqa: E402
from nightjar.settings import get_settings  # noqa: E402


def _file_lines(events_dir: Path) -> dict[str, int]:
    out = {}
    for f in sorted(events_dir.glob("dt=*/*.jsonl*")):
        data = f.read_bytes()
        if f.name.endswith(".gz"):
            data = gzip.decompress(data)
        out[f"{f.parent.name}/{f.name}"] = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    return out


def _check(settings, truth):
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        per_file = dict(con.execute("SELECT _file, sum(lines_read) FROM raw.events_load_log GROUP BY 1").fetchall())
        assert per_file == _file_lines(settings.events_dir)
        n_events, n_rej = con.execute("SELECT (SELECT count(*) FROM raw.events), (SELECT count(*) FROM raw.events_rejected)").fetchone()
        assert n_events + n_rej == sum(per_file.values())
        assert n_events == truth["totals"]["events"] + truth["dirt"]["duplicates"]
        reasons = dict(con.execute("SELECT reason, count(*) FROM raw.events_rejected GROUP BY 1").fetchall())
        assert reasons == {k: v for k, v in truth["dirt"]["malformed"].items() if v}
        shop = sa.create_engine(settings.shop_db_url)
        with shop.connect() as src:
            for table, key in [("customers", "customer_id"), ("products", "product_id"), ("orders", "order_id"),
                               ("order_items", "order_id, line_number")]:
                cols = ("order_id, status, updated_at" if table == "orders" else key)
                want = [tuple(r) for r in src.execute(sa.text(f"SELECT {cols} FROM {table} ORDER BY {key}"))]
                got = con.execute(f"SELECT {cols} FROM raw.{table} ORDER BY {key}").fetchall()
                if table == "orders":  # SQLite returns DateTime text through text(): compare as strings
                    want = [(a, b, str(c)[:19]) for a, b, c in want]
                    got = [(a, b, str(c)[:19]) for a, b, c in got]
                assert got == want, table
        shop.dispose()
    finally:
        con.close()


@pytest.mark.slow
def test_simulated_shop_reconciles(tmp_path):
    out = tmp_path / "sim"
    simulator.simulate(out, start=date(2025, 1, 1), days=30, customers=200, seed=3)
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(out)})
    ev1, shop1 = load_events(settings), load_shop(settings)
    assert ev1["files_failed"] == 0 and shop1["rows"]["orders"] > 0
    _check(settings, json.loads(settings.ground_truth_file.read_text()))

    simulator.append_days(out, 5)  # new files, late files for past days, refunds of old orders
    ev2, shop2 = load_events(settings), load_shop(settings)
    assert 0 < ev2["files_loaded"] < ev1["files_loaded"]
    assert ev2["files_already_loaded"] == ev1["files_loaded"]
    assert shop2["rows"]["orders"] > 0
    _check(settings, json.loads(settings.ground_truth_file.read_text()))
    assert load_events(settings)["files_loaded"] == 0 and load_shop(settings)["rows_total"] == 0
