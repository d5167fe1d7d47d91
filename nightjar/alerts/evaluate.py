"""Rule evaluation: observations per metric date, the alert state machine, and catch-up.

Pure Python over data read from the warehouse; no Dagster imports. One evaluation is
one (rule, metric date). State per fingerprint moves

    normal -> pending (breaching, fewer than `for` evaluations) -> firing -> normal (resolved)

Time in rules is *metric time*: `for`, `keep_firing_for` count evaluations (one per
metric date); `repeat_interval` and `cooldown` are metric days. That makes a replay of
many days (backfill, backtest) behave exactly like the same days evaluated nightly;
only the notifications of one run are coalesced to one per rule episode (see
:func:`coalesce`).
"""
from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from nightjar.alerts.holiday_calendar import HolidayCalendar, default_calendar
from nightjar.alerts.rules import FORECAST_TABLE, Condition, FreshnessPolicy, Rule, RuleSet

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
        "!=": operator.ne}
KIND_RANK = {"repeat": 0, "firing": 1, "resolved": 2}


def qident(name: str) -> str:
    """Quote an identifier that has been checked against information_schema."""
    return '"' + name.replace('"', '""') + '"'


def qtable(table: str) -> str:
    return ".".join(qident(p) for p in table.split("."))


# --- data ----------------------------------------------------------------------------------
@dataclass
class SeriesData:
    """Daily values of the metrics a rule needs (calendar days without a row are absent)."""

    values: dict[str, dict[date, float | None]]
    first_date: date | None
    last_date: date | None
    forecast: dict[date, tuple[float, float, float]] = field(default_factory=dict)
    calendar: HolidayCalendar = field(default_factory=lambda: HolidayCalendar(""))

    def before(self, day: date) -> SeriesData:
        """Only the days that have ended by `day`: a nightly run at 02:00 already sees two
        hours of today, and a partial day must never be judged (it would look like a crash)."""
        values = {m: {d: v for d, v in by_day.items() if d < day} for m, by_day in self.values.items()}
        days = [d for by_day in values.values() for d in by_day]
        return SeriesData(
            values=values,
            first_date=min(days) if days else None,
            last_date=max(days) if days else None,
            forecast=self.forecast,
            calendar=self.calendar,
        )

    def get(self, metric: str, d: date) -> float | None:
        v = self.values.get(metric, {}).get(d)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return float(v)


def _metrics_of(rule: Rule) -> list[str]:
    return list(dict.fromkeys([rule.metric] + [w.metric for w in rule.when]))


def load_series(con, ruleset: RuleSet, rule: Rule, calendar: HolidayCalendar | None = None) -> SeriesData:
    """Read the rule's metrics (identifiers validated by check_against_warehouse); `calendar`
    defaults to the one of NIGHTJAR_HOLIDAY_COUNTRY."""
    date_col = ruleset.tables[rule.table]
    metrics = _metrics_of(rule)
    where, params = "", []
    if rule.filter:
        where = "where " + " and ".join(f"{qident(k)} = ?" for k in rule.filter)
        params = list(rule.filter.values())
    sql = (f"select cast({qident(date_col)} as date) as d, "
           + ", ".join(f"sum({qident(m)})::double as {qident(m)}" for m in metrics)
           + f" from {qtable(rule.table)} {where} group by 1 order by 1")
    rows = con.execute(sql, params).fetchall()
    values: dict[str, dict[date, float | None]] = {m: {} for m in metrics}
    for row in rows:
        for i, m in enumerate(metrics, start=1):
            values[m][row[0]] = row[i]
    data = SeriesData(values, rows[0][0] if rows else None, rows[-1][0] if rows else None,
                      calendar=calendar if calendar is not None else default_calendar())
    if rule.type == "forecast_band":
        data.forecast = load_forecast(con, rule.condition.p("series"), rule.condition.p("forecast_metric"))
    return data


