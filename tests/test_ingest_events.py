"""Events ingestion (nightjar.ingest.load_events): reconciliation, idempotence, faults."""
from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from nightjar.ingest import load_events
from nightjar.ingest.fastpath import NEEDS_PYTHON, DuckDBValidator
from nightjar.ingest.validate import BatchBuilder, split_lines
from nightjar.settings import get_settings
from querying import raw_query
from corpus import CASES, DIRECTORY, TRUNCATED_GZ, UNREADABLE, ev, j, write_corpus


def _settings(tmp_path: Path, engine: str = "duckdb"):
    return get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_ENGINE": engine})


def _q(settings, sql: str):
    """``sql`` against the raw layer: the warehouse, or with engine=spark the parquet lake."""
    return raw_query(settings, sql)


def _outcomes(settings) -> dict[str, dict[int, str]]:
    """{file: {line: "ok" | reason}} over raw.events and raw.events_rejected."""
    out: dict[str, dict[int, str]] = {}
    rows = _q(settings, "SELECT _file, _line, 'ok' FROM raw.events UNION ALL "
                        "SELECT _file, _line, reason FROM raw.events_rejected")
    for f, line, what in rows:
        assert line not in out.setdefault(f, {}), f"{f}:{line} produced twice"
        out[f][line] = what
    return out


@pytest.fixture()
def corpus_load(tmp_path):
    settings = _settings(tmp_path)
    expected = write_corpus(settings.events_dir)
    summary = load_events(settings)
    return settings, expected, summary


@pytest.fixture(params=["duckdb", "spark"])
def any_corpus_load(tmp_path, request):
    """The corpus loaded into the warehouse, and into the parquet lake (engine=spark)."""
    settings = _settings(tmp_path, request.param)
    expected = write_corpus(settings.events_dir)
    summary = load_events(settings)
    return settings, expected, summary


def test_corpus_every_line_loaded_or_rejected_with_reason(any_corpus_load):
    settings, expected, summary = any_corpus_load
    outcomes = _outcomes(settings)
    trunc = f"dt=2025-01-01/{TRUNCATED_GZ}"
    for rel, exp in expected.items():
        got = outcomes.get(rel, {})
        if rel == trunc:
            n = len(got)
            assert n >= 2
            assert [got[i] for i in range(1, n)] == ["ok"] * (n - 1)
            assert got[n] == "corrupt_gzip"
            continue
        if rel.endswith(DIRECTORY):
            assert got == {0: "not_a_file"}
            continue
        assert [got[i] for i in sorted(got)] == exp, rel
        assert sorted(got) == list(range(1, len(exp) + 1)), rel
    # ignored entries never show up
    assert set(outcomes) <= set(expected)
    # the load log reconciles per file, and with the tables
    log = {f: (r, l, q, lid) for f, r, l, q, lid in _q(
        settings, "SELECT _file, lines_read, rows_loaded, rows_rejected, load_id FROM raw.events_load_log")}
    assert set(log) == set(expected)  # the empty file has a row too
    for rel, (read, loaded, rejected, load_id) in log.items():
        assert read == loaded + rejected
        got = outcomes.get(rel, {})
        assert read == len(got)
        assert loaded == sum(1 for v in got.values() if v == "ok")
        assert load_id == summary["load_id"]
    assert log["dt=2025-01-01/empty.jsonl"][:3] == (0, 0, 0)
    n_events, n_rej = _q(settings, "SELECT (SELECT count(*) FROM raw.events), (SELECT count(*) FROM raw.events_rejected)")[0]
    assert summary["rows_loaded"] == n_events
    assert summary["rows_rejected"] == n_rej
    assert summary["lines_read"] == n_events + n_rej
    assert summary["files_loaded"] == len(expected) - 1  # the directory is not "loaded"
    assert summary["files_failed"] == 1


