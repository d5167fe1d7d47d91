"""The one way Python reads the warehouse, on either engine.

ML, alerts, the report and the run summary read one DuckDB connection: :func:`connect`
(the DuckDB file ``settings.warehouse`` under its cross-process lock, with its resource
limits). Under ``NIGHTJAR_ENGINE=duckdb`` dbt builds its tables in that file.

Under ``spark`` dbt builds parquet tables in Spark's layout
``<spark warehouse>/<schema>.db/<table>/`` and dlt writes the raw layer to the lake
(``<lake>/raw/<table>/*.parquet``). :func:`refresh_views` (run after every ingestion and
every dbt run) gives the DuckDB file a view ``<schema>.<table>`` over the parquet files of
each of those tables, so readers see the same names and columns as on DuckDB, with no JVM
and no second process on Spark's single-process Derby metastore. What Nightjar writes
itself (schemas ``ml`` and ``alerts``) stays in the DuckDB file as real tables.

The views carry a comment that marks them as this module's; a table that vanished from
Spark loses its view on the next refresh, and a table left over from a DuckDB build of the
same name is replaced by the view (dbt can always rebuild it).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from nightjar.settings import Settings
from nightjar.warehouse_lock import locked_connection

# Schemas whose tables Nightjar writes into the DuckDB file itself under either engine.
DUCKDB_OWNED_SCHEMAS = frozenset({"ml", "alerts"})
VIEW_COMMENT = "nightjar:spark-parquet"
_PARTITION_DIR = re.compile(r"[^=/]+=[^/]*")


@contextmanager
def connect(settings: Settings, *, read_only: bool = True, purpose: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse held under its lock (readers too: DuckDB refuses to open
    a file another process is writing)."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with locked_connection(settings.warehouse, read_only=read_only, purpose=purpose,
                           config=settings.duckdb_config()) as con:
        yield con


@dataclass(frozen=True)
class ParquetTable:
    """One table's parquet folder: its files match `glob`; `partitioned`: hive `k=v` folders."""

    schema: str
    name: str
    folder: Path
    glob: str
    partitioned: bool
    has_files: bool


@dataclass
class Refresh:
    """What a refresh did (empty on the duckdb engine)."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    # tables without any parquet file (e.g. an empty partitioned table): an empty view with
    # the columns of the previous view when there was one, else no view
    empty: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{len(self.created)} views over parquet"]
        if self.dropped:
            parts.append(f"dropped {', '.join(self.dropped)}")
        if self.empty:
            parts.append(f"no files: {', '.join(self.empty)}")
        if self.skipped:
            parts.append(f"skipped {', '.join(self.skipped)}")
        return "; ".join(parts)


def _visible(name: str) -> bool:
    # Spark's _SUCCESS, _temporary/, .spark-staging-*/ and .crc files are not table data
    return not name.startswith(("_", "."))


def _parquet_table(schema: str, name: str, folder: Path) -> ParquetTable:
    """The glob of a table folder: `*.parquet` directly in it, or one `k=v` level per
    partition column (never `_temporary/` or `.spark-staging-*` files of an unfinished write)."""
    depth, level = 0, folder
    while True:
        subdirs = sorted((e for e in _entries(level) if e.is_dir() and _PARTITION_DIR.fullmatch(e.name)), key=lambda e: e.name)
        if not subdirs:
            break
        depth += 1
        level = Path(subdirs[0].path)
    pattern = "/".join(["*=*"] * depth + ["*.parquet"])
    glob = f"{folder}/{pattern}"
    has_files = any(True for _ in folder.glob(pattern))
    return ParquetTable(schema, name, folder, glob, depth > 0, has_files)


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        return list(os.scandir(folder))
    except OSError:
        return []


def spark_tables(spark_warehouse: Path) -> list[ParquetTable]:
    """Every table of every `<schema>.db` database under Spark's warehouse directory."""
    tables = []
    for db in sorted(_entries(spark_warehouse), key=lambda e: e.name):
        if not (db.is_dir() and db.name.endswith(".db") and _visible(db.name)):
            continue
        schema = db.name[: -len(".db")].lower()
        for t in sorted(_entries(Path(db.path)), key=lambda e: e.name):
            if t.is_dir() and _visible(t.name):
                tables.append(_parquet_table(schema, t.name.lower(), Path(t.path)))
    return tables