def load_forecast(con, series: str, metric: str) -> dict[date, tuple[float, float, float]]:
    """The published interval per date: the latest forecast generated before the day ended,
    else (history that was never forecast ahead) the earliest one generated after it."""
    schema, name = FORECAST_TABLE.split(".")
    exists = con.execute("select count(*) from information_schema.tables where table_schema=? and table_name=?",
                         [schema, name]).fetchone()[0]
    if not exists:
        return {}
    rows = con.execute(
        f"""
        with f as (
          select cast(forecast_date as date) as d, yhat, yhat_lower, yhat_upper,
                 cast(generated_at as timestamp) as g
          from {qtable(FORECAST_TABLE)} where series_id = ? and metric = ?
        )
        select d, yhat, yhat_lower, yhat_upper from f
        qualify row_number() over (
          partition by d
          order by case when g < d + interval 1 day then 0 else 1 end,
                   case when g < d + interval 1 day then -epoch(g) else epoch(g) end) = 1
        """,
        [series, metric],
    ).fetchall()
    return {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows if None not in r[1:]}


def last_complete_date(rule: Rule, data: SeriesData) -> date | None:
    if data.last_date is None:
        return None
    if rule.type == "forecast_band":
        if not data.forecast:
            return None
        return min(data.last_date, max(data.forecast))
    return data.last_date


# --- observations ----------------------------------------------------------------------------
@dataclass
class Observation:
    metric_date: date
    outcome: str  # breach | ok | no_data | insufficient
    value: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    change_pct: float | None = None
    score: float | None = None
    clear: bool = True  # below the resolve threshold (hysteresis): counts towards resolving
    detail: str = ""


def _direction_hit(direction: str, low: bool, high: bool) -> bool:
    return {"down": low, "up": high, "both": low or high}[direction]


def _usable(cond: Condition, data: SeriesData, ref: date, d: date) -> bool:
    """May the value of `ref` be part of the baseline of `d` (holiday_calendar.py)?"""
    return cond.p("holidays") == "ignore" or data.calendar.usable_reference(ref, d)


def _change_refs(cond: Condition, data: SeriesData, d: date) -> list[float]:
    """The baseline values of a `change` condition: the previous day, or the same weekday of
    the last `weeks` weeks. Each holiday-affected reference is skipped and replaced by the
    next older one (at most 8 replacements), so a January day is not compared with
    Christmas week; a missing value is not replaced."""
    step, wanted = (1, 1) if cond.p("compare_to") == "previous_day" else (7, cond.p("weeks"))
    refs: list[float] = []
    span, k = wanted, 0
    while k < span:
        k += 1
        ref = d - timedelta(days=step * k)
        if not _usable(cond, data, ref, d):
            span = min(span + 1, wanted + 8)
            continue
        v = data.get(cond.metric, ref)
        if v is not None:
            refs.append(v)
    return refs


def observe(cond: Condition, data: SeriesData, d: date) -> Observation:
    value = data.get(cond.metric, d)
    if value is None:
        return Observation(d, "no_data", detail=f"no value of {cond.metric} on {d}")
    if cond.p("holidays") == "skip" and (why := data.calendar.reason(d)):
        return Observation(d, "insufficient", value, detail=f"not evaluated on holidays ({why})")
    t = cond.type
    if t == "threshold":
        op = _OPS[cond.p("op")]
        breach = op(value, cond.p("value"))
        rv = cond.p("resolve_value")
        clear = not breach if rv is None else not op(value, rv)
        return Observation(d, "breach" if breach else "ok", value, expected=float(cond.p("value")), clear=clear,
                           detail=f"{cond.metric} {value:g} {cond.p('op')} {cond.p('value'):g}" if breach else "")
    if t == "change":
        refs = _change_refs(cond, data, d)
        wanted = 1 if cond.p("compare_to") == "previous_day" else cond.p("weeks")
        if not refs or len(refs) * 2 < wanted:
            return Observation(d, "insufficient", value, detail="no baseline")
        base = statistics.median(refs)
        if base <= 0 or base < cond.p("min_baseline"):
            return Observation(d, "insufficient", value, expected=base, detail="baseline too small")
        pct = (value - base) / base * 100.0
        limit = cond.p("percent")
        breach = _direction_hit(cond.p("direction"), pct <= -limit, pct >= limit)
        rl = cond.p("resolve_percent")
        clear = not breach if rl is None else not _direction_hit(cond.p("direction"), pct <= -rl, pct >= rl)
        return Observation(d, "breach" if breach else "ok", value, expected=base, change_pct=pct, clear=clear)
    if t == "anomaly":
        return _observe_anomaly(cond, data, d, value)
    if t == "forecast_band":
        fc = data.forecast.get(d)
        if fc is None:
            return Observation(d, "no_data", value, detail="no published forecast for this date")
        yhat, lo, hi = fc
        pad = cond.p("tolerance") * max(hi - lo, 0.0)
        lo2, hi2 = lo - pad, hi + pad
        breach = _direction_hit(cond.p("direction"), value < lo2, value > hi2)
        pct = (value - yhat) / yhat * 100.0 if yhat else None
        return Observation(d, "breach" if breach else "ok", value, expected=yhat, lower=lo2, upper=hi2,
                           change_pct=pct, clear=not breach)
    raise ValueError(f"unknown condition type {t}")


