"""The one place where the alerts package reads its environment variables.

Secrets (webhook URLs, the SMTP password, the HMAC key) are held in :class:`Secret`
objects whose ``repr``/``str`` never show the value, and :meth:`AlertsConfig.redact`
scrubs them (and the secret parts of URLs) out of any text before it is logged,
stored in the warehouse or attached to Dagster metadata.

| variable | default | meaning |
|---|---|---|
| NIGHTJAR_UI_URL | http://127.0.0.1:3000 | Dagster UI base URL used for links in messages |
| NIGHTJAR_SLACK_WEBHOOK_URL | – (secret) | Slack incoming-webhook URL; channel ``slack`` |
| NIGHTJAR_WEBHOOK_URL | – (secret) | generic webhook receiver; channel ``webhook`` |
| NIGHTJAR_WEBHOOK_SECRET | – (secret) | HMAC-SHA256 key for ``X-Nightjar-Signature`` |
| NIGHTJAR_SMTP_HOST / _PORT | – / 587 (25 without STARTTLS) | SMTP server; channel ``email`` |
| NIGHTJAR_SMTP_USER / _PASSWORD | – / – (secret) | SMTP login (optional) |
| NIGHTJAR_SMTP_FROM / _TO | nightjar@localhost / – | sender, comma-separated recipients |
| NIGHTJAR_SMTP_STARTTLS | true | upgrade the connection with STARTTLS |
| NIGHTJAR_SMTP_ALLOW_PLAINTEXT_LOGIN | false | allow USER/PASSWORD login without STARTTLS (else refused) |
| NIGHTJAR_ALERTS_FALLBACK_CHANNEL | log | where dead letters go |
| NIGHTJAR_ALERTS_MAX_ATTEMPTS | 12 | failures before a notification is dead-lettered |
| NIGHTJAR_ALERTS_BACKOFF_SECONDS | 30 | first retry delay (doubles, capped at 1 h) |
| NIGHTJAR_ALERTS_HTTP_TIMEOUT | 10 | seconds per HTTP/SMTP attempt |
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from nightjar.settings import get_settings

KNOWN_CHANNELS = ("slack", "email", "webhook", "log")


class Secret:
    """A string that does not show itself in repr/str/f-strings (use .get())."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self):  # never pickle the value into run storage
        raise TypeError("Secret values are not picklable")


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    value = (env.get(name) or "").strip()
    return Secret(value) if value else None


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    password: Secret | None
    sender: str
    recipients: tuple[str, ...]
    starttls: bool
    allow_plaintext_login: bool = False


@dataclass(frozen=True)
class AlertsConfig:
    ui_url: str = "http://127.0.0.1:3000"
    slack_webhook_url: Secret | None = None
    webhook_url: Secret | None = None
    webhook_secret: Secret | None = None
    smtp: SmtpConfig | None = None
    fallback_channel: str = "log"
    max_attempts: int = 12
    backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0
    http_timeout: float = 10.0
    _secrets: tuple[str, ...] = field(default=(), repr=False)

    def configured_channels(self) -> set[str]:
        out = {"log"}
        if self.slack_webhook_url:
            out.add("slack")
        if self.webhook_url:
            out.add("webhook")
        if self.smtp is not None and self.smtp.recipients:
            out.add("email")
        return out

    def redact(self, text: object) -> str:
        """`text` with every secret value (and secret URL parts) replaced by ***."""
        s = str(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret:
                s = s.replace(secret, "***")
        return s


def _url_fragments(url: str) -> list[str]:
    """The parts of a webhook URL that are secret on their own (path, query, userinfo)."""
    parts = urlsplit(url)
    out = [url]
    if parts.path and parts.path not in ("", "/"):
        out.append(parts.path)
        # urllib3 error messages quote the path, sometimes without the leading slash
        out.append(parts.path.lstrip("/"))
        out.extend(seg for seg in parts.path.split("/") if len(seg) >= 8)
    if parts.query:
        out.append(parts.query)
    if parts.password:
        out.append(parts.password)
    return out


def load_config(environ: Mapping[str, str] | None = None) -> AlertsConfig:
    env = os.environ if environ is None else environ
    slack = _secret(env, "NIGHTJAR_SLACK_WEBHOOK_URL")
    webhook = _secret(env, "NIGHTJAR_WEBHOOK_URL")
    hmac_key = _secret(env, "NIGHTJAR_WEBHOOK_SECRET")
    smtp = None
    host = (env.get("NIGHTJAR_SMTP_HOST") or "").strip()
    if host:
        starttls = _bool(env.get("NIGHTJAR_SMTP_STARTTLS"), True)
        port = int(env.get("NIGHTJAR_SMTP_PORT") or (587 if starttls else 25))
        recipients = tuple(r.strip() for r in re.split(r"[,;]", env.get("NIGHTJAR_SMTP_TO") or "") if r.strip())
        smtp = SmtpConfig(
            host=host,
            port=port,
            user=(env.get("NIGHTJAR_SMTP_USER") or "").strip() or None,
            password=_secret(env, "NIGHTJAR_SMTP_PASSWORD"),
            sender=(env.get("NIGHTJAR_SMTP_FROM") or "nightjar@localhost").strip(),
            recipients=recipients,
            starttls=starttls,
            allow_plaintext_login=_bool(env.get("NIGHTJAR_SMTP_ALLOW_PLAINTEXT_LOGIN"), False),
        )
    secrets: list[str] = []
    for s in (slack, webhook):
        if s:
            secrets.extend(_url_fragments(s.get()))
    for s in (hmac_key, smtp.password if smtp else None):
        if s:
            secrets.append(s.get())
    fallback = (env.get("NIGHTJAR_ALERTS_FALLBACK_CHANNEL") or "log").strip()
    if fallback not in KNOWN_CHANNELS:
        raise ValueError(f"NIGHTJAR_ALERTS_FALLBACK_CHANNEL must be one of {', '.join(KNOWN_CHANNELS)}")
    return AlertsConfig(
        ui_url=get_settings(env).ui_url,  # not a secret: the one settings module owns it
        slack_webhook_url=slack,
        webhook_url=webhook,
        webhook_secret=hmac_key,
        smtp=smtp,
        fallback_channel=fallback,
        max_attempts=int(env.get("NIGHTJAR_ALERTS_MAX_ATTEMPTS") or 12),
        backoff_seconds=float(env.get("NIGHTJAR_ALERTS_BACKOFF_SECONDS") or 30),
        http_timeout=float(env.get("NIGHTJAR_ALERTS_HTTP_TIMEOUT") or 10),
        _secrets=tuple(dict.fromkeys(secrets)),
    )
