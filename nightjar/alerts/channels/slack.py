"""Slack incoming webhook with a Block Kit message."""
from __future__ import annotations

from typing import Any

from nightjar.alerts.channels.base import SEVERITY_EMOJI, DeliveryResult, facts, plain_text, title
from nightjar.alerts.channels.http import post
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
        return post(self._config, self._url.get(), json=slack_message(payload), headers={"Idempotency-Key": key})