def _observe_anomaly(cond: Condition, data: SeriesData, d: date, value: float) -> Observation:
    window, need = cond.p("window"), cond.p("min_history")
    # the trailing `window` days; each holiday-affected one is skipped and the window reaches
    # one day further back instead (at most twice its length)
    hist: list[tuple[date, float]] = []
    span, k = window, 0
    while k < span:
        k += 1
        hd = d - timedelta(days=k)
        if not _usable(cond, data, hd, d):
            span = min(span + 1, 2 * window)
            continue
        v = data.get(cond.metric, hd)
        if v is not None:
            hist.append((hd, v))
    if len(hist) < need:
        return Observation(d, "insufficient", value, detail=f"{len(hist)} of {need} days of history")
    overall = statistics.median(v for _, v in hist)
    factors = {wd: 1.0 for wd in range(7)}
    if cond.p("seasonality") == "weekday" and overall > 0:
        for wd in range(7):
            same = [v for hd, v in hist if hd.weekday() == wd]
            if len(same) >= 2:
                factors[wd] = max(statistics.median(same) / overall, 1e-6)
    norm = [v / factors[hd.weekday()] for hd, v in hist]
    f_today = factors[d.weekday()]
    x = value / f_today
    med = statistics.median(norm)
    mad = statistics.median(abs(v - med) for v in norm)
    # 1.4826 * MAD estimates sigma for normal data; floor it so a flat series does not
    # turn a rounding difference into an infinite score.
    scale = max(1.4826 * mad, 0.02 * abs(med), 1e-9)
    z = (x - med) / scale
    s = float(cond.p("sensitivity"))
    breach = _direction_hit(cond.p("direction"), z <= -s, z >= s)
    rs = cond.p("resolve_sensitivity")
    clear = not breach if rs is None else not _direction_hit(cond.p("direction"), z <= -rs, z >= rs)
    expected = med * f_today
    return Observation(d, "breach" if breach else "ok", value, expected=expected,
                       lower=(med - s * scale) * f_today, upper=(med + s * scale) * f_today,
                       change_pct=(value - expected) / expected * 100.0 if expected else None, score=z, clear=clear)


def observe_rule(rule: Rule, data: SeriesData, d: date) -> Observation:
    """The primary condition, gated by the `when` conditions (all must hold)."""
    obs = observe(rule.condition, data, d)
    if obs.outcome != "breach" and obs.clear:
        return obs
    unmet = []
    for w in rule.when:
        wo = observe(w, data, d)
        ok = wo.outcome == "breach" if w.expect == "breach" else wo.outcome == "ok"
        if not ok:
            unmet.append(f"{w.metric} is {wo.outcome} (want {w.expect})")
    if unmet:
        return replace(obs, outcome="ok", clear=True, detail="; ".join(unmet))
    return obs


# --- state machine -----------------------------------------------------------------------------
@dataclass
class AlertState:
    fingerprint: str
    rule_name: str
    status: str = "normal"  # normal | pending | firing
    breach_streak: int = 0
    clear_streak: int = 0
    episode: int = 0
    episode_started: date | None = None
    episode_fired: date | None = None
    episode_notified: bool = False
    last_eval_date: date | None = None
    last_fire_notified: date | None = None
    last_notified: date | None = None
    last_value: float | None = None
    peak_score: float | None = None


