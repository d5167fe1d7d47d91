"""Guarantee: an unreachable shop database fails the run clearly and loads nothing half-way; a
landing file that disappears mid-run is reported, not lost; the next run catches up."""
from __future__ import annotations

import socket

import pytest

from .helpers import copy_shop, diff_hashes, ingest, query, settings_for, table_hashes


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is


@pytest.mark.parametrize("url", [
    pytest.param("postgresql+psycopg2://postgres@127.0.0.1:{port}/test?connect_timeout=2", id="postgres-closed-port"),
    pytest.param("sqlite:////nonexistent-dir/shop.sqlite", id="sqlite-missing-file"),
])
def test_shop_db_unreachable_fails_clearly_then_catches_up(night, tmp_path, url):
    from nightjar.ingest import load_events, load_shop
    from nightjar.settings import get_settings

    work = copy_shop(night.template, tmp_path / "data")
    good = settings_for(work)
    bad = get_settings({"NIGHTJAR_DATA_DIR": str(work), "NIGHTJAR_SHOP_DB_URL": url.format(port=_closed_port())})
    load_events(good)
    before = table_hashes(work / "warehouse.duckdb", schemas=("raw",))
    with pytest.raises(Exception) as info:
        load_shop(bad)
    text = f"{type(info.value).__name__}: {info.value} {info.value.__cause__ or ''}"
    assert any(s in text.lower() for s in ("connection refused", "unable to open database", "could not connect",
                                             "operationalerror", "shop database /nonexistent-dir/shop.sqlite "
                                             "(nightjar_shop_db_url) does not exist")), text
    # nothing half-way: the raw layer is exactly as before the failed run
    assert diff_hashes(before, table_hashes(work / "warehouse.duckdb", schemas=("raw",))) == {}
    # the source is back: the next run catches up to the uninterrupted result
    load_shop(good)
    assert diff_hashes(night.raw_hashes, table_hashes(work / "warehouse.duckdb", schemas=("raw",))) == {}


def test_landing_file_deleted_between_listing_and_reading(night, tmp_path, monkeypatch):
    import nightjar.ingest.discover as events_mod

    work = copy_shop(night.template, tmp_path / "data")
    events_dir = work / "landing" / "events"
    victim_rel = sorted(p.relative_to(events_dir).as_posix() for p in events_dir.glob("dt=*/*.jsonl*"))[5]
    victim = events_dir / victim_rel
    saved = victim.read_bytes()
    real_discover = events_mod.discover_files

    def discover_then_delete(*a, **kw):
        for rel, path in real_discover(*a, **kw):
            if rel == victim_rel:
                path.unlink()  # the file vanishes after it was listed, before it is read
            yield rel, path

    monkeypatch.setattr(events_mod, "discover_files", discover_then_delete)
    events, _ = ingest(work)
    monkeypatch.undo()
    wh = work / "warehouse.duckdb"
    # reported (a reject row with the error and a failed file in the summary), not silently lost
    assert events["files_failed"] == 1
    (reason, raw_line), = query(wh, "select reason, raw_line from raw.events_rejected where _file = ?", [victim_rel])
    assert reason == "unreadable_file" and "FileNotFoundError" in raw_line
    assert query(wh, "select count(*) from raw.events where _file = ?", [victim_rel])[0][0] == 0
    # the file reappears (e.g. the producer re-delivers it): the next run loads it
    victim.write_bytes(saved)
    again, _ = ingest(work)
    assert again["files_loaded"] == 1 and [f["file"] for f in again["files"]] == [victim_rel]
    got = table_hashes(wh, schemas=("raw",))
    want = dict(night.raw_hashes)
    # only difference from an uninterrupted night: the quarantined "file missing" record and
    # the extra load-log row of the failed attempt (an audit trail, by design)
    diff = diff_hashes(want, got)
    assert set(diff) <= {"raw.events_rejected", "raw.events_load_log"}
    assert got["raw.events"] == want["raw.events"]
    assert got["raw.events_rejected"][0] == want["raw.events_rejected"][0] + 1
