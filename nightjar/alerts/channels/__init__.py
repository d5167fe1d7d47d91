"""Notification channels: Slack incoming webhook, SMTP email, generic signed webhook, log."""
from __future__ import annotations

from nightjar.alerts.channels.base import DeliveryResult, Sender
from nightjar.alerts.config import AlertsConfig


def build_senders(config: AlertsConfig) -> dict[str, Sender]:
    """One sender per configured channel (``log`` always exists)."""
    from nightjar.alerts.channels.mail import EmailSender
    from nightjar.alerts.channels.log import LogSender
    from nightjar.alerts.channels.slack import SlackSender
    from nightjar.alerts.channels.webhook import WebhookSender

    senders: dict[str, Sender] = {"log": LogSender()}
    if config.slack_webhook_url:
        senders["slack"] = SlackSender(config)
    if config.webhook_url:
        senders["webhook"] = WebhookSender(config)
    if config.smtp is not None and config.smtp.recipients:
        senders["email"] = EmailSender(config)
    return senders


__all__ = ["DeliveryResult", "Sender", "build_senders"]
