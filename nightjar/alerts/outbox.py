"""The outbox (`alerts.outbox`): durable, idempotent, retried notification delivery.

* One row per (idempotency key, channel). Enqueueing the same key twice is a no-op, so
  re-running an evaluation never duplicates a notification.
* Delivery is at-least-once: a row is marked `sent` only after the receiver accepted it,
  and the key travels with every attempt (``Idempotency-Key`` header / email header).
* Failures are retried with exponential backoff (``backoff * 2**(attempts-1)``, capped),
  or after the receiver's ``Retry-After`` (429/503) when it asks for longer.
* After ``max_attempts`` failures the row goes `dead` and a copy is queued on the
  fallback channel (log by default). Nothing is dropped while a channel is down: pending
  rows stay in the warehouse and the next delivery run picks them up.
* Error texts are redacted (no webhook URLs, passwords or HMAC keys in the warehouse).
* Every accepted (key, channel) is also written to the delivered ledger outside the
  warehouse (`ledger.py`); a row whose key the ledger already has is marked sent without
  sending, so a rebuilt warehouse does not notify twice.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from nightjar.alerts.channels.base import DeliveryResult, Sender
from nightjar.alerts.config import AlertsConfig
from nightjar.alerts.evaluate import Notification
from nightjar.alerts.ledger import DeliveredLedger
from nightjar.settings import get_settings

logger = logging.getLogger("nightjar.alerts.outbox")


@dataclass
class DeliveryReport:
    sent: int = 0
    failed_attempts: int = 0
    dead: int = 0
    pending: int = 0
    already_delivered: int = 0
    next_attempt_at: datetime | None = None
    by_channel: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed_attempts": self.failed_attempts, "dead_lettered": self.dead,
                "pending": self.pending, "already_delivered": self.already_delivered,
                "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else "",
                "sent_by_channel": json.dumps(self.by_channel, sort_keys=True)}


def enqueue(con, note: Notification, config: AlertsConfig, now: datetime, kind: str | None = None) -> int:
    """Queue `note` on each of its channels (unconfigured channels go to the fallback)."""
    configured = config.configured_channels()
    targets: dict[str, str | None] = {}
    for ch in note.channels:
        if ch in configured:
            targets.setdefault(ch, None)
        else:
            logger.warning("channel %s is not configured; notification %s goes to the fallback channel %s",
                           ch, note.key, config.fallback_channel)
            targets.setdefault(config.fallback_channel, ch)
    n = 0
    for ch, fallback_of in targets.items():
        before = con.execute("select count(*) from alerts.outbox where idempotency_key = ? and channel = ?",
                             [note.key, ch]).fetchone()[0]
        if before:
            continue
        con.execute(
            "insert into alerts.outbox values (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, null, null, ?, ?, null)",
            [note.key, ch, note.fingerprint, note.payload.get("rule"), note.episode, kind or note.kind, note.severity,
             note.metric_date, json.dumps(note.payload, default=str), now, fallback_of, now])
        n += 1
    return n


def _backoff(config: AlertsConfig, attempts: int, result: DeliveryResult) -> float:
    delay = min(config.backoff_seconds * (2 ** max(attempts - 1, 0)), config.max_backoff_seconds)
    if result.retry_after is not None:
        delay = max(delay if result.status_code not in (429, 503) else 0.0, result.retry_after)
    return delay


def deliver(
    con,
    config: AlertsConfig,
    senders: Mapping[str, Sender],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    sleep: Callable[[float], None] = time.sleep,
    max_wait_seconds: float = 20.0,
    max_rows: int = 500,
    ledger: DeliveredLedger | None = None,
) -> DeliveryReport:
    """Deliver due outbox rows; wait (up to `max_wait_seconds` in total) for retries that fall
    due soon, then leave the rest pending for the next delivery run. `ledger` defaults to the
    one of the current settings (`Settings.alerts_ledger`)."""
    ledger = ledger or DeliveredLedger(get_settings().alerts_ledger)
    report = DeliveryReport()
    waited = 0.0
    immediate_passes = 0
    while True:
        t = now()
        rows = con.execute(
            "select idempotency_key, channel, payload, attempts from alerts.outbox "
            "where status = 'pending' and next_attempt_at <= ? order by created_at, idempotency_key, channel limit ?",
            [t, max_rows]).fetchall()
        for key, channel, payload_json, attempts in rows:
            payload = json.loads(payload_json)
            delivered_at = ledger.delivered_at(key, channel)
            if delivered_at is not None:
                con.execute("update alerts.outbox set status = 'sent', sent_at = ?, last_error = ? "
                            "where idempotency_key = ? and channel = ?",
                            [now(), f"not re-sent: delivered at {delivered_at} (ledger)", key, channel])
                report.already_delivered += 1
                logger.info("notification %s on %s was delivered at %s already; not sent again",
                            key, channel, delivered_at)
                continue
            sender = senders.get(channel)
            if sender is None:
                result = DeliveryResult(False, error=f"channel {channel} is not configured")
            else:
                try:
                    result = sender.send(payload, key)
                except Exception as exc:  # a bug in a channel must not stop the others
                    result = DeliveryResult(False, error=config.redact(f"{type(exc).__name__}: {exc}"))
            t = now()
            if result.ok:
                ledger.record(key, channel, t)
                con.execute("update alerts.outbox set status = 'sent', attempts = attempts + 1, sent_at = ?, "
                            "last_status_code = ?, last_error = null where idempotency_key = ? and channel = ?",
                            [t, result.status_code, key, channel])
                report.sent += 1
                report.by_channel[channel] = report.by_channel.get(channel, 0) + 1
                continue
            attempts += 1
            report.failed_attempts += 1
            error = config.redact(result.error)
            if attempts >= config.max_attempts or sender is None:
                con.execute("update alerts.outbox set status = 'dead', attempts = ?, last_status_code = ?, "
                            "last_error = ? where idempotency_key = ? and channel = ?",
                            [attempts, result.status_code, error, key, channel])
                report.dead += 1
                logger.error("notification %s dead-lettered on %s after %d attempts: %s", key, channel, attempts, error)
                fb = config.fallback_channel
                if channel != fb:
                    con.execute(
                        "insert into alerts.outbox select idempotency_key, ?, fingerprint, rule_name, episode, kind, "
                        "severity, metric_date, payload, 'pending', 0, ?, null, null, ?, ?, null "
                        "from alerts.outbox where idempotency_key = ? and channel = ? "
                        "and not exists (select 1 from alerts.outbox o where o.idempotency_key = ? and o.channel = ?)",
                        [fb, t, channel, t, key, channel, key, fb])
                continue
            delay = _backoff(config, attempts, result)
            con.execute("update alerts.outbox set attempts = ?, next_attempt_at = ?, last_status_code = ?, "
                        "last_error = ? where idempotency_key = ? and channel = ?",
                        [attempts, t + timedelta(seconds=delay), result.status_code, error, key, channel])
            logger.warning("notification %s on %s failed (attempt %d, retry in %.0fs): %s",
                           key, channel, attempts, delay, error)
        nxt = con.execute("select min(next_attempt_at) from alerts.outbox where status = 'pending'").fetchone()[0]
        if nxt is None:
            break
        wait = max((nxt - now()).total_seconds(), 0.0)
        if wait == 0 and immediate_passes < 3:  # e.g. a dead letter just queued on the fallback
            immediate_passes += 1
            continue
        # another pass only within the wait budget; each pass counts at least 1 s so that a
        # receiver answering "Retry-After: 0" cannot make this a busy loop
        if waited + max(wait, 1.0) > max_wait_seconds:
            break
        if wait:
            sleep(wait)
        waited += max(wait, 1.0)
    row = con.execute("select count(*), min(next_attempt_at) from alerts.outbox where status = 'pending'").fetchone()
    report.pending, report.next_attempt_at = row[0], row[1]
    return report
