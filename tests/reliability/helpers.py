"""Helpers of the reliability suite: small shops, ingestion and dbt runs, table content hashes.

Everything runs against a private data dir (``NIGHTJAR_DATA_DIR``) and a private dbt
``--target-path``/``--log-path``, so that parallel engineers and other tests never share
files. dbt runs either as the real CLI in a subprocess (when the test must kill it) or
in process through ``dbtRunner`` with a manifest parsed once per session (same
``dbt build`` command, ~4 s instead of ~15 s: the 10-night test needs that).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from nightjar.settings import environ_overrides
from querying import query  # noqa: F401  (re-exported for the reliability tests)

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
DBT = str(VENV_BIN / "dbt")
DBT_DIR = REPO / "dbt_project"

# Schemas whose content the guarantees are about (DESIGN §3). `ml`/`alerts` have their own tests.
SCHEMAS = ("raw", "staging", "intermediate", "marts")

# Columns that record *when* or *in which load* a row was written. Two correct runs over the
# same input legitimately differ in them (the wall clock and dlt's load id move; a crashed
# run that is resumed loads in a different package), so content comparisons leave them out.
# `_last_loaded_at` / `_max_loaded_at` are dbt watermarks derived from `_loaded_at`, and so is
# int_identity_map's `_mapped_loaded_at` (the load time of the current owner's identification).
LOAD_TIME_COLUMNS = frozenset(
    {"_loaded_at", "_last_loaded_at", "_max_loaded_at", "_mapped_loaded_at", "_dlt_load_id", "_dlt_id",
     "load_id"}
)

INGEST_CODE = (
    "import json; from nightjar.ingest import load_events, load_shop; "
    "e = load_events(); s = load_shop(); "
    "print(json.dumps({'rows_loaded': e['rows_loaded'], 'rows_rejected': e['rows_rejected'], "
    "'files_loaded': e['files_loaded'], 'shop': s['rows']}))"
)


# ---------------------------------------------------------------------------- data dirs
def settings_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A full environment for a subprocess pointed at ``data_dir`` (and nothing else)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_") or k == "NIGHTJAR_PII_KEY"}
    env.update({"NIGHTJAR_DATA_DIR": str(data_dir), "NIGHTJAR_WAREHOUSE": str(data_dir / "warehouse.duckdb"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def settings_for(data_dir: Path):
    from nightjar.settings import get_settings

    return get_settings({"NIGHTJAR_DATA_DIR": str(data_dir)})


def copy_shop(template: Path, dest: Path, with_warehouse: bool = False) -> Path:
    """Copy a simulated shop (landing files, shop.sqlite, simulator state)."""
    ignore = None if with_warehouse else shutil.ignore_patterns("warehouse.duckdb*", "artifacts", "*.lock")
    shutil.copytree(template, dest, ignore=ignore, dirs_exist_ok=True)
    return dest


def copy_warehouse(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    wal = src.with_name(src.name + ".wal")
    if wal.exists():
        shutil.copy2(wal, dest.with_name(dest.name + ".wal"))
    return dest


def ingest(data_dir: Path) -> tuple[dict, dict]:
    """One nightly ingestion in process (events, then shop)."""
    from nightjar.ingest import load_events, load_shop

    s = settings_for(data_dir)
    return load_events(s), load_shop(s)


# ---------------------------------------------------------------------------- dbt
_dbt_guard = threading.Lock()
_manifest_cache: dict[str, object] = {}


def dbt_args(target_dir: Path) -> list[str]:
    return ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
            "--target-path", str(target_dir / "target"), "--log-path", str(target_dir / "logs")]


@dataclass
class DbtOutcome:
    success: bool
    statuses: dict[str, str]          # unique_id -> pass | warn | error | fail | success | skipped
    messages: dict[str, str]
    exception: BaseException | None = None

    def failures(self) -> dict[str, str]:
        return {k: f"{self.statuses[k]}: {self.messages.get(k, '')}" for k, v in self.statuses.items()
                if v in ("error", "fail", "runtime error")}

    def warnings(self) -> dict[str, str]:
        return {k: self.messages.get(k, "") for k, v in self.statuses.items() if v == "warn"}


def dbt_inprocess(warehouse: Path, *args: str, work_dir: Path) -> DbtOutcome:
    """``dbt <args>`` in this process against ``warehouse`` (manifest parsed once per session)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    with _dbt_guard, environ_overrides({"NIGHTJAR_WAREHOUSE": str(warehouse)}):
        base = dbt_args(work_dir) + ["--quiet"]
        if "manifest" not in _manifest_cache:
            res = dbtRunner().invoke(["parse", *base])
            if not res.success:
                raise RuntimeError(f"dbt parse failed: {res.exception}")
            _manifest_cache["manifest"] = res.result
        # The parsed manifest is reused (deepcopy breaks its lookups); dbt only reads it.
        manifest = _manifest_cache["manifest"]
        try:
            res = dbtRunner(manifest=manifest).invoke([*args, *base])
        finally:
            # dbt-duckdb keeps the database open in a process-wide environment; close it so
            # that this process (and others) can open the file again.
            DuckDBConnectionManager.close_all_connections()
    statuses, messages = {}, {}
    for r in getattr(res.result, "results", None) or []:
        statuses[r.node.unique_id] = str(getattr(r.status, "value", r.status)).lower()
        messages[r.node.unique_id] = r.message or ""
    return DbtOutcome(bool(res.success), statuses, messages, res.exception)


