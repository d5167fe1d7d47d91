"""Slack incoming webhook with a Block Kit message."""
from __future__ import annotations

from typing import Any

import requests

from nightjar.alerts.channels.base import SEVERITY_EMOJI, DeliveryResult, facts, parse_retry_after, plain_text, title
from nightjar.alerts.config import AlertsConfig


def slack_message(p: dict[str, Any]) -> dict[str, Any]:
    emoji = ":white_check_mark:" if p.get("kind") == "resolved" else SEVERITY_EMOJI.get(p.get("severity", ""), "")
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts(p)][:10]  # Slack allows 10 fields
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title(p)[:150], "emoji": True}},
    ]
    if p.get("description"):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {p['description']}"}})
    blocks.append({"type": "section", "fields": fields})
    if p.get("url"):
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open asset in Dagster"}, "url": p["url"]}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"rule `{p.get('rule', p.get('job_name'))}` · key `{p.get('idempotency_key')}`"}]})
    return {"text": plain_text(p)[:3000], "blocks": blocks}


class SlackSender:
    name = "slack"

    def __init__(self, config: AlertsConfig):
        self._url = config.slack_webhook_url
        self._config = config

    def send(self, payload: dict[str, Any], key: str) -> DeliveryResult:
        try:
            r = requests.post(self._url.get(), json=slack_message(payload), timeout=self._config.http_timeout,
                              headers={"Idempotency-Key": key})
        except requests.RequestException as exc:
            return DeliveryResult(False, error=self._config.redact(f"{type(exc).__name__}: {exc}"))
        if 200 <= r.status_code < 300:
            return DeliveryResult(True, r.status_code)
        return DeliveryResult(False, r.status_code, parse_retry_after(r.headers.get("Retry-After")),
                              self._config.redact(f"HTTP {r.status_code}: {r.text[:200]}"))
