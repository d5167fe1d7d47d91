"""Bounded reading of hostile landing files: gzip bombs and huge lines never get into
memory; each is one reject row, the rest of the night loads and later nights go on."""
from __future__ import annotations

import gzip

import pytest

from nightjar.ingest import load_events
from nightjar.settings import get_settings
from querying import raw_query
from corpus import ev, j

# every test runs against the warehouse (default) and the parquet lake (engine=spark)
pytestmark = pytest.mark.parametrize("engine", ["duckdb", "spark"])


def _q(settings, sql: str):
    return raw_query(settings, sql)


def test_gzip_bombs_and_huge_lines_are_single_reject_rows(tmp_path, engine):
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_ENGINE": engine,
                             "NIGHTJAR_MAX_FILE_BYTES": str(8 << 20), "NIGHTJAR_MAX_FILE_LINES": "100000"})
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "a_good.jsonl").write_text(j(ev(1)) + "\n" + j(ev(2)) + "\n")
    (part / "b_zeros.jsonl.gz").write_bytes(gzip.compress(b"\0" * (64 << 20), 1))  # no newline
    (part / "c_newlines.jsonl.gz").write_bytes(gzip.compress(b"\n" * (4 << 20), 1))
    (part / "d_longline.jsonl.gz").write_bytes(
        gzip.compress(j(ev(3)).encode() + b"\n" + b"x" * (3 << 20) + b"\n" + j(ev(4)).encode() + b"\n", 1))
    s1 = load_events(settings)
    assert _q(settings, "select event_id from raw.events order by 1") == [("e-1",), ("e-2",), ("e-3",), ("e-4",)]
    rej = _q(settings, "select _file, _line, reason from raw.events_rejected order by 1")
    assert rej == [("dt=2025-01-01/b_zeros.jsonl.gz", 0, "file_too_large"),
                   ("dt=2025-01-01/c_newlines.jsonl.gz", 0, "file_too_large"),
                   ("dt=2025-01-01/d_longline.jsonl.gz", 2, "line_too_large")]
    raw = dict(_q(settings, "select _file, raw_line from raw.events_rejected"))
    long_raw = raw["dt=2025-01-01/d_longline.jsonl.gz"]
    assert len(long_raw) < 33 * 1024 and long_raw.endswith(f"[truncated, {3 << 20} bytes]")
    assert "bytes" in raw["dt=2025-01-01/b_zeros.jsonl.gz"] and "lines" in raw["dt=2025-01-01/c_newlines.jsonl.gz"]
    log = _q(settings, "select _file, lines_read, rows_loaded, rows_rejected from raw.events_load_log order by 1")
    assert log == [("dt=2025-01-01/a_good.jsonl", 2, 2, 0), ("dt=2025-01-01/b_zeros.jsonl.gz", 1, 0, 1),
                   ("dt=2025-01-01/c_newlines.jsonl.gz", 1, 0, 1), ("dt=2025-01-01/d_longline.jsonl.gz", 3, 2, 1)]
    assert s1["lines_read"] == s1["rows_loaded"] + s1["rows_rejected"] == 7
    # the next night loads a new file and does not re-read the bombs
    (part / "e_next.jsonl").write_text(j(ev(5)) + "\n")
    s2 = load_events(settings)
    assert (s2["files_loaded"], s2["rows_loaded"], s2["files_already_loaded"]) == (1, 1, 4)


# -- a failing load job / a package that keeps failing ------------------------------------

def _pending_package(settings):
    """An interrupted run's package, made by dlt itself (extract + normalize, no load)."""
    from nightjar.ingest.discover import EventsRunStats, events_source
    from nightjar.ingest.pipeline import EVENTS_PIPELINE, make_pipeline

    p = make_pipeline(EVENTS_PIPELINE, settings)
    p.sync_destination()  # state from the warehouse, as pipeline.run does
    p.extract(events_source(settings.events_dir, EventsRunStats()), loader_file_format="parquet")
    p.normalize()
    assert p.has_pending_data
    manifest, = (settings.dlt_pipelines_dir / EVENTS_PIPELINE / "load" / "normalized").glob("*/new_jobs/events.*.jsonl")
    return manifest


def _night(settings, tmp_path):
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "a.jsonl").write_text(j(ev(1)) + "\n")
    (part / "b.jsonl").write_text(j(ev(2)) + "\n" + j(ev(3)) + "\n")
    load_events(settings)  # a first night, so the tables and the state exist
    (part / "c.jsonl").write_text(j(ev(4)) + "\n")
    (part / "d.jsonl").write_text(j(ev(5)) + "\n")
    return part


def test_a_file_whose_load_fails_is_quarantined_and_the_package_completes(tmp_path, engine):
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_ENGINE": engine})
    part = _night(settings, tmp_path)
    manifest = _pending_package(settings)
    lines = manifest.read_text().splitlines()
    assert "c.jsonl" in lines[1] and "d.jsonl" in lines[2]
    lines[1] = lines[1].replace('"path": ', '"path": 12345, "was": ')  # this entry cannot be read
    manifest.write_text("\n".join(lines) + "\n")
    s = load_events(settings)  # finishes the package first
    assert _q(settings, "select event_id from raw.events order by 1") == [("e-1",), ("e-2",), ("e-3",), ("e-5",)]
    rej = _q(settings, "select _file, _line, reason, raw_line from raw.events_rejected")
    assert [r[:3] for r in rej] == [("dt=2025-01-01/c.jsonl", 0, "load_failed")] and "TypeError" in rej[0][3]
    log = _q(settings, "select _file, lines_read, rows_loaded, rows_rejected from raw.events_load_log order by 1")
    assert log[2:] == [("dt=2025-01-01/c.jsonl", 1, 0, 1), ("dt=2025-01-01/d.jsonl", 1, 1, 0)]
    assert s["files_already_loaded"] == 4
    (part / "e.jsonl").write_text(j(ev(6)) + "\n")
    assert load_events(settings)["rows_loaded"] == 1


def test_a_package_that_keeps_failing_is_discarded_and_its_files_load_afresh(tmp_path, engine):
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_ENGINE": engine})
    part = _night(settings, tmp_path)
    manifest = _pending_package(settings)
    manifest.write_text("this is not a manifest\n" + manifest.read_text())  # every attempt fails
    s = load_events(settings)
    assert s["rows_loaded"] == 2 and s["files_loaded"] == 2  # c and d, taken afresh
    assert _q(settings, "select event_id, count(*) from raw.events group by 1 order by 1") == [
        ("e-1", 1), ("e-2", 1), ("e-3", 1), ("e-4", 1), ("e-5", 1)]
    assert _q(settings, "select count(*) from raw.events_rejected")[0][0] == 0
    assert _q(settings, "select count(*), count(distinct _file) from raw.events_load_log")[0] == (4, 4)
    (part / "e.jsonl").write_text(j(ev(6)) + "\n")
    assert load_events(settings)["rows_loaded"] == 1
