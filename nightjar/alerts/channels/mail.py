"""Email over SMTP: plain text + HTML alternative, STARTTLS when configured.

The idempotency key travels as ``Idempotency-Key`` and ``X-Nightjar-Idempotency-Key``
headers and is the local part of a deterministic ``Message-ID``, so a re-sent mail is
recognisably the same message.

The password is only sent after STARTTLS: with NIGHTJAR_SMTP_STARTTLS=false and a login
configured, delivery fails (no connection is made) unless
NIGHTJAR_SMTP_ALLOW_PLAINTEXT_LOGIN=true says a clear-text login is acceptable.
"""
from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from nightjar.alerts.channels.base import DeliveryResult, facts, plain_text, title
from nightjar.alerts.config import AlertsConfig


def html_body(p: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in facts(p))
    link = f"<p><a href='{html.escape(p['url'])}'>Open in Dagster</a></p>" if p.get("url") else ""
    desc = f"<p>{html.escape(p['description'])}</p>" if p.get("description") else ""
    return (f"<html><body><h2>{html.escape(title(p))}</h2>{desc}<table>{rows}</table>{link}"
            f"<p style='color:#888'>Idempotency-Key: {html.escape(str(p.get('idempotency_key')))}</p></body></html>")


def build_message(p: dict[str, Any], key: str, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = title(p)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@nightjar.alerts>"
    msg["Idempotency-Key"] = key
    msg["X-Nightjar-Idempotency-Key"] = key
    msg.set_content(plain_text(p))
    msg.add_alternative(html_body(p), subtype="html")
    return msg


class EmailSender:
    name = "email"

    def __init__(self, config: AlertsConfig):
        assert config.smtp is not None
        self._config = config
        self._smtp = config.smtp

    def send(self, payload: dict[str, Any], key: str) -> DeliveryResult:
        s = self._smtp
        if s.user and s.password and not s.starttls and not s.allow_plaintext_login:
            return DeliveryResult(False, error="refusing to send the SMTP password without STARTTLS: set "
                                               "NIGHTJAR_SMTP_STARTTLS=true, or NIGHTJAR_SMTP_ALLOW_PLAINTEXT_LOGIN=true "
                                               "to accept a clear-text login")
        msg = build_message(payload, key, s.sender, s.recipients)
        try:
            with smtplib.SMTP(s.host, s.port, timeout=self._config.http_timeout) as client:
                client.ehlo()
                if s.starttls:
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if s.user and s.password:
                    client.login(s.user, s.password.get())
                client.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            return DeliveryResult(False, exc.smtp_code, error=self._config.redact(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"))
        except (OSError, smtplib.SMTPException) as exc:
            return DeliveryResult(False, error=self._config.redact(f"{type(exc).__name__}: {exc}"))
        return DeliveryResult(True, 250)
