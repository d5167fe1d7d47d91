"""One alerts run: evaluate every un-evaluated metric date, store state, fill and drain the outbox.

Called by the Dagster `alerts/alert_events` asset and by the CLI. Evaluation of all
rules is one warehouse transaction (state, episodes, events and outbox rows commit
together), delivery happens after the commit, so a crash anywhere leaves either
nothing or pending outbox rows that the next run delivers.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from nightjar.alerts import evaluate as ev
from nightjar.alerts import outbox, state
from nightjar.alerts.channels import Sender, build_senders
from nightjar.alerts.config import KNOWN_CHANNELS, AlertsConfig
from nightjar.alerts.ledger import DeliveredLedger
from nightjar.alerts.rules import RuleFileError, RuleSet, check_against_warehouse, measures_missing

logger = logging.getLogger("nightjar.alerts")


@dataclass
class RunSummary:
    evaluations: int = 0
    dates_by_rule: dict[str, list[str]] = field(default_factory=dict)
    transitions: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, date, transition)
    notifications: list[str] = field(default_factory=list)  # idempotency keys enqueued
    firing: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    delivery: outbox.DeliveryReport | None = None

    def as_metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = {
            "evaluations": self.evaluations,
            "transitions": len(self.transitions),
            "notifications_enqueued": len(self.notifications),
            "firing_rules": ", ".join(self.firing) or "none",
        }
        if self.dates_by_rule:
            ds = sorted({d for v in self.dates_by_rule.values() for d in v})
            md["metric_dates_evaluated"] = f"{ds[0]} .. {ds[-1]} ({len(ds)} dates)" if ds else "none"
        if self.delivery is not None:
            md.update({f"outbox_{k}": v for k, v in self.delivery.as_metadata().items()})
        return md


def _today() -> date:
    return datetime.now(timezone.utc).date()


def evaluate_rules(con, ruleset: RuleSet, config: AlertsConfig, *, run_id: str | None = None,
                   today: date | None = None, initial_lookback: int = 7,
                   now: datetime | None = None, materialized_at: Mapping[str, datetime] | None = None) -> RunSummary:
    """Evaluate all rules and freshness policies; enqueue notifications. One transaction."""
    state.ensure_schema(con)
    problems = check_against_warehouse(ruleset, con)
    if problems:
        raise RuleFileError(problems, f"{ruleset.source} (checked against the warehouse)")
    now = now or datetime.now(timezone.utc)
    today = today or now.date()
    summary = RunSummary()
    con.execute("begin transaction")
    try:
        for rule in ruleset.rules:
            if measures_missing(con, rule.table):
                summary.skipped[rule.name] = f"{rule.table} is not built yet"
                continue
            data = ev.load_series(con, ruleset, rule).before(today)
            st = state.load_state(con, rule.fingerprint, rule.name)
            events = ev.evaluate_rule(rule, data, st, initial_lookback=initial_lookback)
            if not events:
                if ev.last_complete_date(rule, data) is None:
                    summary.skipped[rule.name] = "no data (or no published forecast) yet"
                continue
            notes = [ev.notification_for(e, st, config.ui_url) for e in events
                     if e.notification in ("firing", "repeat", "resolved")]
            # the state of an episode at notification time: use the event's own episode dates
            notes = [_with_episode_dates(n, events) for n in notes]
            state.record_events(con, events, run_id, now)
            state.record_episodes(con, events, st, now)
            state.save_state(con, st, rule.labels, now)
            for n in ev.coalesce(notes):
                if outbox.enqueue(con, n, config, now):
                    summary.notifications.append(n.key)
            summary.evaluations += len(events)
            summary.dates_by_rule[rule.name] = [e.obs.metric_date.isoformat() for e in events]
            summary.transitions += [(rule.name, e.obs.metric_date.isoformat(), e.transition)
                                    for e in events if e.transition]
            if st.status == "firing":
                summary.firing.append(rule.name)
        for policy in ruleset.freshness:
            if measures_missing(con, policy.table):
                summary.skipped[policy.name] = f"{policy.table} is not built yet"
                continue
            _evaluate_freshness(con, ruleset, policy, config, today, run_id, now, summary,
                                (materialized_at or {}).get(policy.table))
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return summary


def _with_episode_dates(n: ev.Notification, events: list[ev.EvalEvent]) -> ev.Notification:
    for e in events:
        if e.episode == n.episode and e.transition == "firing":
            n.payload["fired_date"] = e.obs.metric_date.isoformat()
            n.payload["episode_started"] = (e.episode_started or e.obs.metric_date).isoformat()
    return n


def _evaluate_freshness(con, ruleset: RuleSet, policy, config: AlertsConfig, today: date, run_id, now,
                        summary: RunSummary, materialized_at: datetime | None = None) -> None:
    cols = ev.qident(policy.date_column)
    exists = con.execute("select count(*) from information_schema.tables where table_schema || '.' || table_name = ?",
                         [policy.table]).fetchone()[0]
    latest = con.execute(f"select max(cast({cols} as date)) from {ev.qtable(policy.table)}").fetchone()[0] \
        if exists else None
    rule = ev.freshness_rule(policy)
    st = state.load_state(con, policy.fingerprint, policy.name)
    if st.last_eval_date is not None and st.last_eval_date > today:
        return
    obs = ev.observe_freshness(policy, latest, today)
    if materialized_at is not None and obs.outcome == "ok":
        age_h = (now - materialized_at).total_seconds() / 3600
        if age_h > policy.max_age_hours:
            obs = ev.Observation(today, "breach", value=obs.value, expected=obs.expected, clear=False,
                                 detail=f"last materialised {age_h:.0f} h ago (policy: {policy.max_age_hours:g} h)")
    e = ev.step(rule, st, obs)
    state.record_events(con, [e], run_id, now, upsert=True)
    state.record_episodes(con, [e], st, now)
    state.save_state(con, st, policy.labels, now)
    summary.evaluations += 1
    if e.transition:
        summary.transitions.append((policy.name, today.isoformat(), e.transition))
    if e.notification in ("firing", "repeat", "resolved"):
        n = ev.notification_for(e, st, config.ui_url)
        n.payload.update(kind=e.notification, table=policy.table, metric=policy.date_column,
                         description=f"{policy.table}: {obs.detail}; policy: at most {policy.max_lag_days} days behind",
                         latest_date=latest.isoformat() if latest else None)
        if outbox.enqueue(con, n, config, now, kind="freshness"):
            summary.notifications.append(n.key)
    if st.status == "firing":
        summary.firing.append(policy.name)


def run_failure_notification(config: AlertsConfig, ruleset: RuleSet | None, *, run_id: str, job_name: str,
                             error: str) -> ev.Notification:
    """The 'pipeline run failed' notification (key `run_failure:<run id>`), to the rule file's
    run-failure channels. Without a rule set (an invalid rule file may be why the run
    failed) it goes to every channel, as critical."""
    if ruleset is not None:
        severity, channels = ruleset.run_failure_severity, ruleset.run_failure_channels
    else:
        severity, channels = "critical", KNOWN_CHANNELS
    key = f"run_failure:{run_id}"
    payload = {"kind": "run_failure", "rule": "run_failure", "severity": severity,
               "job_name": job_name, "run_id": run_id, "error": config.redact(error)[:2000],
               "url": f"{config.ui_url}/runs/{run_id}", "idempotency_key": key}
    return ev.Notification(key, "run_failure", "run_failure", 0, None, severity, tuple(channels), payload)


def enqueue_run_failure(con, ruleset: RuleSet, config: AlertsConfig, *, run_id: str, job_name: str, error: str,
                        now: datetime | None = None) -> str:
    """Queue a 'pipeline run failed' notification (key `run_failure:<run id>`)."""
    state.ensure_schema(con)
    note = run_failure_notification(config, ruleset, run_id=run_id, job_name=job_name, error=error)
    outbox.enqueue(con, note, config, now or datetime.now(timezone.utc))
    return note.key


def run_alerts(con, ruleset: RuleSet, config: AlertsConfig, *, run_id: str | None = None,
               senders: Mapping[str, Sender] | None = None, max_wait_seconds: float = 20.0,
               evaluate: bool = True, today: date | None = None,
               now: Callable[[], datetime] | None = None, sleep=None,
               materialized_at: Mapping[str, datetime] | None = None,
               ledger: DeliveredLedger | None = None) -> RunSummary:
    """Evaluate (optional) and then deliver every due outbox row."""
    clock = now or (lambda: datetime.now(timezone.utc))
    summary = (evaluate_rules(con, ruleset, config, run_id=run_id, today=today, now=clock(),
                              materialized_at=materialized_at) if evaluate else RunSummary())
    state.ensure_schema(con)
    kwargs = {"now": clock, "max_wait_seconds": max_wait_seconds, "ledger": ledger}
    if sleep is not None:
        kwargs["sleep"] = sleep
    summary.delivery = outbox.deliver(con, config, senders if senders is not None else build_senders(config), **kwargs)
    return summary


# --- backtest -------------------------------------------------------------------------------------
@dataclass
class BacktestRow:
    rule: str
    type: str
    severity: str
    evaluated: int
    breaches: int
    episodes: int
    notifications: int
    fired_dates: list[str]
    category: str = "business"  # business | data_quality (Rule.category)
    first_date: str | None = None  # first and last replayed metric date
    last_date: str | None = None


def backtest(con, ruleset: RuleSet, days: int = 90, until: date | None = None) -> list[BacktestRow]:
    """Replay the last `days` metric dates nightly with fresh in-memory state. Read-only."""
    problems = check_against_warehouse(ruleset, con)
    if problems:
        raise RuleFileError(problems, f"{ruleset.source} (checked against the warehouse)")
    out = []
    for rule in ruleset.rules:
        if measures_missing(con, rule.table):
            out.append(BacktestRow(rule.name, rule.type, rule.severity, 0, 0, 0, 0, [], rule.category))
            continue
        data = ev.load_series(con, ruleset, rule).before(_today())
        last = ev.last_complete_date(rule, data)
        if until is not None and last is not None:
            last = min(last, until)
        st = ev.AlertState(rule.fingerprint, rule.name)
        events = ev.evaluate_rule(rule, data, st, initial_lookback=days, until=last)
        out.append(BacktestRow(
            rule=rule.name, type=rule.type, severity=rule.severity, evaluated=len(events),
            breaches=sum(1 for e in events if e.obs.outcome == "breach"),
            episodes=sum(1 for e in events if e.transition == "firing"),
            notifications=sum(1 for e in events if e.notification in ("firing", "repeat", "resolved")),
            fired_dates=[e.obs.metric_date.isoformat() for e in events if e.transition == "firing"],
            category=rule.category,
            first_date=events[0].obs.metric_date.isoformat() if events else None,
            last_date=events[-1].obs.metric_date.isoformat() if events else None))
    return out


def format_backtest(rows: list[BacktestRow]) -> str:
    head = ["rule", "category", "type", "severity", "dates", "breaches", "episodes", "notifications", "fired on"]
    body = [[r.rule, r.category, r.type, r.severity, str(r.evaluated), str(r.breaches), str(r.episodes), str(r.notifications),
             ", ".join(r.fired_dates[:8]) + (f" (+{len(r.fired_dates) - 8})" if len(r.fired_dates) > 8 else "")]
            for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
