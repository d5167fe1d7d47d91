"""Score a backtest against the incidents a simulator planted (`ground_truth.json`).

An incident is **detected** when any rule starts firing on its date or within
`tolerance_days` after it; the delay is the first such firing date minus the incident
date. Every firing on any other date is an alert on an **other date** (a false alarm as
far as the ground truth knows), counted per severity as distinct dates: two rules firing
on one quiet day make one bad morning, not two.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from nightjar.alerts.engine import BacktestRow
from nightjar.alerts.rules import SEVERITIES


@dataclass
class IncidentResult:
    kind: str
    date: date
    detected: bool
    first_alert: date | None = None
    delay_days: int | None = None
    rules: list[str] = field(default_factory=list)  # rules that fired within the tolerance


@dataclass
class BacktestScore:
    incidents: list[IncidentResult]
    # severity -> sorted distinct dates with a firing that matches no incident
    other_dates: dict[str, list[date]]
    # severity -> rule -> its firing dates that match no incident
    other_by_rule: dict[str, dict[str, list[date]]]
    first_date: date | None
    last_date: date | None

    @property
    def missed(self) -> list[str]:
        return [i.kind for i in self.incidents if not i.detected]


def load_ground_truth(path: str | Path) -> dict[str, date]:
    """{incident kind: date} from a simulator's ground_truth.json."""
    doc = json.loads(Path(path).read_text())
    incidents = doc.get("incidents") if isinstance(doc, dict) else None
    if not isinstance(incidents, dict):
        raise ValueError(f"{path}: no 'incidents' mapping (is it a nightjar simulator ground_truth.json?)")
    return {kind: date.fromisoformat(str(spec["date"])) for kind, spec in incidents.items()
            if isinstance(spec, dict) and spec.get("date")}


def score_backtest(rows: list[BacktestRow], incidents: dict[str, date], tolerance_days: int = 1,
                   first_date: date | None = None, last_date: date | None = None) -> BacktestScore:
    """Match the firing dates of `rows` against `incidents` (see the module docstring).
    Incidents outside [first_date, last_date] (the replayed dates) are left out."""
    inside = {k: d for k, d in incidents.items()
              if (first_date is None or d >= first_date) and (last_date is None or d <= last_date)}
    windows = {k: (d, d + timedelta(days=tolerance_days)) for k, d in inside.items()}
    results = []
    for kind, d in sorted(inside.items(), key=lambda kv: kv[1]):
        lo, hi = windows[kind]
        hits = sorted((date.fromisoformat(f), r.rule) for r in rows for f in r.fired_dates
                      if lo <= date.fromisoformat(f) <= hi)
        first = hits[0][0] if hits else None
        results.append(IncidentResult(kind, d, bool(hits), first, (first - d).days if first else None,
                                      sorted({rule for _, rule in hits})))
    other: dict[str, set[date]] = {s: set() for s in SEVERITIES}
    by_rule: dict[str, dict[str, list[date]]] = {s: {} for s in SEVERITIES}
    for r in rows:
        for f in r.fired_dates:
            fd = date.fromisoformat(f)
            if any(lo <= fd <= hi for lo, hi in windows.values()):
                continue
            other[r.severity].add(fd)
            by_rule[r.severity].setdefault(r.rule, []).append(fd)
    return BacktestScore(results, {s: sorted(v) for s, v in other.items()},
                         {s: v for s, v in by_rule.items() if v}, first_date, last_date)


def format_score(score: BacktestScore) -> str:
    lines = ["incident           date        detected  delay  rules"]
    for i in score.incidents:
        lines.append(f"{i.kind:18} {i.date}  {'yes' if i.detected else 'NO':8}  "
                     f"{'-' if i.delay_days is None else str(i.delay_days) + 'd':5}  {', '.join(i.rules) or '-'}")
    lines.append("")
    lines.append("alerts on other dates (distinct dates per severity):")
    for sev in reversed(SEVERITIES):
        ds = score.other_dates.get(sev, [])
        shown = ", ".join(d.isoformat() for d in ds[:10]) + (f" (+{len(ds) - 10})" if len(ds) > 10 else "")
        lines.append(f"  {sev:9} {len(ds):4}  {shown}")
        for rule, fds in sorted(score.other_by_rule.get(sev, {}).items()):
            lines.append(f"    {rule}: {len(fds)}")
    return "\n".join(lines)
