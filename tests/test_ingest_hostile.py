"""Hostile landing input: symlinks out of the landing folder, oversized or NUL-bearing ids
and names, timestamps in the future; and a freshness lag that never goes negative."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from nightjar.ingest import load_events
from nightjar.ingest.fastpath import DuckDBValidator
from nightjar.ingest.load_job import read_file
from nightjar.ingest.validate import BatchBuilder
from nightjar.settings import get_settings
from querying import raw_query
from corpus import ev, j


def _q(settings, sql: str):
    """``sql`` against the raw layer: the warehouse, or with engine=spark the parquet lake."""
    return raw_query(settings, sql)


# -- 1. symlinks ---------------------------------------------------------------------------

@pytest.fixture(params=["duckdb", "spark"])
def linked(tmp_path, request):
    """A landing folder with one real file, a symlinked file and a symlinked `dt=` folder,
    both pointing at JSON lines outside the landing folder (loaded into the warehouse, and
    into the parquet lake)."""
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_ENGINE": request.param})
    outside = tmp_path / "outside"
    (outside / "part").mkdir(parents=True)
    (outside / "target.jsonl").write_text(j(ev("leak-1")) + "\n" + j(ev("leak-2")) + "\n")
    (outside / "part" / "b.jsonl").write_text(j(ev("leak-3")) + "\n")
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "good.jsonl").write_text(j(ev(1)) + "\n")
    (part / "link.jsonl").symlink_to(outside / "target.jsonl")
    (settings.events_dir / "dt=2025-01-02").symlink_to(outside / "part", target_is_directory=True)
    return settings, part


def test_symlinked_files_and_partitions_are_rejected_not_read(linked):
    settings, part = linked
    s1 = load_events(settings)
    assert (s1["rows_loaded"], s1["rows_rejected"], s1["files_failed"]) == (1, 2, 2)
    assert _q(settings, "SELECT event_id FROM raw.events") == [("e-1",)]
    rejected = _q(settings, "SELECT _file, _line, reason, raw_line FROM raw.events_rejected ORDER BY _file")
    assert [r[:3] for r in rejected] == [("dt=2025-01-01/link.jsonl", 0, "symlink"), ("dt=2025-01-02", 0, "symlink")]
    for _, _, _, raw in rejected:
        assert raw.startswith("[symlink] ") and "leak-" not in raw  # the path, never the content
    log = _q(settings, "SELECT _file, lines_read, rows_loaded, rows_rejected FROM raw.events_load_log ORDER BY _file")
    assert log == [("dt=2025-01-01/good.jsonl", 1, 1, 0), ("dt=2025-01-01/link.jsonl", 1, 0, 1),
                   ("dt=2025-01-02", 1, 0, 1)]
    # unchanged links are only logged; a real file put in place of a link is loaded
    s2 = load_events(settings)
    assert sorted(s2["files_faulty_unchanged"]) == ["dt=2025-01-01/link.jsonl", "dt=2025-01-02"]
    assert s2["rows_rejected"] == 0
    (part / "link.jsonl").unlink()
    (part / "link.jsonl").write_text(j(ev(2)) + "\n")
    s3 = load_events(settings)
    assert (s3["rows_loaded"], s3["files_loaded"]) == (1, 1)
    assert not _q(settings, "SELECT * FROM raw.events WHERE event_id LIKE 'leak-%'")


def test_reading_a_symlink_is_refused(linked):
    settings, part = linked
    data, fault, message = read_file(part / "link.jsonl")
    assert (data, fault) == (b"", "symlink") and "link.jsonl" in message


def test_a_path_resolving_outside_the_landing_folder_is_refused(linked, tmp_path):
    """A partition swapped for a symlink after listing: the load job checks the resolved path."""
    settings, part = linked
    data, fault, _ = read_file(settings.events_dir / "dt=2025-01-02" / "b.jsonl", root=settings.events_dir)
    assert (data, fault) == (b"", "symlink")
    data, fault, _ = read_file(part / "good.jsonl", root=settings.events_dir)
    assert fault is None and data


# -- 2. / 3. line rules, both validators ------------------------------------------------------

NOW = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)
HOSTILE = {
    "id_at_limit": (ev(1, event_id="x" * 256, anonymous_id="a" * 256, user_id="u" * 256, session_id="s" * 256), None),
    "event_id_long": (ev(2, event_id="x" * 257), "id_too_long"),
    "anonymous_id_long": (ev(3, anonymous_id="a" * 257), "id_too_long"),
    "user_id_long": (ev(4, user_id="u" * 1000), "id_too_long"),
    "session_id_long": (ev(5, session_id="s" * 257), "id_too_long"),
    "name_at_limit": (ev(6, event_name="n" * 128), None),
    "name_long": (ev(7, event_name="n" * 129), "name_too_long"),
    "event_id_nul": (ev("8\u0000x"), "nul_character"),
    "event_name_nul": (ev(9, event_name="page\u0000viewed"), "nul_character"),
    "anonymous_id_nul": (ev(10, anonymous_id="a\u0000"), "nul_character"),
    "user_id_nul": (ev(11, user_id="\u0000"), "nul_character"),
    "session_id_nul": (ev(12, session_id="s\u0000"), "nul_character"),
    "nul_in_properties_ok": (ev(13, properties={"q": "a\u0000b"}), None),
    "timestamp_within_skew": (ev(14, timestamp="2025-01-02T11:59:00Z", received_at=...), None),
    "timestamp_future": (ev(15, timestamp="2025-01-02T12:01:00Z", received_at=...), "future_timestamp"),
    "received_at_future": (ev(16, timestamp="2025-01-01T10:00:00Z", received_at="2025-01-03T00:00:00Z"),
                           "future_timestamp"),
    "far_future_both": (ev(17, timestamp="2999-01-01T00:00:00Z", received_at="2999-01-01T00:00:00Z"),
                        "future_timestamp"),
}


def _both_paths(lines: list[str], loaded_at: datetime, skew: timedelta | None = None) -> tuple[list, list]:
    kw = {} if skew is None else {"future_skew": skew}
    py = BatchBuilder(loaded_at, **kw)
    py.add_lines([line.encode() for line in lines], "f")
    reasons_py = [None] * len(lines)
    rej = py.take_rejected()
    for r in (rej.to_pylist() if rej is not None else []):
        reasons_py[r["_line"] - 1] = r["reason"]
    duck = DuckDBValidator(threads=1, latest=loaded_at + (skew if skew is not None else timedelta(days=1)))
    try:
        res = duck.run(pa.table({"_file": ["f"] * len(lines), "_line": list(range(1, len(lines) + 1)),
                                 "line": lines}))
    finally:
        duck.close()
    return reasons_py, [r["reason"] for r in sorted(res.to_pylist(), key=lambda r: r["_line"])]


def test_ids_names_nul_and_future_rules_in_both_validators():
    lines = [j(obj) for obj, _ in HOSTILE.values()]
    expected = [exp for _, exp in HOSTILE.values()]
    py, duck = _both_paths(lines, NOW)
    assert dict(zip(HOSTILE, py)) == dict(zip(HOSTILE, expected))
    assert dict(zip(HOSTILE, duck)) == dict(zip(HOSTILE, expected))


def test_future_skew_is_a_parameter_of_both_validators():
    lines = [j(ev(1, timestamp="2025-01-01T13:00:00Z", received_at=...)),
             j(ev(2, timestamp="2025-01-01T12:30:00Z", received_at=...))]
    assert _both_paths(lines, NOW, timedelta(hours=0.75)) == (["future_timestamp", None], ["future_timestamp", None])


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_future_skew_setting_reaches_the_load(tmp_path, engine):
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_FUTURE_SKEW_HOURS": "1",
                             "NIGHTJAR_ENGINE": engine})
    assert settings.future_skew_hours == 1.0
    now = datetime.now(timezone.utc)
    part = settings.events_dir / "dt=2025-01-01"
    part.mkdir(parents=True)
    (part / "a.jsonl").write_text(
        j(ev("soon", timestamp=(now + timedelta(minutes=10)).isoformat(), received_at=...)) + "\n"
        + j(ev("later", timestamp=(now + timedelta(hours=3)).isoformat(), received_at=...)) + "\n")
    summary = load_events(settings)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1, 1)
    assert _q(settings, "SELECT event_id FROM raw.events") == [("e-soon",)]
    assert _q(settings, "SELECT _line, reason FROM raw.events_rejected") == [(2, "future_timestamp")]


def test_earliest_event_date_is_a_parameter_of_both_validators():
    lines = [j(ev(1, timestamp="1999-12-31T23:59:59Z")), j(ev(2, timestamp="1997-03-01T10:00:00Z")),
             j(ev(3, timestamp="1996-12-31T23:00:00-02:00"))]  # 1997-01-01 01:00 UTC
    assert _both_paths(lines, NOW) == (["timestamp_too_early"] * 3, ["timestamp_too_early"] * 3)
    earliest = datetime(1997, 1, 1, tzinfo=timezone.utc)
    py = BatchBuilder(NOW, earliest=earliest)
    py.add_lines([line.encode() for line in lines], "f")
    assert py.n_events == 3
    duck = DuckDBValidator(threads=1, latest=NOW + timedelta(days=1), earliest=earliest)
    try:
        res = duck.run(pa.table({"_file": ["f"] * 3, "_line": [1, 2, 3], "line": lines}))
    finally:
        duck.close()
    assert [r["reason"] for r in res.to_pylist()] == [None, None, None]


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_earliest_event_date_setting_reaches_the_load(tmp_path, engine):
    """Years of history: NIGHTJAR_EARLIEST_EVENT_DATE lowers the floor (default 2000-01-01)."""
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data"), "NIGHTJAR_EARLIEST_EVENT_DATE": "1997-01-01",
                             "NIGHTJAR_ENGINE": engine})
    part = settings.events_dir / "dt=1997-01-01"
    part.mkdir(parents=True)
    (part / "a.jsonl").write_text(j(ev("old", timestamp="1997-01-01T00:00:00Z")) + "\n"
                                  + j(ev("older", timestamp="1996-12-31T23:59:59Z")) + "\n")
    summary = load_events(settings)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1, 1)
    assert _q(settings, "SELECT event_id FROM raw.events") == [("e-old",)]
    assert _q(settings, "SELECT _line, reason FROM raw.events_rejected") == [(2, "timestamp_too_early")]


# -- freshness lag ---------------------------------------------------------------------------

def test_freshness_lag_is_never_negative():
    from nightjar.alerts.evaluate import observe_freshness
    from nightjar.alerts.rules import FreshnessPolicy

    policy = FreshnessPolicy("fresh", "fct_daily_metrics", "metric_date", 2, 30.0, "warning", (), ())
    today = date(2025, 1, 10)
    obs = observe_freshness(policy, date(2025, 1, 15), today)  # a mart date in the future
    assert obs.value == 0.0 and obs.outcome == "ok"
    assert observe_freshness(policy, date(2025, 1, 5), today).value == 5.0
