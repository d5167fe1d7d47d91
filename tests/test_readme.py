"""The README's commands, run as a user types them: from a plain shell (no venv activated,
the venv's bin not on PATH) in a fresh clone. A README example that stops working fails here.

Every command of the README's ```bash blocks is run, in README order, unless SKIPPED below
gives the reason; a new README command is therefore tested the day it is written.
The clone's `data/` holds a small simulated shop, as "Using your own data" describes.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import postgres_reachable  # noqa: E402
from shop_fixtures import build_shop  # noqa: E402
from ui_helpers import REPO, make_ui, plain_shell_env, wait_location_loaded  # noqa: E402

pytestmark = pytest.mark.slow

README = REPO / "README.md"
SKIPPED = {
    "make test": "this test runs inside `make test`",
    ".venv/bin/nightjar bench --scale S": "minutes of benchmark; tests/test_bench_smoke.py runs the bench at XS",
    # Spark: JVMs; tests/test_spark_e2e.py runs the `nightjar run` line verbatim (two nights,
    # marts compared with DuckDB's), and `make run-spark` is `make run` with that engine
    "make run-spark": "minutes of JVM; tests/test_spark_e2e.py runs the same pipeline on Spark",
    "NIGHTJAR_DATA_DIR=data/demo NIGHTJAR_ENGINE=spark .venv/bin/nightjar run": "run verbatim by tests/test_spark_e2e.py",
}
STARTED = {"make ui"}  # a server: started, checked, stopped
# Marts and models every run builds on the small shop (a 90-day shop has no fully observed
# 90-day churn label window, so no churn model: tests/test_ml_dagster.py covers scoring).
OUTPUTS = ("raw.events", "marts.fct_sessions", "marts.fct_daily_metrics", "marts.fct_retention_weekly",
           "marts.dim_customers", "ml.demand_forecast", "alerts.alert_events")
ASSETS_QUERY = """
query { assetNodes { assetKey { path } isPartitioned
  assetMaterializations(limit: 1) { runId }
  partitionStats { numMaterialized numPartitions } } }
"""


def readme_commands(text: str) -> list[str]:
    """Each command line of the ```bash blocks, without its trailing `  # comment`."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#", line, maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def _sh(command: str, cwd: Path, env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess[str], command: str) -> str:
    assert proc.returncode == 0, f"`{command}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _tables(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()
        return {n: con.execute(f"select count(*) from {n}").fetchone()[0] for (n,) in names}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone of the repository with the working tree's tracked files (the code under test)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        src = REPO / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    return clone


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    commands = readme_commands(README.read_text())
    assert "make run" in commands and "make ui" in commands
    assert any(c.startswith("source .venv/bin/activate && cd dbt_project && dbt build") for c in commands)
    assert sum(".venv/bin/nightjar" in c for c in commands) >= 5
    for skipped in SKIPPED:
        assert skipped in commands, f"SKIPPED lists {skipped!r}, which the README no longer has"


