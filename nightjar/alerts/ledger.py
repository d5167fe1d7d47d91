"""Delivered notifications, recorded outside the warehouse (`Settings.alerts_ledger`).

The outbox lives in the warehouse; if that file is deleted and rebuilt, re-evaluation
queues the same idempotency keys again. This ledger (a small SQLite file under
``<data dir>/artifacts/alerts/``) keeps every (idempotency key, channel) that a receiver
accepted, so delivery skips a key that already went out. It is consulted before each
send and written after each successful one; a crash in between means one re-send (the
outbox's at-least-once guarantee), never a lost notification.
"""
from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

logger = logging.getLogger("nightjar.alerts.ledger")

_DDL = """create table if not exists delivered (
    idempotency_key text not null,
    channel text not null,
    sent_at text not null,
    primary key (idempotency_key, channel))"""


class DeliveredLedger:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)  # waits for a concurrent writer in another process
        db.execute(_DDL)
        return db

    def delivered_at(self, key: str, channel: str) -> str | None:
        """When (key, channel) was delivered, or None. An unreadable ledger answers None: a
        possible duplicate is better than a lost notification."""
        try:
            with closing(self._connect()) as db:
                row = db.execute("select sent_at from delivered where idempotency_key = ? and channel = ?",
                                 [key, channel]).fetchone()
        except (OSError, sqlite3.Error) as exc:
            logger.error("delivered-notifications ledger %s unreadable (%s); sending %s on %s anyway",
                         self.path, exc, key, channel)
            return None
        return row[0] if row else None

    def record(self, key: str, channel: str, sent_at: datetime) -> None:
        try:
            with closing(self._connect()) as db, db:
                db.execute("insert or ignore into delivered values (?, ?, ?)", [key, channel, sent_at.isoformat()])
        except (OSError, sqlite3.Error) as exc:
            logger.error("could not record %s on %s in the delivered-notifications ledger %s: %s",
                         key, channel, self.path, exc)
