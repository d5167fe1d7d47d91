"""Whether the nightly dbt build has anything to do.

After a successful build the dbt step records a fingerprint of the raw layer (row count and
newest dlt load id of each raw table) and of the dbt project's files. A later nightly run
with the same fingerprints and no wider selection has nothing to transform, so it skips
dbt (and Dagster then skips the assets downstream of it).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from nightjar.settings import DBT_PROJECT_DIR

SKIP_REASON = "no rows loaded and no dbt file changed since the last successful build"

_PROJECT_SUFFIXES = {".sql", ".yml", ".yaml", ".csv"}
_GENERATED = {"target", "logs", "dbt_packages"}


def project_fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """A hash of every model, macro, seed and config file of the dbt project."""
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        rel = path.relative_to(project_dir)
        if path.is_file() and path.suffix in _PROJECT_SUFFIXES and rel.parts[0] not in _GENERATED:
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def raw_fingerprint(con: duckdb.DuckDBPyConnection) -> dict[str, list[Any]]:
    """`table -> [row count, newest _dlt_load_id]` of every table in `raw` (merged shop
    rows keep their count but get a newer load id)."""
    columns: dict[str, set[str]] = {}
    for table, column in con.execute(
        "select table_name, column_name from information_schema.columns where table_schema = 'raw'"
    ).fetchall():
        columns.setdefault(table, set()).add(column)
    out: dict[str, list[Any]] = {}
    for table in sorted(columns):
        newest = ", max(_dlt_load_id)" if "_dlt_load_id" in columns[table] else ", null"
        count, load_id = con.execute(f'select count(*){newest} from raw."{table}"').fetchone()
        out[table] = [int(count), None if load_id is None else str(load_id)]
    return out


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_state(path: Path, raw: dict[str, list[Any]], project: str, selected: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"raw": raw, "project": project, "selected": sorted(selected)}, indent=1))
    tmp.replace(path)  # atomic: a crash leaves the old state, never half a file


def nothing_to_build(state: dict[str, Any] | None, raw: dict[str, list[Any]], project: str,
                     selected: Iterable[str]) -> bool:
    """True when the last successful build saw the same raw data and project and built at
    least the models selected now."""
    if not state or not raw:
        return False
    return state.get("raw") == raw and state.get("project") == project \
        and set(selected) <= set(state.get("selected", ()))