@dataclass
class EvalEvent:
    fingerprint: str
    rule: Rule
    obs: Observation
    status_before: str
    status_after: str
    transition: str | None  # pending | firing | resolved | cancelled | None
    episode: int
    notification: str | None  # firing | repeat | resolved | None (or "suppressed:<why>")
    episode_started: date | None = None


@dataclass
class Notification:
    key: str
    kind: str  # firing | repeat | resolved | run_failure | test
    fingerprint: str
    episode: int
    metric_date: date | None
    severity: str
    channels: tuple[str, ...]
    payload: dict[str, Any]


def step(rule: Rule, st: AlertState, obs: Observation) -> EvalEvent:
    """Advance one fingerprint by one evaluation (mutates `st`)."""
    d = obs.metric_date
    before = st.status
    outcome = obs.outcome
    clear = obs.clear
    if outcome == "no_data":
        outcome = {"alert": "breach", "ok": "ok", "keep": None}[rule.no_data]
        clear = outcome == "ok"
    elif outcome == "insufficient":
        outcome = None
    transition = None
    note = None
    if outcome is not None:
        if st.status in ("normal", "pending"):
            if outcome == "breach":
                st.breach_streak += 1
                if st.breach_streak >= rule.for_:
                    st.status = "firing"
                    st.episode += 1
                    st.episode_started = st.episode_started if before == "pending" else d
                    st.episode_started = st.episode_started or d
                    st.episode_fired = d
                    st.episode_notified = False
                    st.clear_streak = 0
                    st.peak_score = None
                    transition = "firing"
                else:
                    if before == "normal":
                        st.episode_started = d
                        transition = "pending"
                    st.status = "pending"
            else:
                if before == "pending":
                    transition = "cancelled"
                st.status = "normal"
                st.breach_streak = 0
                st.episode_started = None
        else:  # firing
            if clear:
                st.clear_streak += 1
                if st.clear_streak > rule.keep_firing_for:
                    st.status = "normal"
                    st.breach_streak = 0
                    transition = "resolved"
                    note = "resolved" if st.episode_notified else "suppressed:never-notified"
            else:
                st.clear_streak = 0
                st.breach_streak += 1
        if obs.score is not None and st.status == "firing":
            st.peak_score = obs.score if st.peak_score is None else (
                max(st.peak_score, obs.score) if obs.score > 0 else min(st.peak_score, obs.score))
    if st.status == "firing":
        muted = rule.muted(d)
        cooling = st.last_fire_notified is not None and (d - st.last_fire_notified).days < rule.cooldown
        if not st.episode_notified:
            if muted:
                note = f"suppressed:muted{(' (' + muted.reason + ')') if muted.reason else ''}"
            elif cooling and transition == "firing":
                note = "suppressed:cooldown"
            elif not cooling:
                note = "firing"
                st.episode_notified = True
                st.last_fire_notified = d
                st.last_notified = d
        elif (rule.repeat_interval and not muted and st.last_notified is not None
              and (d - st.last_notified).days >= rule.repeat_interval):
            note = "repeat"
            st.last_notified = d
    st.last_eval_date = d
    if obs.value is not None:
        st.last_value = obs.value
    return EvalEvent(st.fingerprint, rule, obs, before, st.status, transition, st.episode, note, st.episode_started)


def dates_to_evaluate(st: AlertState, last: date | None, first: date | None, initial_lookback: int) -> list[date]:
    if last is None:
        return []
    if st.last_eval_date is not None:
        start = st.last_eval_date + timedelta(days=1)
    else:
        start = last - timedelta(days=initial_lookback - 1)
        if first is not None:
            start = max(start, first)
    n = (last - start).days + 1
    return [start + timedelta(days=i) for i in range(max(n, 0))]


def evaluate_rule(rule: Rule, data: SeriesData, st: AlertState, initial_lookback: int = 7,
                  until: date | None = None) -> list[EvalEvent]:
    """Evaluate every not yet evaluated metric date of one rule, in order (mutates `st`)."""
    last = last_complete_date(rule, data)
    if until is not None and last is not None:
        last = min(last, until)
    return [step(rule, st, observe_rule(rule, data, d))
            for d in dates_to_evaluate(st, last, data.first_date, initial_lookback)]