def local_path(url: str) -> Path | None:
    """The local directory of a lake URL (a path or file://), None for object stores."""
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    if "://" in url:
        return None
    return Path(url)


def lake_tables(lake_url: str, dataset: str = "raw") -> list[ParquetTable]:
    """The raw tables dlt wrote to a local lake: `<lake>/<dataset>/<table>/*.parquet`
    (dlt's own `_dlt_*` tables included when they are parquet)."""
    root = local_path(lake_url)
    if root is None:
        return []
    out = []
    for t in sorted(_entries(root / dataset), key=lambda e: e.name):
        if t.is_dir() and not t.name.startswith("."):
            table = _parquet_table(dataset, t.name.lower(), Path(t.path))
            if table.has_files:
                out.append(table)
    return out


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _relations(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(schema, name) -> (kind 'table' | 'view', comment) of the DuckDB file's own relations."""
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    for schema, name, comment in con.execute(
        "select schema_name, table_name, comment from duckdb_tables() where database_name = current_database()"
    ).fetchall():
        out[(schema, name)] = ("table", comment)
    for schema, name, comment in con.execute(
        "select schema_name, view_name, comment from duckdb_views() "
        "where not internal and database_name = current_database()"
    ).fetchall():
        out[(schema, name)] = ("view", comment)
    return out


def _columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position", [schema, name]
    ).fetchall()


def refresh_views(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> Refresh:
    """Point the DuckDB file's views at the current parquet files of every Spark table and
    lake raw table (a no-op under the duckdb engine). One transaction: readers see the old
    set of views or the new one."""
    result = Refresh()
    if settings.engine != "spark":
        return result
    if con is None:
        with connect(settings, read_only=False, purpose="refresh views over Spark tables") as own:
            return refresh_views(settings, own)
    # the lake holds raw; a `raw.db` in Spark's warehouse would only be an empty schema folder
    tables = {(t.schema, t.name): t for t in spark_tables(settings.spark_warehouse or settings.data_dir / "spark-warehouse")}
    tables.update({(t.schema, t.name): t for t in lake_tables(settings.lake_url)})
    existing = _relations(con)
    con.execute("begin transaction")
    try:
        for key, (kind, comment) in existing.items():
            if kind == "view" and comment == VIEW_COMMENT and key not in tables:
                con.execute(f"drop view {_q(key[0])}.{_q(key[1])}")
                result.dropped.append(".".join(key))
        for key, table in sorted(tables.items()):
            qualified = ".".join(key)
            target = f"{_q(table.schema)}.{_q(table.name)}"
            if table.schema in DUCKDB_OWNED_SCHEMAS:
                result.skipped.append(f"{qualified} (schema {table.schema} belongs to Nightjar's DuckDB tables)")
                continue
            kind, comment = existing.get(key, (None, None))
            if table.has_files:
                select = (f"select * from read_parquet({_lit(table.glob)}, union_by_name = true"
                          f"{', hive_partitioning = true' if table.partitioned else ', hive_partitioning = false'})")
            elif kind == "view" and comment == VIEW_COMMENT and (cols := _columns(con, *key)):
                # a table that became empty keeps its columns (the view's bound types)
                select = "select " + ", ".join(f"cast(null as {t}) as {_q(c)}" for c, t in cols) + " where false"
                result.empty.append(qualified)
            else:
                result.empty.append(qualified)
                continue
            con.execute(f"create schema if not exists {_q(table.schema)}")
            if kind == "table":
                # a DuckDB-engine build of the same table: Spark's is the one now
                con.execute(f"drop table {target}")
            con.execute(f"create or replace view {target} as {select}")
            con.execute(f"comment on view {target} is {_lit(VIEW_COMMENT)}")
            result.created.append(qualified)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return result