def test_readme_commands_work_verbatim_from_a_plain_shell(clone: Path, small_shop_template: Path,
                                                          tmp_path: Path) -> None:
    data = clone / "data"
    shutil.copytree(small_shop_template, data, dirs_exist_ok=True)
    # No bytecode precompiled at install (Makefile): the clone's throwaway venv compiles and
    # caches only what it imports (so bytecode writing must be on); CI's own `make test` on a
    # clean clone runs the full install.
    env = plain_shell_env(UV_COMPILE_BYTECODE="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    assert shutil.which("dbt", path=env["PATH"]) is None and "VIRTUAL_ENV" not in env
    make_runs: list[dict[str, int]] = []  # table counts after each `make run`
    for command in readme_commands(README.read_text()):
        if command in SKIPPED:
            continue
        if command in STARTED:
            _check_make_ui(clone, env, tmp_path)
            continue
        out = _ok(_sh(command, clone, env), command)
        if command == "make run":
            assert (clone / ".venv" / "bin" / "nightjar").exists()  # make installed the project
            make_runs.append(_check_make_run(out, data, make_runs[0] if make_runs else None))
        elif "dbt build" in command:
            assert "Completed successfully" in out
        elif command.endswith("nightjar run"):
            assert "marts.fct_daily_metrics" in out and "This run:" in out
        elif "alerts backtest" in command:
            assert "revenue_drop" in out
        elif "alerts test" in command:
            assert "log      ok" in out
    assert len(make_runs) == 2
    demo = _tables(clone / "data" / "demo" / "warehouse.duckdb")
    assert demo["marts.fct_sessions"] > 0 and demo["raw.events"] > 0


def _check_make_run(out: str, data: Path, first_counts: dict[str, int] | None) -> dict[str, int]:
    assert "simulating" not in out  # an existing shop is never overwritten
    assert "Quarantined event lines" in out and "KPIs for" in out
    counts = _tables(data / "warehouse.duckdb")
    for table in OUTPUTS:
        assert table in out, f"summary does not list {table}"
        assert counts.get(table, 0) > 0 or table.startswith("alerts."), f"{table} missing or empty"
    assert (data / "reports" / "kpi_report_latest.html").exists()
    assert (data / "dagster_home" / "dagster.yaml").exists()  # the shared instance
    if first_counts is None:
        assert "skipped dbt build" not in out
    else:
        # Nothing new: nothing re-ingested, dbt and everything downstream skipped, and said so.
        assert counts == first_counts
        assert "skipped dbt build" in out and "no rows loaded and no dbt file changed" in out
        assert "ml__demand_forecast" in out.split("skipped (their inputs")[1]
    return counts


def _check_make_ui(clone: Path, env: dict[str, str], tmp_path: Path) -> None:
    """`make ui` after `make run`: the code location loads, and the UI shows what `make run`
    materialised, with the daily partitions it built."""
    with make_ui(clone, env, tmp_path / "make_ui.log") as dev:
        entry = wait_location_loaded(dev)
        assert entry["loadStatus"] == "LOADED"
        nodes = {"/".join(n["assetKey"]["path"]): n for n in dev.graphql(ASSETS_QUERY)["assetNodes"]}
        for key in ("raw/events", "marts/fct_sessions", "marts/fct_daily_metrics", "ml/demand_forecast",
                    "reports/kpi_report"):
            assert nodes[key]["assetMaterializations"], f"{key} shows no materialisation from `make run`"
        stats = nodes["marts/fct_daily_metrics"]["partitionStats"]
        days = len(list((clone / "data" / "landing" / "events").glob("dt=*")))
        # every day with landing data is a materialised partition; the set starts at the first one
        assert stats["numMaterialized"] >= days, stats
        assert stats["numMaterialized"] > stats["numPartitions"] // 10, stats


@pytest.mark.postgres
def test_the_readme_postgresql_url_form_loads_a_shop(tmp_path: Path) -> None:
    """The README's example URL (`postgresql://user:pass@host:5432/shop`), pointed at the local
    server, loads a shop through `nightjar run` (SQLAlchemy 2.1 maps it to psycopg 3)."""
    if not postgres_reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    example = re.search(r"NIGHTJAR_SHOP_DB_URL=(postgresql://\S+?)`", README.read_text()).group(1)
    assert example == "postgresql://user:pass@host:5432/shop"
    db = f"nightjar_readme_{uuid.uuid4().hex[:8]}"
    url = example.replace("user:pass@host", "postgres:unused@127.0.0.1").replace("/shop", f"/{db}")
    admin = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{db}"'))
    try:
        shop = sa.create_engine(url)
        build_shop(shop)
        with shop.connect() as con:
            orders = con.execute(sa.text("select count(*) from orders")).scalar()
        shop.dispose()
        env = plain_shell_env(NIGHTJAR_DATA_DIR=str(tmp_path / "data"), NIGHTJAR_SHOP_DB_URL=url)
        _ok(_sh(".venv/bin/nightjar run --select 'group:ingestion'", REPO, env, timeout=600), "nightjar run")
        assert _tables(tmp_path / "data" / "warehouse.duckdb")["raw.orders"] == orders > 0
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