# --- notifications --------------------------------------------------------------------------------
def asset_url(ui_url: str, table: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{'/'.join(table.split('.'))}"


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def notification_for(ev: EvalEvent, st: AlertState, ui_url: str) -> Notification:
    rule, obs = ev.rule, ev.obs
    kind = ev.notification
    assert kind in ("firing", "repeat", "resolved")
    key = f"{ev.fingerprint}:{ev.episode}:{kind}"
    if kind == "repeat":
        key += f":{obs.metric_date.isoformat()}"
    payload = {
        "kind": kind,
        "rule": rule.name,
        "description": rule.description,
        "type": rule.type,
        "severity": rule.severity,
        "fingerprint": ev.fingerprint,
        "episode": ev.episode,
        "labels": rule.labels,
        "metric": rule.metric,
        "table": rule.table,
        "metric_date": obs.metric_date.isoformat(),
        "value": _round(obs.value),
        "expected": _round(obs.expected),
        "lower": _round(obs.lower),
        "upper": _round(obs.upper),
        "change_pct": _round(obs.change_pct, 2),
        "score": _round(obs.score, 2),
        "episode_started": st.episode_started.isoformat() if st.episode_started else None,
        "fired_date": st.episode_fired.isoformat() if st.episode_fired else None,
        "resolved_date": obs.metric_date.isoformat() if kind == "resolved" else None,
        "owners": list(rule.owners),
        "runbook": rule.runbook,
        "url": asset_url(ui_url, rule.table),
        "idempotency_key": key,
    }
    return Notification(key, kind, ev.fingerprint, ev.episode, obs.metric_date, rule.severity, rule.channels, payload)


def coalesce(notes: Iterable[Notification]) -> list[Notification]:
    """One notification per (fingerprint, episode) of a run: a catch-up over many days
    tells each episode once, in its latest state (resolved > firing > reminder)."""
    groups: dict[tuple[str, int], list[Notification]] = {}
    for n in notes:
        groups.setdefault((n.fingerprint, n.episode), []).append(n)
    out = []
    for (_fp, _ep), ns in groups.items():
        if len(ns) == 1:
            out.append(ns[0])
            continue
        final_kind = max((n.kind for n in ns), key=lambda k: KIND_RANK[k])
        latest = max(ns, key=lambda n: (n.metric_date, KIND_RANK[n.kind]))
        payload = dict(latest.payload)
        key = f"{latest.fingerprint}:{latest.episode}:{final_kind}"
        if final_kind == "repeat":
            key = latest.key
        payload.update(kind=final_kind, idempotency_key=key, catch_up={
            "notifications_coalesced": len(ns),
            "kinds": sorted({n.kind for n in ns}, key=lambda k: KIND_RANK[k]),
            "first_date": min(n.metric_date for n in ns).isoformat(),
        })
        out.append(replace(latest, key=key, kind=final_kind, payload=payload))
    return sorted(out, key=lambda n: (n.metric_date or date.min, n.key))


# --- freshness -----------------------------------------------------------------------------------
def freshness_rule(policy: FreshnessPolicy) -> Rule:
    """A freshness policy expressed as a rule for the state machine (one evaluation per day)."""
    return Rule(name=policy.name, description=f"{policy.table} is stale", filter={},
                condition=Condition("threshold", policy.date_column, {"op": ">", "value": policy.max_lag_days,
                                                                       "resolve_value": None},
                                    table=policy.table),
                when=(), severity=policy.severity, owners=policy.owners, channels=policy.channels,
                for_=1, keep_firing_for=0, repeat_interval=1, cooldown=0, no_data="alert")


def observe_freshness(policy: FreshnessPolicy, latest: date | None, today: date) -> Observation:
    if latest is None:
        return Observation(today, "no_data", detail=f"{policy.table} has no rows")
    lag = max((today - latest).days, 0)  # a mart date ahead of today is fresh, not "-n days old"
    breach = lag > policy.max_lag_days
    return Observation(today, "breach" if breach else "ok", value=float(lag), expected=float(policy.max_lag_days),
                       clear=not breach, detail=f"latest {policy.date_column} is {latest} ({lag} days old)")