def dbt_popen(data_dir: Path, *args: str, work_dir: Path, **popen) -> subprocess.Popen:
    """The real dbt CLI in its own process group (so that a test can SIGKILL it)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([DBT, *args, *dbt_args(work_dir)], env=settings_env(data_dir), cwd=str(work_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **popen)


def ingest_popen(data_dir: Path, **env) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-c", INGEST_CODE], env=settings_env(data_dir, **env), cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group we started (only ours, by its id)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_to_end(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode("utf-8", "replace") if out else ""
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{text[-4000:]}"
    return text


# ---------------------------------------------------------------------------- content hashes
def connect_ro(warehouse: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(warehouse), read_only=True)


def list_tables(con, schemas=SCHEMAS) -> list[tuple[str, str]]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        f"where table_schema in ({', '.join(repr(s) for s in schemas)}) order by 1, 2").fetchall()
    # dlt's bookkeeping tables (_dlt_loads, _dlt_pipeline_state, _dlt_version) record every run
    # by design (one row per load): they are not data and differ between two correct histories.
    return [(s, t) for s, t in rows if not t.startswith("_dlt_")]


def _column_exprs(con, schema: str, table: str, exclude=LOAD_TIME_COLUMNS) -> list[str]:
    cols = con.execute("select column_name, data_type from information_schema.columns "
                       "where table_schema = ? and table_name = ? order by ordinal_position",
                       [schema, table]).fetchall()
    exprs = []
    for name, dtype in cols:
        if name in exclude:
            continue
        q = f'"{name}"'
        # Doubles are rounded: a sum/avg may differ in the last bit with the order of addition.
        exprs.append(f"round({q}, 6)" if dtype in ("DOUBLE", "FLOAT", "REAL") else q)
    return exprs


def table_hashes(warehouse: Path, schemas=SCHEMAS, exclude=LOAD_TIME_COLUMNS) -> dict[str, tuple[int, int]]:
    """``{schema.table: (row count, order-independent hash of the rows)}`` (views included)."""
    con = connect_ro(warehouse)
    try:
        out = {}
        for schema, table in list_tables(con, schemas):
            exprs = _column_exprs(con, schema, table, exclude)
            row = f"row({', '.join(exprs)})" if exprs else "1"
            n, h = con.execute(f'select count(*), coalesce(sum(hash({row})::hugeint), 0) '
                               f'from "{schema}"."{table}"').fetchone()
            out[f"{schema}.{table}"] = (int(n), int(h))
        return out
    finally:
        con.close()


def diff_hashes(a: dict, b: dict) -> dict:
    keys = set(a) | set(b)
    return {k: (a.get(k), b.get(k)) for k in sorted(keys) if a.get(k) != b.get(k)}


def leftover_dbt_relations(warehouse: Path) -> list[str]:
    con = connect_ro(warehouse)
    try:
        return [f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_name like '%__dbt_tmp%' or table_name like '%__dbt_backup%'").fetchall()]
    finally:
        con.close()


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
