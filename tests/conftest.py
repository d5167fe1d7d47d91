"""Shared fixtures: an isolated data dir per test, and small simulated shops built once."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
_SETTINGS_VARS = ("NIGHTJAR_DATA_DIR", "NIGHTJAR_WAREHOUSE", "NIGHTJAR_SHOP_DB_URL", "NIGHTJAR_ALERTS_FILE",
                  "NIGHTJAR_ENGINE", "NIGHTJAR_LAKE_URL")
# The PII key of the test session (tests compare dbt's pseudonyms with Python's HMAC under
# it). Tests that exercise the key file or a missing key remove it from their subprocess's
# environment (tests/test_pii.py); helpers that strip NIGHTJAR_* keep it (PII_KEY_ENV).
TEST_PII_KEY = "nightjar-test-pii-key"
os.environ.setdefault("NIGHTJAR_PII_KEY", TEST_PII_KEY)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every Nightjar setting at a fresh directory for this test."""
    d = tmp_path / "data"
    d.mkdir()
    for var in _SETTINGS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NIGHTJAR_DATA_DIR", str(d))
    return d


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory built once per test session and shared by all pytest-xdist workers (the
    xdist docs' FileLock recipe): the first worker builds it, the others wait and reuse it.
    Readers must not write to it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's temp dir, common to the workers
    target = root / name
    with FileLock(str(target) + ".lock"):
        done = root / f"{name}.built"  # beside it: copies of the directory stay clean
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)  # a build that failed in another worker
            target.mkdir()
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def small_shop_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but complete simulated shop (90 days, 300 customers), generated once per session
    for every worker (read-only: tests copy it)."""
    from nightjar.simulator import simulate

    return shared_dir(tmp_path_factory, "small_shop",
                      lambda out: simulate(out, start=date(2025, 1, 1), days=90, customers=300, seed=11))


@pytest.fixture
def small_shop(small_shop_template: Path, data_dir: Path) -> Path:
    """A private copy of the small shop as this test's data dir."""
    shutil.copytree(small_shop_template, data_dir, dirs_exist_ok=True)
    return data_dir


def postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def require_postgres() -> Iterator[str]:
    """The PostgreSQL server of this machine kind; skipped when absent, except under CI=true."""
    if not postgres_reachable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is unreachable, and CI=true requires it")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is unreachable (set CI=true to make this a failure)")
    yield "postgresql://postgres@127.0.0.1:5432/test"


# The default shop (`nightjar simulate`: 730 days, 5,000 customers, seed 42) as generated on
# 2026-12-07; a fixed start keeps the holidays and the incident days fixed.
DEFAULT_SHOP_START = date(2024, 12, 7)
DEFAULT_SHOP_END = date(2026, 12, 6)
DEFAULT_SHOP_HOLIDAY_COUNTRY = "US"


def _build_default_shop(data_dir: Path) -> None:
    from nightjar.ingest import load_events, load_shop
    from nightjar.settings import DBT_PROJECT_DIR, get_settings
    from nightjar.simulator import simulate

    simulate(data_dir, start=DEFAULT_SHOP_START, days=730, customers=5000, seed=42)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_") or k == "NIGHTJAR_PII_KEY"}
    env.update(NIGHTJAR_DATA_DIR=str(data_dir), NIGHTJAR_HOLIDAY_COUNTRY=DEFAULT_SHOP_HOLIDAY_COUNTRY)
    settings = get_settings(env)
    load_events(settings)
    load_shop(settings)
    dbt = VENV_BIN / "dbt"
    build = subprocess.run(
        [str(dbt) if dbt.exists() else "dbt", "build", "--resource-type", "seed", "--resource-type", "model",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(data_dir / "dbt_target"), "--log-path", str(data_dir / "dbt_logs")],
        env={**env, **settings.env()}, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:]


@pytest.fixture(scope="session")
def default_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default shop's data dir with its warehouse built (simulated landing files and shop
    → dlt → dbt seeds and models), once per test session for every worker: read-only.

    It is loaded with the ingestion functions and built with the dbt CLI, the calls the
    Dagster assets make: through Dagster a two-year run spends longer recording one
    materialisation per asset and daily partition than building."""
    return shared_dir(tmp_path_factory, "default_shop", _build_default_shop)


@pytest.fixture
def default_shop_env(default_shop: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nightjar's settings pointed at the shared default shop (read it, never write it)."""
    for var in _SETTINGS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NIGHTJAR_DATA_DIR", str(default_shop))
    monkeypatch.setenv("NIGHTJAR_HOLIDAY_COUNTRY", DEFAULT_SHOP_HOLIDAY_COUNTRY)
    return default_shop


# The slow tests first, longest first (by measured CPU and wall time): pytest-xdist's worksteal
# hands each worker a contiguous half and steals from the tails, so the long tests start
# early and short ones fill in at the end instead of one worker finishing minutes later.
# Unlisted slow tests follow, then the fast ones, each in pytest's order. Keep the default-shop
# readers adjacent: the second one then runs on the worker that built the shared shop.
LONG_TESTS_FIRST = (
    "tests/test_spark_e2e.py",
    "tests/test_spark_marts.py::test_spark_marts_equal_duckdb_marts_over_two_nights",
    "tests/test_alerts_simulated.py",
    "tests/test_attribution_simulated.py",
    "tests/test_readme.py::test_readme_commands_work_verbatim_from_a_plain_shell",
    "tests/test_hostile_night.py",
    "tests/test_ui_browser.py",
    "tests/test_cdnow.py",
    "tests/reliability/test_crash_safety.py",
    "tests/reliability/test_overlapping_runs.py",
    "tests/test_queued_runs.py",
    "tests/test_orchestration.py::test_backfill_of_a_date_range_equals_a_full_refresh",
    "tests/reliability/test_incremental.py",
    "tests/test_shapes.py",
    "tests/test_ingest_segment.py::test_native_and_segment_delivery_give_identical_marts",
    "tests/test_bad_orders_and_pii.py",
    "tests/reliability/",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is None:
            return len(LONG_TESTS_FIRST) + 1
        return next((i for i, prefix in enumerate(LONG_TESTS_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONG_TESTS_FIRST))

    items.sort(key=rank)  # stable: the order within a rank is pytest's
