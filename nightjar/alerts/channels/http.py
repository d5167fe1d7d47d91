"""What the HTTP channels (Slack, webhook) share: one POST and how its response reads."""
from __future__ import annotations

from typing import Any

import requests

from nightjar.alerts.channels.base import DeliveryResult, parse_retry_after
from nightjar.alerts.config import AlertsConfig


def post(config: AlertsConfig, url: str, **kwargs: Any) -> DeliveryResult:
    """POST with the configured timeout: a 2xx is delivered; anything else fails with the
    status, the Retry-After delay and a redacted error."""
    try:
        r = requests.post(url, timeout=config.http_timeout, **kwargs)
    except requests.RequestException as exc:
        return DeliveryResult(False, error=config.redact(f"{type(exc).__name__}: {exc}"))
    if 200 <= r.status_code < 300:
        return DeliveryResult(True, r.status_code)
    return DeliveryResult(False, r.status_code, parse_retry_after(r.headers.get("Retry-After")),
                          config.redact(f"HTTP {r.status_code}: {r.text[:200]}"))
