"""PII pseudonymisation (DESIGN §6): dbt's keyed HMAC equals Python's ``hmac`` for any key
and message, and dbt obtains the key itself (NIGHTJAR_PII_KEY, else ``<data dir>/pii.key``)
with no built-in fallback: a plain ``dbt`` run without either fails and says how to fix it.
Runs the real dbt CLI (``dbt show --inline``) on an empty DuckDB file."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from nightjar.pii_key import ensure_key_file, read_key

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = str(REPO / ".venv" / "bin" / "dbt")

# (key, message): short, empty-ish, exactly one block, longer than a block, non-ASCII
VECTORS = [
    ("k", "alice@example.com"),
    ("nightjar-test-pii-key", "Bob.Smith+tag@Example.COM"),
    ("x" * 64, "exactly-one-block-key@example.com"),
    ("a-key-longer-than-the-64-byte-block-of-sha256-" * 3, "long-key@example.com"),
    ("ключ-🔑", "zoë.müller@exämple.de"),
    ("k", ""),
]


def _dbt_show(sql: str, data_dir: Path, work: Path, key: str | None) -> subprocess.CompletedProcess:
    """`dbt show --inline` as a user would run it: only the data dir (and maybe the key) set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "NIGHTJAR_"))}
    env.update(NIGHTJAR_DATA_DIR=str(data_dir), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    if key is not None:
        env["NIGHTJAR_PII_KEY"] = key
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [DBT, "show", "--inline", sql, "--output", "json", "--limit", "-1", "--project-dir", str(PROJECT),
         "--profiles-dir", str(PROJECT), "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
        cwd=work, env=env, capture_output=True, text=True, timeout=300)


def _rows(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    start = proc.stdout.rindex("{", 0, proc.stdout.index('"show"'))
    return json.JSONDecoder().raw_decode(proc.stdout[start:])[0]["show"]


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _python_hmac(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_key_file_is_created_once_private_and_random(tmp_path: Path) -> None:
    key_file = tmp_path / "d" / "pii.key"
    assert ensure_key_file(key_file, environ={}) == key_file
    key = read_key(key_file, environ={})
    assert key and len(key) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ensure_key_file(key_file, environ={}) == key_file and read_key(key_file, environ={}) == key
    other = tmp_path / "e" / "pii.key"
    ensure_key_file(other, environ={})
    assert read_key(other, environ={}) != key
    # the environment's key wins and no file is written for it
    assert ensure_key_file(tmp_path / "f" / "pii.key", environ={"NIGHTJAR_PII_KEY": "env"}) is None
    assert not (tmp_path / "f").exists()
    assert read_key(key_file, environ={"NIGHTJAR_PII_KEY": " env "}) == "env"


def test_plain_dbt_reads_the_key_file_and_matches_python_hmac(data_dir: Path, tmp_path: Path) -> None:
    ensure_key_file(data_dir / "pii.key", environ={})
    file_key = read_key(data_dir / "pii.key", environ={})
    values = ", ".join(f"({i}, {_sql_str(k)}, {_sql_str(m)})" for i, (k, m) in enumerate(VECTORS))
    sql = (f"with v(i, k, m) as (values {values}) select i, {{{{ nightjar.hmac_sha256_hex('k', 'm') }}}} as h from v"
           " union all select 100, {{ nightjar.hash_email(\"'  Alice@Example.COM '\") }}"
           " union all select 101, {{ nightjar.pseudonymise_identifier(\"'bob@example.com'\") }}"
           " union all select 102, {{ nightjar.pseudonymise_identifier(\"'c_000042'\") }}")
    got = {r["i"]: r["h"] for r in _rows(_dbt_show(sql, data_dir, tmp_path / "w", key=None))}
    for i, (k, m) in enumerate(VECTORS):
        assert got[i] == _python_hmac(k, m), (k, m)
    assert got[100] == _python_hmac(file_key, "alice@example.com")  # trimmed, lower-cased
    assert got[101] == _python_hmac(file_key, "bob@example.com")
    assert got[102] == "c_000042"  # not e-mail-shaped: unchanged


def test_the_environment_key_wins_over_the_file(data_dir: Path, tmp_path: Path) -> None:
    ensure_key_file(data_dir / "pii.key", environ={})
    sql = "select {{ nightjar.pseudonymise_identifier(\"'bob@example.com'\") }} as h"
    rows = _rows(_dbt_show(sql, data_dir, tmp_path / "w", key="from-the-env"))
    assert rows == [{"h": _python_hmac("from-the-env", "bob@example.com")}]


def test_dbt_without_any_key_fails_and_says_how_to_create_one(data_dir: Path, tmp_path: Path) -> None:
    sql = "select {{ nightjar.hash_email(\"'alice@example.com'\") }} as h"
    proc = _dbt_show(sql, data_dir, tmp_path / "w", key=None)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No PII key: set NIGHTJAR_PII_KEY, or create the key file" in out and str(data_dir / "pii.key") in out
    assert not (data_dir / "pii.key").exists()  # dbt never invents a key


def test_nightjar_pii_key_creates_the_file_and_never_prints_the_key(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_")}
    env["NIGHTJAR_DATA_DIR"] = str(data_dir)
    cmd = [str(REPO / ".venv" / "bin" / "nightjar"), "pii-key"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    key = read_key(data_dir / "pii.key", environ={})
    assert str(data_dir / "pii.key") in out and key not in out
    assert stat.S_IMODE((data_dir / "pii.key").stat().st_mode) == 0o600
    subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert read_key(data_dir / "pii.key", environ={}) == key  # kept, never replaced
