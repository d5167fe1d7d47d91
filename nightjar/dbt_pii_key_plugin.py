"""dbt-duckdb plugin (``profiles.yml`` → ``plugins``) that hands dbt the PII key.

The key goes into the DuckDB session variable ``nightjar_pii_key`` as a bound parameter,
so it never appears in compiled SQL, ``target/`` or dbt's logs. The macro ``pii_key()``
reads the variable and fails the query with a clear message when it is unset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from nightjar.pii_key import read_key

VARIABLE = "nightjar_pii_key"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # read once per dbt invocation; None leaves the variable unset (pii_key() then fails)
        self._key = read_key(Path(plugin_config["key_file"]))

    def configure_connection(self, conn) -> None:
        self._set(conn)

    def configure_cursor(self, cursor) -> None:
        # every dbt cursor is a new DuckDB session: variables do not carry over
        self._set(cursor)

    def _set(self, conn) -> None:
        if self._key is not None:
            conn.execute(f"SET VARIABLE {VARIABLE} = ?", [self._key])
