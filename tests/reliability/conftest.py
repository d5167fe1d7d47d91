"""Session fixtures of the reliability suite (the repo-wide ones live in tests/conftest.py).

One small simulated night (20 days, 100 customers) is built once per session and shared by
the pytest-xdist workers: its landing files and shop database (``night_template``), its
warehouse after ingestion only (``raw_only``) and after an uninterrupted ``dbt build``
(``reference``), with the content hash of every table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from conftest import shared_dir

from .helpers import copy_shop, copy_warehouse, dbt_inprocess, ingest, table_hashes

DAYS, CUSTOMERS, SEED = 20, 100, 7


@dataclass(frozen=True)
class Night:
    template: Path      # landing files + shop.sqlite (+ simulator state), no warehouse
    raw_only: Path      # warehouse after one ingestion
    reference: Path     # warehouse after ingestion + one uninterrupted dbt build
    raw_hashes: dict
    hashes: dict


def _build_night(root: Path) -> None:
    from nightjar.simulator import SimConfig, simulate

    template = root / "template"
    # More late files and retried deliveries than the default, so that every night of the
    # incremental test has some (the default 2 % of late batches is ~1 per 10 nights).
    config = SimConfig(late_file_rate=0.25, duplicate_rate=0.03)
    simulate(template, start=date(2025, 3, 1), days=DAYS, customers=CUSTOMERS, seed=SEED, config=config)
    work = copy_shop(template, root / "build")
    ingest(work)
    raw_only = copy_warehouse(work / "warehouse.duckdb", root / "raw_only.duckdb")
    out = dbt_inprocess(work / "warehouse.duckdb", "build", work_dir=root / "dbt")
    assert out.success, out.failures() or out.exception
    reference = copy_warehouse(work / "warehouse.duckdb", root / "reference.duckdb")
    hashes = {"raw": table_hashes(raw_only), "reference": table_hashes(reference)}
    (root / "hashes.json").write_text(json.dumps(hashes))


@pytest.fixture(scope="session")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    """Built by the first worker that asks, shared by all (read-only: tests copy from it)."""
    root = shared_dir(tmp_path_factory, "reliability_night", _build_night)
    hashes = json.loads((root / "hashes.json").read_text())
    as_tuples = lambda h: {k: tuple(v) for k, v in h.items()}  # noqa: E731
    return Night(root / "template", root / "raw_only.duckdb", root / "reference.duckdb",
                 as_tuples(hashes["raw"]), as_tuples(hashes["reference"]))
