"""Resources shared by the Dagster assets."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from nightjar.dagster_home import WAREHOUSE_POOL  # noqa: F401  (the assets' pool)
from nightjar.settings import Settings, get_settings
from nightjar import marts_reader
from nightjar.warehouse_lock import warehouse_lock



class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse and data directory of the configured Nightjar settings.

    Settings are read when a run uses the resource (not at import), so a test that sets
    NIGHTJAR_DATA_DIR before materialising points every asset at its own files.
    """

    def settings(self) -> Settings:
        return get_settings()

    @property
    def path(self) -> Path:
        return self.settings().warehouse

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held under the cross-process warehouse lock (:func:`nightjar.marts_reader.connect`:
        on either engine the marts are tables or views of this one DuckDB file).

        The Dagster pool serialises runs of one instance; the file lock also covers a
        `nightjar run` (its own instance) overlapping a UI run. Read-only connections take
        it too: DuckDB refuses to open a file another process is writing.
        """
        with marts_reader.connect(self.settings(), read_only=read_only, purpose="dagster asset") as con:
            yield con

    def lock(self, purpose: str = ""):
        """The warehouse writer lock alone, for steps that write through a subprocess (dbt)."""
        return warehouse_lock(self.path, purpose=purpose)
