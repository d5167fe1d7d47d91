"""Generic webhook: JSON body signed with HMAC-SHA256.

Headers: ``Idempotency-Key``, ``X-Nightjar-Timestamp`` (unix seconds) and
``X-Nightjar-Signature: sha256=<hex>`` = HMAC-SHA256(secret, f"{timestamp}." + body).
A receiver verifies the signature over the raw body and rejects stale timestamps.
Without NIGHTJAR_WEBHOOK_SECRET the request goes out unsigned, with a warning in the log
(once per sender, i.e. per delivery run).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from nightjar.alerts.channels.base import DeliveryResult
from nightjar.alerts.channels.http import post
from nightjar.alerts.config import AlertsConfig

logger = logging.getLogger("nightjar.alerts.webhook")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSender:
    name = "webhook"

    def __init__(self, config: AlertsConfig, clock=time.time):
        self._config = config
        self._clock = clock
        self._warned_unsigned = False

    def send(self, payload: dict[str, Any], key: str) -> DeliveryResult:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
        ts = str(int(self._clock()))
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, "X-Nightjar-Timestamp": ts,
                   "User-Agent": "nightjar-alerts/1"}
        if self._config.webhook_secret:
            headers["X-Nightjar-Signature"] = sign(self._config.webhook_secret.get().encode(), ts, body)
        elif not self._warned_unsigned:
            # a receiver cannot tell these requests from forged ones
            logger.warning("NIGHTJAR_WEBHOOK_SECRET is not set: webhook notifications are sent unsigned "
                           "(no X-Nightjar-Signature header)")
            self._warned_unsigned = True
        return post(self._config, self._config.webhook_url.get(), data=body, headers=headers)
