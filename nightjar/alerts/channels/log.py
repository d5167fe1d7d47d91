"""The log channel: always available, also the default fallback for dead letters."""
from __future__ import annotations

import json
import logging
from typing import Any

from nightjar.alerts.channels.base import DeliveryResult, title

logger = logging.getLogger("nightjar.alerts.notify")


class LogSender:
    name = "log"

    def send(self, payload: dict[str, Any], key: str) -> DeliveryResult:
        level = logging.ERROR if payload.get("severity") == "critical" else logging.WARNING
        if payload.get("kind") == "resolved" or payload.get("severity") == "info":
            level = logging.INFO
        logger.log(level, "%s key=%s %s", title(payload), key,
                   json.dumps({k: payload.get(k) for k in ("value", "expected", "change_pct", "score", "url")}))
        return DeliveryResult(ok=True)