def test_corpus_values_and_schema(corpus_load):
    settings, _, _ = corpus_load
    cols = _q(settings, "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema='raw' AND table_name='events' ORDER BY ordinal_position")
    assert cols == [("event_id", "VARCHAR"), ("event_name", "VARCHAR"),
                    ("timestamp", "TIMESTAMP WITH TIME ZONE"), ("received_at", "TIMESTAMP WITH TIME ZONE"),
                    ("anonymous_id", "VARCHAR"), ("user_id", "VARCHAR"), ("session_id", "VARCHAR"),
                    ("properties", "JSON"), ("context", "JSON"), ("_file", "VARCHAR"), ("_line", "BIGINT"),
                    ("_loaded_at", "TIMESTAMP WITH TIME ZONE")]
    rej_cols = _q(settings, "SELECT column_name FROM information_schema.columns WHERE table_schema='raw' "
                            "AND table_name='events_rejected' ORDER BY ordinal_position")
    assert [c for (c,) in rej_cols] == ["raw_line", "_file", "_line", "reason", "_loaded_at"]

    def row(event_id):
        r = _q(settings, "SELECT epoch_us(timestamp), epoch_us(received_at), user_id, session_id, "
                         f"properties::VARCHAR, context::VARCHAR, event_name FROM raw.events WHERE event_id = '{event_id}'")
        assert len(r) >= 1, event_id
        return r[0]

    utc = lambda s: int(datetime.fromisoformat(s).astimezone(timezone.utc).timestamp() * 1_000_000)
    ts, ra, *_ = row("e-1")
    assert ts == utc("2025-01-01T08:00:00+00:00") and ra == utc("2025-01-01T08:00:05+00:00")
    ts, ra, *_ = row("e-2")  # received_at defaults to timestamp
    assert ts == ra == utc("2025-01-01T08:00:00.123456+00:00")
    assert row("e-3")[0] == utc("2025-01-01T08:00:00+00:00")  # +0130 offset
    assert row("e-22")[3] == "7"  # non-string session_id kept as its JSON text
    props, ctx = row("e-49")[4:6]
    assert json.loads(props) == {"a": None, "b": {"c": None, "d": [None]}}
    assert json.loads(ctx) == {"page": None, "geo": {"city": None}}
    p47 = row("e-47")
    assert p47[4] is None and p47[5] is None
    assert row("e-50")[6] == "Totally-New Event"  # unknown names kept, as sent
    assert json.loads(row("e-67")[4]) == {"q": "café ☕ 😀", "esc": "tab\there"}
    assert json.loads(row("e-68")[4]) == {"q": "é😀"}
    assert _q(settings, "SELECT count(*) FROM raw.events WHERE event_id = 'e-52'")[0][0] == 3  # dups kept
    raw_line, = _q(settings, "SELECT raw_line FROM raw.events_rejected WHERE reason = 'line_too_large'")[0]
    assert len(raw_line.encode()) < 33 * 1024 and raw_line.endswith("bytes]")
    bad_utf8, = _q(settings, "SELECT raw_line FROM raw.events_rejected WHERE reason = 'invalid_utf8'")[0]
    assert "\\xff\\xfe" in bad_utf8
    msg, = _q(settings, "SELECT raw_line FROM raw.events_rejected WHERE reason = 'corrupt_gzip' "
                        f"AND _file LIKE '%{TRUNCATED_GZ}'")[0]
    assert msg.startswith("[corrupt_gzip]")


def test_rerun_loads_nothing_and_new_files_only(any_corpus_load, tmp_path):
    settings, expected, first = any_corpus_load
    counts = lambda: _q(settings, "SELECT (SELECT count(*) FROM raw.events), (SELECT count(*) FROM raw.events_rejected), "
                                  "(SELECT count(*) FROM raw.events_load_log)")[0]
    before = counts()
    again = load_events(settings)
    assert again["files_loaded"] == 0 and again["lines_read"] == 0 and again["rows_loaded"] == 0
    assert again["files_already_loaded"] == first["files_loaded"]
    assert again["files_faulty_unchanged"] == [f"dt=2025-01-01/{DIRECTORY}"]
    assert counts() == before

    # losing the local dlt working dir must not cause a reload: state lives in the warehouse
    # (or the lake)
    shutil.rmtree(settings.dlt_pipelines_dir)
    assert load_events(settings)["files_loaded"] == 0
    assert counts() == before

    # a late file for an old day and a new day: only those load
    old = settings.events_dir / "dt=2025-01-01" / "late-001.jsonl.gz"
    old.write_bytes(gzip.compress(f"{j(ev('late-1'))}\n{j(ev('late-2'))}\n".encode()))
    new_day = settings.events_dir / "dt=2025-01-02"
    new_day.mkdir()
    (new_day / "batch-001.jsonl").write_text(f"{j(ev('new-1'))}\nnope\n")
    third = load_events(settings)
    assert sorted(f["file"] for f in third["files"]) == ["dt=2025-01-01/late-001.jsonl.gz", "dt=2025-01-02/batch-001.jsonl"]
    assert (third["lines_read"], third["rows_loaded"], third["rows_rejected"]) == (4, 3, 1)
    e, r, l = counts()
    assert (e, r, l) == (before[0] + 3, before[1] + 1, before[2] + 2)

    # the directory turns into a real file: it is retried and loaded
    d = settings.events_dir / "dt=2025-01-01" / DIRECTORY
    d.rmdir()
    d.write_text(j(ev("was-a-dir")) + "\n")
    fourth = load_events(settings)
    assert [f["file"] for f in fourth["files"]] == [f"dt=2025-01-01/{DIRECTORY}"]
    assert fourth["rows_loaded"] == 1


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_fresh_warehouse_with_stale_local_state_reloads(tmp_path, engine):
    settings = _settings(tmp_path, engine)
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "a.jsonl").write_text(j(ev(1)) + "\n")
    assert load_events(settings)["rows_loaded"] == 1
    if engine == "spark":
        shutil.rmtree(settings.lake_url)  # e.g. the lake is rebuilt from scratch
    else:
        settings.warehouse.unlink()  # e.g. the warehouse is rebuilt from scratch
    assert load_events(settings)["rows_loaded"] == 1
    assert _q(settings, "SELECT count(*) FROM raw.events")[0][0] == 1


