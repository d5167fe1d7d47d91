"""Shared fixtures: an isolated data dir per test, and small simulated shops built once."""
from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
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


def _simulated(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs) -> Path:
    from nightjar.simulator import simulate

    out = tmp_path_factory.mktemp(name)
    simulate(out, **kwargs)
    return out


@pytest.fixture(scope="session")
def small_shop_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but complete simulated shop (90 days, 300 customers), generated once per session."""
    from datetime import date

    return _simulated(tmp_path_factory, "small_shop", start=date(2025, 1, 1), days=90, customers=300, seed=11)


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
