"""`nightjar bench` at a tiny scale: the harness runs end to end, writes the documented JSON
fields, and the hand-written marts script agrees row for row with the dbt marts.

No timing assertions. The Dagster and incremental sections are skipped here to keep the
test around a minute (they reuse the same step runner; BENCHMARKS.md has real runs).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import VENV_BIN


def test_bench_xs_writes_results_and_handwritten_marts_match_dbt(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_")}
    proc = subprocess.run(
        [str(VENV_BIN / "nightjar"), "bench", "--scale", "XS", "--reps", "1", "--out", str(out),
         "--work-dir", str(tmp_path / "work"), "--skip", "incremental", "dagster", "dbt-run-only"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())["runs"]["XS"]

    for key in ("scale", "scale_spec", "reps", "date", "machine", "versions", "commit", "duckdb_settings",
                "load_avg_start", "data", "events_ingest", "orders_ingest", "dbt_vs_handwritten", "peak_rss_mb"):
        assert key in r, key
    assert r["versions"]["duckdb"] and r["versions"]["dlt"] and r["versions"]["dbt-core"]
    assert r["duckdb_settings"]["memory_limit"] == "4GB"
    # the result names the code it measured (CI and users run from a git checkout)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert r["commit"] in (head, f"{head}+dirty")

    ev = r["events_ingest"]
    for side in ("dlt", "duckdb_read_json"):
        for stat in ("wall_s", "op_wall_s", "cpu_s", "max_rss_mb"):
            assert set(ev[side][stat]) >= {"median", "min", "max", "n"}
        assert len(ev[side]["load_avg"]) == 1
    assert ev["rows_dlt"] > 10_000 and ev["rows_duckdb"] > 10_000
    assert ev["speed_ratio_wall"] > 0 and ev["speed_ratio_cpu"] > 0

    sh = r["orders_ingest"]
    assert sh["rows_dlt"] == sh["rows_direct"] > 0  # first load: every shop row once
    assert sh["speed_ratio_wall"] > 0

    db = r["dbt_vs_handwritten"]
    assert db["slowdown_wall"] > 0
    cmp = db["comparison"]
    assert set(cmp["tables"]) == {"fct_sessions", "fct_daily_metrics", "fct_retention_daily",
                                  "fct_retention_weekly", "dim_customers", "fct_funnel_daily",
                                  "fct_attribution", "fct_channel_daily"}
    for table, c in cmp["tables"].items():
        assert c["rows_dbt"] > 0, table
        assert c["equal"], (table, c)
    assert cmp["equal"]

    for step in ("events_dlt", "events_duckdb", "shop_dlt", "shop_direct", "dbt_build", "handwritten"):
        assert r["peak_rss_mb"][step] > 0