def test_unreadable_file_is_reported_and_retried(tmp_path):
    settings = _settings(tmp_path)
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "good.jsonl").write_text(j(ev(1)) + "\n")
    bad = part / UNREADABLE
    bad.write_text(j(ev(2)) + "\n")
    bad.chmod(0)
    try:
        try:
            with open(bad, "rb"):
                readable = True
        except PermissionError:
            readable = False
        if readable:
            pytest.skip("running as a user that can read mode-000 files (root): permission fault not reproducible")
        s1 = load_events(settings)
        assert s1["rows_loaded"] == 1 and s1["files_failed"] == 1
        (reason, raw), = _q(settings, "SELECT reason, raw_line FROM raw.events_rejected")
        assert reason == "unreadable_file" and "Permission denied" in raw
        assert load_events(settings)["files_faulty_unchanged"] == [f"dt=2025-01-01/{UNREADABLE}"]
        bad.chmod(0o644)
        s3 = load_events(settings)
        assert s3["rows_loaded"] == 1 and s3["files_loaded"] == 1
    finally:
        bad.chmod(0o644)


def test_small_batches_give_the_same_result(tmp_path, corpus_load):
    settings, expected, summary = corpus_load
    other = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "other")})
    write_corpus(other.events_dir)
    small = load_events(other, batch_rows=3)
    assert (small["lines_read"], small["rows_loaded"], small["rows_rejected"]) == (
        summary["lines_read"], summary["rows_loaded"], summary["rows_rejected"])
    assert _outcomes(other) == _outcomes(settings)


def test_python_and_duckdb_paths_agree_on_corpus():
    """The DuckDB fast path and the strict Python validator implement the same rules."""
    import pyarrow as pa

    duck = DuckDBValidator(threads=1)
    try:
        for name, (content, _) in CASES.items():
            lines = split_lines(content)
            py = BatchBuilder(datetime.now(timezone.utc))
            py.add_lines(lines, name)
            py_events, py_rej = py.take_events(), py.take_rejected()
            py_out = {}
            if py_events is not None:
                for r in py_events.to_pylist():
                    py_out[r["_line"]] = ("ok", r["event_id"], r["timestamp"], r["received_at"], r["user_id"],
                                          r["session_id"], r["properties"] and json.loads(r["properties"]),
                                          r["context"] and json.loads(r["context"]))
            if py_rej is not None:
                for r in py_rej.to_pylist():
                    py_out[r["_line"]] = (r["reason"],)
            texts, nums = [], []
            for i, line in enumerate(lines, 1):
                try:
                    texts.append(line.decode("utf-8"))
                    nums.append(i)
                except UnicodeDecodeError:
                    pass
            res = duck.run(pa.table({"_file": pa.array([name] * len(texts), pa.string()),
                                     "_line": pa.array(nums, pa.int64()),
                                     "line": pa.array(texts, pa.large_string())})).to_pylist()
            for r in res:
                if r["reason"] == NEEDS_PYTHON:
                    continue  # handed to the Python path by design
                got = (r["reason"],) if r["reason"] else (
                    "ok", r["event_id"], r["timestamp"], r["received_at"], r["user_id"], r["session_id"],
                    r["properties"] and json.loads(r["properties"]), r["context"] and json.loads(r["context"]))
                assert got == py_out[r["_line"]], (name, r["_line"])
    finally:
        duck.close()


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_unreadable_file_simulated(tmp_path, monkeypatch, engine):
    """Same fault as above, simulated so that it also runs as root."""
    import builtins

    import nightjar.ingest.discover as events_mod

    settings = _settings(tmp_path, engine)
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "good.jsonl").write_text(j(ev(1)) + "\n")
    (part / UNREADABLE).write_text(j(ev(2)) + "\n")
    real_open = builtins.open

    def fake_open(file, *a, **kw):
        if str(file).endswith(UNREADABLE):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(events_mod, "open", fake_open, raising=False)
    s1 = load_events(settings)
    assert (s1["rows_loaded"], s1["rows_rejected"], s1["files_failed"]) == (1, 1, 1)
    (reason, raw, line), = _q(settings, "SELECT reason, raw_line, _line FROM raw.events_rejected")
    assert reason == "unreadable_file" and "Permission denied" in raw and line == 0
    assert load_events(settings)["files_faulty_unchanged"] == [f"dt=2025-01-01/{UNREADABLE}"]
    monkeypatch.undo()
    (part / UNREADABLE).chmod(0o600)  # changes ctime: retried
    s3 = load_events(settings)
    assert (s3["files_loaded"], s3["rows_loaded"]) == (1, 1)


