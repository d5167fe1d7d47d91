"""Alert state in the warehouse (schema `alerts`): state, episodes and event history.

State lives here, not in a Dagster sensor cursor, so that it survives instance
resets, is queryable with SQL, and one warehouse transaction moves state, events and
outbox rows together.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from nightjar.alerts.evaluate import AlertState, EvalEvent

DDL = [
    "create schema if not exists alerts",
    """create table if not exists alerts.alert_state (
        fingerprint varchar primary key,
        rule_name varchar not null,
        labels json,
        status varchar not null,            -- normal | pending | firing
        breach_streak integer not null,
        clear_streak integer not null,
        episode integer not null,           -- number of the current/last episode
        episode_started date,
        episode_fired date,
        episode_notified boolean not null,
        last_eval_date date,                -- every metric date <= this one has been evaluated
        last_fire_notified date,
        last_notified date,
        last_value double,
        peak_score double,
        updated_at timestamptz not null)""",
    """create table if not exists alerts.alert_episodes (
        fingerprint varchar not null,
        episode integer not null,
        rule_name varchar not null,
        severity varchar not null,
        labels json,
        started_date date,                  -- first breaching evaluation (pending)
        fired_date date not null,
        resolved_date date,
        status varchar not null,            -- firing | resolved
        notified boolean not null,
        peak_score double,
        updated_at timestamptz not null,
        primary key (fingerprint, episode))""",
    """create table if not exists alerts.alert_events (
        fingerprint varchar not null,
        metric_date date not null,
        rule_name varchar not null,
        rule_type varchar not null,
        metric varchar,
        labels json,
        outcome varchar not null,           -- breach | ok | no_data | insufficient
        value double,
        expected double,
        lower_bound double,
        upper_bound double,
        change_pct double,
        score double,
        status_before varchar not null,
        status_after varchar not null,
        transition varchar,                 -- pending | firing | resolved | cancelled
        episode integer not null,
        notification varchar,               -- firing | repeat | resolved | suppressed:<why>
        severity varchar not null,
        detail varchar,
        run_id varchar,
        evaluated_at timestamptz not null,
        primary key (fingerprint, metric_date))""",
    """create table if not exists alerts.outbox (
        idempotency_key varchar not null,
        channel varchar not null,
        fingerprint varchar,
        rule_name varchar,
        episode integer,
        kind varchar not null,              -- firing | repeat | resolved | freshness | run_failure
        severity varchar,
        metric_date date,
        payload json not null,
        status varchar not null,            -- pending | sent | dead
        attempts integer not null,
        next_attempt_at timestamptz not null,
        last_status_code integer,
        last_error varchar,                 -- redacted
        fallback_of varchar,                -- set on rows re-routed to the fallback channel
        created_at timestamptz not null,
        sent_at timestamptz,
        primary key (idempotency_key, channel))""",
]

_STATE_COLS = ["fingerprint", "rule_name", "labels", "status", "breach_streak", "clear_streak", "episode",
               "episode_started", "episode_fired", "episode_notified", "last_eval_date", "last_fire_notified",
               "last_notified", "last_value", "peak_score", "updated_at"]


def ensure_schema(con) -> None:
    for stmt in DDL:
        con.execute(stmt)


def load_state(con, fingerprint: str, rule_name: str) -> AlertState:
    row = con.execute(
        "select status, breach_streak, clear_streak, episode, episode_started, episode_fired, episode_notified, "
        "last_eval_date, last_fire_notified, last_notified, last_value, peak_score "
        "from alerts.alert_state where fingerprint = ?", [fingerprint]).fetchone()
    if row is None:
        return AlertState(fingerprint, rule_name)
    return AlertState(fingerprint, rule_name, *row)


def save_state(con, st: AlertState, labels: dict, now: datetime) -> None:
    con.execute("delete from alerts.alert_state where fingerprint = ?", [st.fingerprint])
    con.execute(
        f"insert into alerts.alert_state ({', '.join(_STATE_COLS)}) values ({', '.join('?' * len(_STATE_COLS))})",
        [st.fingerprint, st.rule_name, json.dumps(labels), st.status, st.breach_streak, st.clear_streak, st.episode,
         st.episode_started, st.episode_fired, st.episode_notified, st.last_eval_date, st.last_fire_notified,
         st.last_notified, st.last_value, st.peak_score, now])


def record_events(con, events: Iterable[EvalEvent], run_id: str | None, now: datetime, upsert: bool = False) -> int:
    rows = []
    for ev in events:
        o, r = ev.obs, ev.rule
        rows.append([ev.fingerprint, o.metric_date, r.name, r.type, r.metric, json.dumps(r.labels), o.outcome, o.value,
                     o.expected, o.lower, o.upper, o.change_pct, o.score, ev.status_before, ev.status_after,
                     ev.transition, ev.episode, ev.notification, r.severity, o.detail or None, run_id, now])
    if not rows:
        return 0
    verb = "insert or replace" if upsert else "insert"
    con.executemany(f"{verb} into alerts.alert_events values ({', '.join('?' * 22)})", rows)
    return len(rows)


def record_episodes(con, events: Iterable[EvalEvent], st: AlertState, now: datetime) -> None:
    """Open/close rows of alerts.alert_episodes from the transitions of one rule's events."""
    for ev in events:
        r = ev.rule
        if ev.transition == "firing":
            con.execute("delete from alerts.alert_episodes where fingerprint = ? and episode = ?",
                        [ev.fingerprint, ev.episode])
            con.execute("insert into alerts.alert_episodes values (?, ?, ?, ?, ?, ?, ?, null, 'firing', ?, ?, ?)",
                        [ev.fingerprint, ev.episode, r.name, r.severity, json.dumps(r.labels),
                         ev.episode_started or ev.obs.metric_date,
                         ev.obs.metric_date, False, None, now])
        if ev.notification in ("firing",):
            con.execute("update alerts.alert_episodes set notified = true, updated_at = ? "
                        "where fingerprint = ? and episode = ?", [now, ev.fingerprint, ev.episode])
        if ev.transition == "resolved":
            con.execute("update alerts.alert_episodes set status = 'resolved', resolved_date = ?, updated_at = ? "
                        "where fingerprint = ? and episode = ?", [ev.obs.metric_date, now, ev.fingerprint, ev.episode])
    if st.status == "firing" and st.peak_score is not None:
        con.execute("update alerts.alert_episodes set peak_score = ? where fingerprint = ? and episode = ?",
                    [st.peak_score, st.fingerprint, st.episode])
