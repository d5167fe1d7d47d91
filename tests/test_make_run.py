"""`make run` from a clean clone: the newcomer's front door (slow; CI runs it)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest


pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _make_run(clone: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTJAR_", "DAGSTER_HOME"))}
    env["NIGHTJAR_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        ["make", "run"], cwd=clone, env=env, capture_output=True, text=True, timeout=1200
    )


def test_make_run_from_a_clean_clone_builds_everything_and_reruns_without_reloading(
    tmp_path: Path, small_shop_template: Path
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    # Only what is committed counts, plus work in progress when run from a dirty tree:
    # copy the working tree's tracked files so the test checks the code under test.
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        src = REPO / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    data_dir = tmp_path / "data"
    shutil.copytree(small_shop_template, data_dir)

    first = _make_run(clone, data_dir)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "simulating" not in first.stdout  # an existing shop is never overwritten
    assert (clone / ".venv" / "bin" / "nightjar").exists()
    for table in ("raw.events", "marts.fct_sessions", "marts.fct_daily_metrics", "marts.dim_customers"):
        assert table in first.stdout, f"summary does not list {table}"
    assert "Quarantined event lines" in first.stdout
    assert "KPIs for" in first.stdout

    warehouse = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        events, log_rows = con.execute(
            "select (select count(*) from raw.events), (select count(*) from raw.events_load_log)"
        ).fetchone()
        sessions = con.execute("select count(*) from marts.fct_sessions").fetchone()[0]
    assert events > 0 and sessions > 0

    second = _make_run(clone, data_dir)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        again = con.execute(
            "select (select count(*) from raw.events), (select count(*) from raw.events_load_log),"
            " (select count(*) from marts.fct_sessions)"
        ).fetchone()
    # Nothing re-ingested: no new file was loaded, and the marts are unchanged.
    assert again == (events, log_rows, sessions)