def test_a_job_replayed_after_a_crash_is_not_counted_twice(tmp_path):
    """A kill between DuckDB's inserts of the events load job and dlt marking it complete
    makes the next run run that job again. Reproduced deterministically: extract + normalize
    a package (as an interrupted run leaves it), run its events job by hand (as the killed
    loader did: every row inserted, the job not marked complete), then run normally: every
    line is still loaded or rejected exactly once."""
    from nightjar.ingest.discover import EventsRunStats, events_source
    from nightjar.ingest.load_job import load_manifest
    from nightjar.ingest.pipeline import EVENTS_PIPELINE, make_pipeline

    settings = _settings(tmp_path)
    day = settings.events_dir / "dt=2025-01-01"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text("\n".join(j(ev(i)) for i in range(5)) + "\n")
    load_events(settings)  # creates the raw tables
    (day / "b.jsonl").write_text("\n".join([*(j(ev(f"b{i}")) for i in range(4)), "{broken"]) + "\n")

    pipeline = make_pipeline(EVENTS_PIPELINE, settings)
    pipeline.sync_destination()  # the loaded-files state, as `run` would restore it
    pipeline.extract(events_source(settings.events_dir, EventsRunStats()), loader_file_format="parquet")
    pipeline.normalize()
    jobs = list((settings.dlt_pipelines_dir / EVENTS_PIPELINE / "load" / "normalized").rglob("events.*.jsonl"))
    assert len(jobs) == 1, "the interrupted package should hold the events manifest job"
    con = duckdb.connect(str(settings.warehouse))
    tables = {t: f"raw.{t}" for t in ("events", "events_rejected", "events_load_log")}
    replayed = load_manifest(con, jobs[0], tables)
    con.close()
    assert [(r.file, r.rows_loaded, r.rows_rejected) for r in replayed] == [("dt=2025-01-01/b.jsonl", 4, 1)]
    assert _q(settings, "select count(*) from raw.events where _file like '%b.jsonl'") == [(4,)]

    load_events(settings)  # finishes the pending package, then looks for new files
    per_file = _q(settings, """
        select l._file, l.lines_read,
               (select count(*) from raw.events e where e._file = l._file),
               (select count(*) from raw.events_rejected r where r._file = l._file)
        from raw.events_load_log l order by 1""")
    assert per_file == [("dt=2025-01-01/a.jsonl", 5, 5, 0), ("dt=2025-01-01/b.jsonl", 5, 4, 1)]


def test_isal_inflate_keeps_exactly_what_zlib_keeps():
    """The landing files are inflated with ISA-L (fast); a broken gzip member is decoded
    again with zlib, so a damaged file keeps the same lines and partial line as before."""
    import random
    import zlib

    from isal import isal_zlib

    import nightjar.ingest.load_job as events

    rnd = random.Random(7)
    text = b"".join(b'{"event_id":"%d","p":"%s"}\n' % (i, bytes(rnd.choice(b"abcdefgh") for _ in range(rnd.randint(5, 300))))
                    for i in range(5000))
    good = gzip.compress(text[: len(text) // 2]) + gzip.compress(text[len(text) // 2 :])
    cases = [good, good + b"\0" * 64, good + b"xx", b"", b"plain text"]
    cases += [good[:cut] for cut in (10, 100, 5000, len(good) // 3, len(good) - 5, len(good) - 1)]
    for pos in (50, 3000, len(good) - 100):
        flipped = bytearray(good)
        flipped[pos] ^= 0xFF
        cases.append(bytes(flipped))
    assert events._inflate is isal_zlib
    results = []
    for data in cases:
        with_isal = events.gunzip_partial(data)
        events._inflate = zlib
        try:
            with_zlib = events.gunzip_partial(data)
        finally:
            events._inflate = isal_zlib
        assert with_isal == with_zlib
        results.append(with_isal)
    assert results[0] == (text, None, None)
    assert sum(1 for _, fault, _ in results if fault == "corrupt_gzip") == len(cases) - 3  # all but good/padded/empty
    # a stream cut mid-way keeps what comes before the cut
    kept = results[8][0]
    assert len(kept) > len(text) // 4 and text.startswith(kept)
