"""The one place where Nightjar reads its settings.

Every setting is an environment variable with a default (DESIGN.md §4). Code never
reads ``os.environ`` for these itself: it calls :func:`get_settings` so that tests can
point a whole pipeline at a temporary directory by setting ``NIGHTJAR_DATA_DIR``.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DEFAULT_ALERTS_FILE = REPO_ROOT / "nightjar" / "alerts" / "default_rules.yml"
DEFAULT_PARTITIONS_START = "2024-01-01"
DEFAULT_EARLIEST_EVENT_DATE = date(2000, 1, 1)
_DAY_FOLDER = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
# a Segment export's received-day folder (Unix ms; nightjar.ingest.segment.RECEIVED_DAY_RE),
# bounded to years 1970..9999 so that it always converts to a date
_RECEIVED_DAY = re.compile(r"[0-9]{1,14}")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    shop_db_url: str
    warehouse: Path
    alerts_file: Path
    nightly_cron: str = "0 2 * * *"
    # Base URL of the Dagster UI, for links in notifications and the run summary.
    ui_url: str = "http://127.0.0.1:3000"
    timezone: str = "UTC"
    # First day of the Dagster daily partitions (YYYY-MM-DD, in `timezone`): the earliest
    # date a user can backfill from the UI. NIGHTJAR_PARTITIONS_START, default the first
    # `dt=` day or Segment export received day in the landing folder (else 2024-01-01), so the
    # partitions start with the data.
    partitions_start: str = DEFAULT_PARTITIONS_START
    # The Dagster instance shared by `nightjar run`, `make run` and `make ui` (run history,
    # materialisations, checks): DAGSTER_HOME, default `<data dir>/dagster_home`.
    dagster_home: Path | None = None
    # DuckDB resource limits for every process that opens the warehouse (dlt destination,
    # dbt profile, the ingest validator): NIGHTJAR_DUCKDB_MEMORY_LIMIT (e.g. "4GB", "60%";
    # default: DuckDB's own, 80 % of RAM), NIGHTJAR_DUCKDB_TEMP_DIRECTORY (spill directory;
    # default "<warehouse>.tmp", DuckDB's own default next to the file), and
    # NIGHTJAR_DUCKDB_THREADS (default: DuckDB's own, one per core).
    duckdb_memory_limit: str | None = None
    duckdb_temp_directory: Path | None = None
    duckdb_threads: int | None = None
    # Events whose `timestamp` or `received_at` lies more than this many hours after the
    # load time are rejected as `future_timestamp`: NIGHTJAR_FUTURE_SKEW_HOURS, default 24.
    future_skew_hours: float = 24.0
    # Caps on one landing file, read as a stream (a gzip bomb never gets into memory):
    # NIGHTJAR_MAX_FILE_BYTES (inflated bytes, default 2 GiB) and NIGHTJAR_MAX_FILE_LINES
    # (default 10 M); past either the file becomes one `file_too_large` reject row.
    # NIGHTJAR_MAX_LINE_BYTES (default 1 MiB): a longer line is never held whole in memory
    # (only a 32 KiB prefix); it is a `line_too_large` reject row like any line > 32 KiB.
    max_file_bytes: int = 2 * 1024**3
    max_file_lines: int = 10_000_000
    max_line_bytes: int = 1024**2
    # Country whose public holidays the alert baselines leave out (nightjar/alerts/
    # holiday_calendar.py): NIGHTJAR_HOLIDAY_COUNTRY, an ISO code of the `holidays` package,
    # default US; empty or "none" turns the holiday calendar off.
    holiday_country: str = "US"
    # Events whose `timestamp` is before this UTC date are rejected (`timestamp_too_early`):
    # NIGHTJAR_EARLIEST_EVENT_DATE (YYYY-MM-DD), default 2000-01-01. Lower it to import older
    # history; shop orders have no such floor.
    earliest_event_date: date = DEFAULT_EARLIEST_EVENT_DATE
    # Churn label window H (ml/churn/config.py): NIGHTJAR_CHURN_HORIZON_DAYS, default unset =
    # derived from the shop's inter-purchase gaps. A set H below the gaps' 90th percentile is
    # refused unless NIGHTJAR_CHURN_CHECK_HORIZON=false (a short history that cannot hold the
    # derived window, e.g. 18 months of a shop whose p90 gap is 200 days). Run config wins.
    churn_horizon_days: int | None = None
    churn_check_horizon: bool = True
    # The engine (DESIGN §6): NIGHTJAR_ENGINE=duckdb (default: dlt -> the DuckDB warehouse,
    # dbt-duckdb) or spark (dlt -> a parquet lake, dbt-spark). Under spark the DuckDB
    # warehouse file still holds what Nightjar writes itself (ml, alerts) and views over the
    # Spark tables' parquet files, so ML, alerts and the report read one interface.
    engine: str = "duckdb"
    # spark: the raw parquet lake (NIGHTJAR_LAKE_URL, any fsspec URL; default <data dir>/lake),
    # the Spark master (NIGHTJAR_SPARK_MASTER, default local[*]), the table warehouse
    # (NIGHTJAR_SPARK_WAREHOUSE, default <data dir>/spark-warehouse, tables at
    # <warehouse>/<schema>.db/<table>/) and extra Spark conf (NIGHTJAR_SPARK_CONF, a JSON
    # object or comma-separated key=value pairs, e.g. "spark.executor.memory=4g").
    lake_url: str = ""
    spark_master: str = "local[*]"
    spark_warehouse: Path | None = None
    spark_conf: tuple[tuple[str, str], ...] = ()

    @property
    def earliest_event_time(self) -> datetime:
        """Midnight UTC of `earliest_event_date`: the earliest accepted event `timestamp`."""
        return datetime(self.earliest_event_date.year, self.earliest_event_date.month,
                        self.earliest_event_date.day, tzinfo=timezone.utc)

    @property
    def default_shop_db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'shop.sqlite'}"

    @property
    def has_shop_db(self) -> bool:
        """False for an events-only shop: NIGHTJAR_SHOP_DB_URL unset (the default URL) and no
        `shop.sqlite` in the data dir. A URL that is set always counts, so that a wrong one
        fails loudly instead of reading as "no shop"."""
        return self.shop_db_url != self.default_shop_db_url or (self.data_dir / "shop.sqlite").exists()

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def events_dir(self) -> Path:
        return self.landing_dir / "events"

    @property
    def segment_dir(self) -> Path:
        """Segment / RudderStack object-storage exports: ``<source-id>/<received-day ms>/*.gz``."""
        return self.landing_dir / "segment-logs"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def dlt_pipelines_dir(self) -> Path:
        # dlt's local working state; the authoritative state lives in the warehouse.
        return self.artifacts_dir / "dlt"

    @property
    def alerts_ledger(self) -> Path:
        # delivered notification keys, outside the warehouse so that they survive its rebuild
        return self.artifacts_dir / "alerts" / "delivered.sqlite"

    @property
    def pii_key_file(self) -> Path:
        # the PII HMAC key when NIGHTJAR_PII_KEY is unset (nightjar/pii_key.py); dbt's profile
        # reads the same path
        return self.data_dir / "pii.key"

    @property
    def ground_truth_file(self) -> Path:
        return self.data_dir / "ground_truth.json"

    @property
    def spark_metastore_dir(self) -> Path:
        """The embedded Derby metastore, pinned beside the Spark warehouse so that every process
        (dbt, Dagster, tests) sees one catalog (Derby admits one process at a time)."""
        return (self.spark_warehouse or self.data_dir / "spark-warehouse") / "metastore_db"

    def spark_session_conf(self) -> dict[str, str]:
        """The Spark conf of every Nightjar Spark session: master, warehouse, metastore, then
        NIGHTJAR_SPARK_CONF (which wins)."""
        conf = {
            "spark.master": self.spark_master,
            "spark.sql.warehouse.dir": str(self.spark_warehouse or self.data_dir / "spark-warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={self.spark_metastore_dir};create=true",
            # timestamps are UTC everywhere, as in the DuckDB profile
            "spark.sql.session.timeZone": "UTC",
        }
        conf.update(dict(self.spark_conf))
        return conf

    @property
    def spark_conf_dir(self) -> Path:
        """The SPARK_CONF_DIR handed to Spark processes (dbt's session): its generated
        ``spark-defaults.conf`` holds :meth:`spark_session_conf` (see :meth:`write_spark_conf`)."""
        return self.artifacts_dir / "spark-conf"

    def write_spark_conf(self) -> Path:
        """Write ``<spark_conf_dir>/spark-defaults.conf`` from :meth:`spark_session_conf` and
        return the directory. spark-submit (which every pyspark session starts through)
        reads it, so NIGHTJAR_SPARK_CONF reaches Spark without a profile change; the dbt
        profile's server_side_parameters win over it for the keys they set."""
        lines = ["# Generated by Nightjar from its settings (NIGHTJAR_SPARK_*); rewritten before every Spark run."]
        conf = {
            # no progress bars in `nightjar run`'s output (Spark's UI and event log keep them)
            "spark.ui.showConsoleProgress": "false",
            **self.spark_session_conf(),
        }
        # Derby's log beside the metastore instead of in the working directory of each process
        conf.setdefault("spark.driver.extraJavaOptions",
                        f"-Dderby.stream.error.file={self.spark_metastore_dir.parent / 'derby.log'}")
        for key, value in conf.items():
            if any(c in key + value for c in "\r\n") or not key.strip() or any(c.isspace() for c in key):
                raise ValueError(f"Spark conf {key!r}: keys without whitespace, values on one line")
            # Java properties syntax: a backslash escapes, so double it
            lines.append(f"{key} {value.replace(chr(92), chr(92) * 2)}")
        folder = self.spark_conf_dir
        folder.mkdir(parents=True, exist_ok=True)
        # derby.log's folder must exist before the JVM starts
        self.spark_metastore_dir.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / "spark-defaults.conf", "\n".join(lines) + "\n")
        _atomic_write(folder / "log4j2.properties", SPARK_LOG4J2)
        return folder

    @property
    def duckdb_temp_dir(self) -> Path:
        """Where DuckDB spills when a query exceeds the memory limit."""
        return self.duckdb_temp_directory or Path(str(self.warehouse) + ".tmp")

    def duckdb_config(self) -> dict[str, str | int]:
        """DuckDB settings (``duckdb.connect(config=...)`` / ``SET``) for the warehouse."""
        cfg: dict[str, str | int] = {"temp_directory": str(self.duckdb_temp_dir)}
        if self.duckdb_memory_limit:
            cfg["memory_limit"] = self.duckdb_memory_limit
        if self.duckdb_threads:
            cfg["threads"] = self.duckdb_threads
        return cfg

    def env(self) -> dict[str, str]:
        """The variables to hand to a subprocess (dbt, dagster) so it sees the same settings."""
        env = {
            "NIGHTJAR_DATA_DIR": str(self.data_dir),
            "NIGHTJAR_SHOP_DB_URL": self.shop_db_url,
            "NIGHTJAR_WAREHOUSE": str(self.warehouse),
            "NIGHTJAR_ALERTS_FILE": str(self.alerts_file),
            "NIGHTJAR_NIGHTLY_CRON": self.nightly_cron,
            "NIGHTJAR_UI_URL": self.ui_url,
            "NIGHTJAR_TIMEZONE": self.timezone,
            "NIGHTJAR_PARTITIONS_START": self.partitions_start,
            "DAGSTER_HOME": str(self.dagster_home),
            "NIGHTJAR_DUCKDB_TEMP_DIRECTORY": str(self.duckdb_temp_dir),
            "NIGHTJAR_FUTURE_SKEW_HOURS": f"{self.future_skew_hours:g}",
            "NIGHTJAR_MAX_FILE_BYTES": str(self.max_file_bytes),
            "NIGHTJAR_MAX_FILE_LINES": str(self.max_file_lines),
            "NIGHTJAR_MAX_LINE_BYTES": str(self.max_line_bytes),
            "NIGHTJAR_HOLIDAY_COUNTRY": self.holiday_country,
            "NIGHTJAR_EARLIEST_EVENT_DATE": self.earliest_event_date.isoformat(),
            "NIGHTJAR_CHURN_CHECK_HORIZON": str(self.churn_check_horizon).lower(),
            "NIGHTJAR_ENGINE": self.engine,
            "NIGHTJAR_LAKE_URL": self.lake_url,
            "NIGHTJAR_SPARK_MASTER": self.spark_master,
            "NIGHTJAR_SPARK_WAREHOUSE": str(self.spark_warehouse),
        }
        if self.engine == "spark":
            # written by write_spark_conf() before a Spark process starts
            env["SPARK_CONF_DIR"] = str(self.spark_conf_dir)
        if self.spark_conf:
            # JSON, so that values with commas (e.g. spark.jars) survive the round trip
            env["NIGHTJAR_SPARK_CONF"] = json.dumps(dict(self.spark_conf))
        if self.duckdb_memory_limit:
            env["NIGHTJAR_DUCKDB_MEMORY_LIMIT"] = self.duckdb_memory_limit
        if self.churn_horizon_days:
            env["NIGHTJAR_CHURN_HORIZON_DAYS"] = str(self.churn_horizon_days)
        if self.duckdb_threads:
            env["NIGHTJAR_DUCKDB_THREADS"] = str(self.duckdb_threads)
        return env


def get_settings(environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("NIGHTJAR_DATA_DIR") or "./data").expanduser().resolve()
    shop_db_url = env.get("NIGHTJAR_SHOP_DB_URL") or f"sqlite:///{data_dir / 'shop.sqlite'}"
    warehouse = Path(env.get("NIGHTJAR_WAREHOUSE") or data_dir / "warehouse.duckdb").expanduser().resolve()
    alerts_file = Path(env.get("NIGHTJAR_ALERTS_FILE") or DEFAULT_ALERTS_FILE).expanduser().resolve()
    return Settings(
        data_dir=data_dir,
        shop_db_url=shop_db_url,
        warehouse=warehouse,
        alerts_file=alerts_file,
        # The nightly run processes the day that just ended, in this timezone.
        nightly_cron=env.get("NIGHTJAR_NIGHTLY_CRON") or "0 2 * * *",
        ui_url=(env.get("NIGHTJAR_UI_URL") or "http://127.0.0.1:3000").rstrip("/"),
        timezone=env.get("NIGHTJAR_TIMEZONE") or "UTC",
        partitions_start=env.get("NIGHTJAR_PARTITIONS_START")
        or first_landing_day(data_dir / "landing" / "events", data_dir / "landing" / "segment-logs")
        or DEFAULT_PARTITIONS_START,
        dagster_home=Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").expanduser().resolve(),
        duckdb_memory_limit=env.get("NIGHTJAR_DUCKDB_MEMORY_LIMIT") or None,
        duckdb_temp_directory=(
            Path(env["NIGHTJAR_DUCKDB_TEMP_DIRECTORY"]).expanduser().resolve()
            if env.get("NIGHTJAR_DUCKDB_TEMP_DIRECTORY") else None
        ),
        duckdb_threads=int(env["NIGHTJAR_DUCKDB_THREADS"]) if env.get("NIGHTJAR_DUCKDB_THREADS") else None,
        future_skew_hours=_non_negative_float(env, "NIGHTJAR_FUTURE_SKEW_HOURS", 24.0),
        max_file_bytes=_positive_int(env, "NIGHTJAR_MAX_FILE_BYTES", 2 * 1024**3),
        max_file_lines=_positive_int(env, "NIGHTJAR_MAX_FILE_LINES", 10_000_000),
        max_line_bytes=_positive_int(env, "NIGHTJAR_MAX_LINE_BYTES", 1024**2),
        holiday_country=(env.get("NIGHTJAR_HOLIDAY_COUNTRY", "US") or "").strip(),
        earliest_event_date=_date(env, "NIGHTJAR_EARLIEST_EVENT_DATE", DEFAULT_EARLIEST_EVENT_DATE),
        churn_horizon_days=_positive_int(env, "NIGHTJAR_CHURN_HORIZON_DAYS", 0) or None,
        churn_check_horizon=_bool(env, "NIGHTJAR_CHURN_CHECK_HORIZON", True),
        engine=_engine(env),
        lake_url=(env.get("NIGHTJAR_LAKE_URL") or str(data_dir / "lake")).rstrip("/"),
        spark_master=env.get("NIGHTJAR_SPARK_MASTER") or "local[*]",
        spark_warehouse=Path(env.get("NIGHTJAR_SPARK_WAREHOUSE") or data_dir / "spark-warehouse").expanduser().resolve(),
        spark_conf=_spark_conf(env.get("NIGHTJAR_SPARK_CONF") or ""),
    )


ENGINES = ("duckdb", "spark")

# Spark's logging in SPARK_CONF_DIR (spark-class puts the folder on the classpath): warnings,
# without the ones dbt-spark's session method and the embedded Hive metastore repeat for
# every model.
SPARK_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.session.name = org.apache.spark.sql.classic.SparkSession
logger.session.level = error
logger.hiveconf.name = org.apache.hadoop.hive.conf.HiveConf
logger.hiveconf.level = error
logger.hivecatalog.name = org.apache.spark.sql.hive.HiveExternalCatalog
logger.hivecatalog.level = error
logger.sessionstate.name = org.apache.hadoop.hive.ql.session.SessionState
logger.sessionstate.level = error
logger.nativecode.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativecode.level = error
"""


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _engine(env) -> str:
    raw = (env.get("NIGHTJAR_ENGINE") or "duckdb").strip().lower()
    if raw not in ENGINES:
        raise ValueError(f"NIGHTJAR_ENGINE must be one of {', '.join(ENGINES)}, got {env.get('NIGHTJAR_ENGINE')!r}")
    return raw


def _spark_conf(raw: str) -> tuple[tuple[str, str], ...]:
    """NIGHTJAR_SPARK_CONF: a JSON object, or comma-separated key=value pairs."""
    raw = raw.strip()
    if not raw:
        return ()
    if raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"NIGHTJAR_SPARK_CONF is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError("NIGHTJAR_SPARK_CONF must be a JSON object of Spark conf keys and values")
        return tuple((str(k), str(v)) for k, v in parsed.items())
    pairs = []
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"NIGHTJAR_SPARK_CONF must be key=value pairs separated by commas, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _bool(env, name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {env.get(name)!r}")


def _positive_int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {raw!r}")
    return value


def _date(env, name: str, default: date) -> date:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def _non_negative_float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of hours, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):  # also refuses NaN
        raise ValueError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


def landing_days(events_dir: Path, segment_dir: Path | None = None) -> list[str]:
    """The `dt=YYYY-MM-DD` days under the events landing folder and, with `segment_dir`, the
    received days (`<source>/<day start, Unix ms>`) of the Segment exports, as sorted
    `YYYY-MM-DD` strings (a few directory listings: cheap enough for every definitions load)."""
    # symlinked folders are not read (the loader rejects them), so they start no partition
    days = {m.group(1) for e in _scan(events_dir)
            if (m := _DAY_FOLDER.fullmatch(e.name)) and e.is_dir(follow_symlinks=False)}
    if segment_dir is not None and not segment_dir.is_symlink():
        for source in _scan(segment_dir):
            if source.name.startswith(".") or not source.is_dir(follow_symlinks=False):
                continue
            for e in _scan(Path(source.path)):
                if _RECEIVED_DAY.fullmatch(e.name) and e.is_dir(follow_symlinks=False):
                    days.add(datetime.fromtimestamp(int(e.name) // 1000, timezone.utc).date().isoformat())
    return sorted(days)


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        return list(os.scandir(folder))
    except OSError:
        return []


def first_landing_day(events_dir: Path, segment_dir: Path | None = None) -> str | None:
    days = landing_days(events_dir, segment_dir)
    return days[0] if days else None


@contextmanager
def environ_overrides(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in this process's environment (seen by every subprocess it starts) and
    restore the previous values on exit."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
