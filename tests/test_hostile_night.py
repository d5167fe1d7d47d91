"""One night over everything hostile at once (issue 24), through `nightjar run` as a user
runs it: a multi-GiB gzip bomb, symlinks out of the landing folder (a file and a `dt=`
folder), events dated 2099, e-mails as ids and in URLs, IPs, and bad shop orders. The night
succeeds within 3 GB of peak RSS, no e-mail or IP reaches a mart, ml or alerts table, and the
next night loads the files added since."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import stat
import subprocess
import sys
import zlib
from datetime import date
from pathlib import Path

import pytest

from corpus import ev, j
from nightjar.settings import get_settings
from nightjar.simulator import append_days, simulate
from querying import query

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NIGHTJAR = str(REPO / ".venv" / "bin" / "nightjar")
IPV4 = r"(^|[^0-9.])([0-9]{1,3}\.){3}[0-9]{1,3}([^0-9.]|$)"
# Runs `nightjar run` and reports the peak RSS of the largest process of its tree (the
# in-process Dagster run, dlt, dbt), isolated from this test session's other children.
_MEASURED_RUN = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True); sys.exit(p.returncode)"
)


def _gzip_bomb(path: Path, inflated: int, chunk: int = 1 << 20) -> None:
    """`inflated` bytes of zeros, gzip-compressed a chunk at a time (never in memory)."""
    zeros = bytes(chunk)
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip container
    with path.open("wb") as f:
        for _ in range(inflated // chunk):
            f.write(comp.compress(zeros))
        f.write(comp.flush())


def _night(data_dir: Path) -> tuple[subprocess.CompletedProcess, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTJAR_", "DBT_", "DAGSTER_"))}
    env.update(NIGHTJAR_DATA_DIR=str(data_dir), DBT_SEND_ANONYMOUS_USAGE_STATS="false")  # no PII key given
    proc = subprocess.run([sys.executable, "-c", _MEASURED_RUN, NIGHTJAR, "run"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    peak_kb = int(proc.stdout.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return proc, peak_kb * 1024


def _hostile_landing(data_dir: Path, outside: Path, day: str) -> None:
    events = get_settings({"NIGHTJAR_DATA_DIR": str(data_dir)}).events_dir
    part = events / f"dt={day}"
    _gzip_bomb(part / "bomb.jsonl.gz", (2 << 30) + (64 << 20))  # past the 2 GiB default cap
    (outside / "part").mkdir(parents=True)
    (outside / "secret.jsonl").write_text(j(ev("leak-1", user_id="leak@example.com")) + "\n")
    (outside / "part" / "b.jsonl").write_text(j(ev("leak-2")) + "\n")
    (part / "link.jsonl").symlink_to(outside / "secret.jsonl")
    (events / "dt=2025-02-27").symlink_to(outside / "part", target_is_directory=True)
    ts = f"{day}T12:00:00Z"
    page = {"url": "https://shop.example/p?email=eve@example.com&utm_source=mail&ip=203.0.113.9#t@x",
            "path": "/p?email=eve@example.com", "referrer": "https://mail.example/?to=eve@example.com&h=10.1.2.3"}
    lines = [
        ev("h-1", timestamp=ts, received_at=ts, user_id="eve@example.com", anonymous_id="eve@laptop.example",
           context={"page": page, "user_agent": "Mozilla/5.0", "ip": "203.0.113.9"}),
        ev("h-2", timestamp="2099-01-01T00:00:00Z", received_at="2099-01-01T00:00:01Z"),
    ]
    (part / "hostile.jsonl").write_text("".join(j(e) + "\n" for e in lines))


def _bad_orders(shop: Path, day: str) -> dict[str, str]:
    con = sqlite3.connect(shop)
    try:
        customer = con.execute("select customer_id from customers order by customer_id limit 1").fetchone()[0]
        at = f"{day} 15:00:00"
        bad = {"bad-fx": (customer, "paid", "XYZ", 10.0, "unknown_currency"),
               "bad-neg": (customer, "paid", "USD", -10.0, "negative_amount"),
               "bad-cust": ("nobody@example.com", "paid", "USD", 10.0, "unknown_customer"),
               "bad-status": (customer, "stolen", "USD", 10.0, "unknown_status")}
        con.executemany("insert into orders (order_id, customer_id, status, currency, total_amount, created_at, "
                        "updated_at) values (?, ?, ?, ?, ?, ?, ?)",
                        [(oid, c, s, cur, t, at, at) for oid, (c, s, cur, t, _) in bad.items()])
        con.commit()
    finally:
        con.close()
    return {oid: v[-1] for oid, v in bad.items()}


def test_a_hostile_night_succeeds_in_bounded_memory_and_the_next_night_loads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    simulate(data_dir, start=date(2025, 3, 1), days=4, customers=40, seed=7)
    day = "2025-03-02"
    _hostile_landing(data_dir, tmp_path / "outside", day)
    bad = _bad_orders(data_dir / "shop.sqlite", day)

    proc, peak = _night(data_dir)
    print(json.dumps({"hostile_night_peak_rss_mib": peak >> 20}), flush=True)  # BENCHMARKS.md
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert peak < 3 * 10**9, f"peak RSS {peak / 2**20:.0f} MiB"

    settings = get_settings({"NIGHTJAR_DATA_DIR": str(data_dir)})
    wh = settings.warehouse
    rejected = dict(query(wh, "select _file, reason from raw.events_rejected where _line = 0"))
    assert rejected[f"dt={day}/bomb.jsonl.gz"] == "file_too_large"
    assert rejected[f"dt={day}/link.jsonl"] == rejected["dt=2025-02-27"] == "symlink"
    assert query(wh, "select reason from raw.events_rejected where raw_line like '%h-2%'") == [("future_timestamp",)]
    assert query(wh, "select count(*) from raw.events where event_id like 'leak-%'") == [(0,)]
    assert dict(query(wh, "select order_id, reason from staging.stg_orders_rejected")) == bad

    # the key was created by the night (no NIGHTJAR_PII_KEY given), private, and used
    key_file = data_dir / "pii.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    eve = hmac.new(key_file.read_text().strip().encode(), b"eve@example.com", hashlib.sha256).hexdigest()
    assert query(wh, "select count(*) from marts.fct_sessions where user_key = ?", [eve]) == [(1,)]
    tables = query(wh, "select table_schema, table_name, column_name from information_schema.columns "
                       "where table_schema in ('marts', 'ml', 'alerts')")
    assert {t[0] for t in tables} == {"marts", "ml", "alerts"}
    # notifications link to our own UI (NIGHTJAR_UI_URL, 127.0.0.1): that address is not visitor data
    value = f"replace(cast(\"{{c}}\" as varchar), '{settings.ui_url}', '')"
    leaks = [(s, t, c) for s, t, c in tables
             if query(wh, f'select count(*) from {s}."{t}" where {value.format(c=c)} like \'%@%\' '
                          f'or regexp_matches({value.format(c=c)}, \'{IPV4}\')')[0][0]]
    assert leaks == []

    # the next night: new files of the appended day load; the bomb and links are not re-read
    append_days(data_dir, 1)
    new_files = sorted(p.relative_to(settings.events_dir).as_posix()
                       for p in settings.events_dir.glob("dt=2025-03-05/*"))
    assert new_files
    proc2, peak2 = _night(data_dir)
    print(json.dumps({"next_night_peak_rss_mib": peak2 >> 20}), flush=True)
    assert proc2.returncode == 0, proc2.stdout[-5000:] + proc2.stderr[-5000:]
    loaded = {f for (f,) in query(wh, "select _file from raw.events_load_log where rows_loaded > 0")}
    assert set(new_files) <= loaded
    assert query(wh, "select count(*) from raw.events_rejected where _file = ?", [f"dt={day}/bomb.jsonl.gz"]) == [(1,)]
    assert query(wh, "select max(metric_date) from marts.fct_daily_metrics")[0][0] >= date(2025, 3, 5)
