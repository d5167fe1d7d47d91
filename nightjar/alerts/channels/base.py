"""What every channel shares: the delivery result and message text."""
from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status_code: int | None = None
    retry_after: float | None = None  # seconds, from a 429/503 Retry-After header
    error: str = ""  # already redacted by the sender


class Sender(Protocol):
    name: str

    def send(self, payload: dict[str, Any], key: str) -> DeliveryResult: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (now if now is not None else time.time()), 0.0)


SEVERITY_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}"
    return str(v)


def title(p: dict[str, Any]) -> str:
    kind = p.get("kind")
    if kind == "run_failure":
        return f"[{p.get('severity', 'critical').upper()}] Pipeline run failed: {p.get('job_name')}"
    if kind == "freshness":
        return f"[{p['severity'].upper()}] {p['rule']}: {p.get('table')} is stale"
    verb = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED", "test": "TEST"}.get(kind, kind)
    return f"[{p['severity'].upper()}] {verb}: {p['rule']} ({p.get('metric')} on {p.get('metric_date')})"


def facts(p: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs shown by every channel."""
    if p.get("kind") == "run_failure":
        return [("Job", _fmt(p.get("job_name"))), ("Run", _fmt(p.get("run_id"))),
                ("Error", _fmt(p.get("error"))), ("Severity", p.get("severity", "critical"))]
    out = [("Metric", f"{p.get('metric')} ({p.get('table')})"), ("Date", _fmt(p.get("metric_date"))),
           ("Value", _fmt(p.get("value"))), ("Expected", _fmt(p.get("expected")))]
    if p.get("lower") is not None or p.get("upper") is not None:
        out.append(("Band", f"{_fmt(p.get('lower'))} .. {_fmt(p.get('upper'))}"))
    if p.get("change_pct") is not None:
        out.append(("Change", f"{p['change_pct']:+.1f} %"))
    if p.get("score") is not None:
        out.append(("Robust z", f"{p['score']:+.1f}"))
    out.append(("Severity", p.get("severity", "")))
    if p.get("fired_date"):
        out.append(("Firing since", p["fired_date"]))
    if p.get("resolved_date"):
        out.append(("Resolved on", p["resolved_date"]))
    if p.get("catch_up"):
        out.append(("Catch-up", f"{p['catch_up']['notifications_coalesced']} updates coalesced "
                                f"({', '.join(p['catch_up']['kinds'])}) since {p['catch_up']['first_date']}"))
    if p.get("owners"):
        out.append(("Owners", ", ".join(p["owners"])))
    return out


def plain_text(p: dict[str, Any]) -> str:
    lines = [title(p), ""]
    if p.get("description"):
        lines += [p["description"], ""]
    lines += [f"{k}: {v}" for k, v in facts(p)]
    if p.get("url"):
        lines += ["", f"Open in Dagster: {p['url']}"]
    if p.get("runbook"):
        lines.append(f"Runbook: {p['runbook']}")
    lines += ["", f"Idempotency-Key: {p.get('idempotency_key')}"]
    return "\n".join(lines)
