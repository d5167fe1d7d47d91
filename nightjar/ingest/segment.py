"""Segment-spec messages (Segment's and RudderStack's object-storage exports) as raw events.

A Segment export lands as ``<landing>/segment-logs/<source-id>/<received-day>/<file>.gz``
(gzip, one message per line, ``<received-day>`` = the UTC day's start in Unix ms). Each
message is mapped onto the native event object of DESIGN.md §1.1 by :func:`to_native`, and
that object goes through the native validator unchanged (same rules, same reason codes);
the quarantine keeps the message line as it arrived. docs/DESIGN.md "Segment exports"
lists the mapping.

Nothing here raises: a message that is not an object, or whose fields have the wrong type,
is mapped as far as it goes and the validator rejects it with the native reason
(``not_an_object``, ``missing_event_id``, ``event_name_not_string``, ...).
"""
from __future__ import annotations

import re
from typing import Any

SEGMENT_FOLDER = "segment-logs"
# the received-day folder: the UTC day's start as Unix milliseconds, e.g. 1736121600000
RECEIVED_DAY_RE = re.compile(r"^[0-9]{1,15}$")
FILE_SUFFIX = ".gz"

# message type -> native event name (track: its `event`, see TRACK_NAMES)
TYPE_NAMES = {
    "page": "page_viewed",
    "screen": "screen_viewed",
    "identify": "user_identified",
    # kept in raw, unused downstream (stg_events leaves them out)
    "alias": "alias",
    "group": "group",
}
UNUSED_TYPES = ("alias", "group")

# Track event names of Segment's e-commerce spec (v2, and the v1 names still sent by older
# integrations) and of its "Signed Up" lifecycle event, onto DESIGN §1.1's names. Matched
# after trim/lower-casing/spaces and hyphens to `_`, as staging normalises names; any other
# name is kept as sent (staging normalises it).
TRACK_NAMES = {
    "products_searched": "search_performed",
    "product_viewed": "product_viewed",
    "product_added": "product_added_to_cart",
    "checkout_started": "checkout_started",
    "order_completed": "purchase_completed",
    "signed_up": "user_signed_up",
    # e-commerce spec v1
    "searched_products": "search_performed",
    "viewed_product": "product_viewed",
    "added_product": "product_added_to_cart",
    "started_order": "checkout_started",
    "completed_order": "purchase_completed",
}

# context keys copied as they are (same meaning in both formats, no personal data)
_CONTEXT_KEPT = ("page", "campaign", "locale", "timezone", "screen", "app", "os", "library", "network")
# of context.device, the fields that describe the device (not advertisingId / push token)
_DEVICE_KEPT = ("id", "type", "manufacturer", "model", "name")
_PAGE_FIELDS = ("path", "referrer", "search", "title", "url")
_WS = " \t\n\r\f\v"


def _name_key(name: str) -> str:
    return "_".join(name.strip(_WS).lower().replace("-", " ").split())


def event_name(msg: dict) -> Any:
    """The native ``event_name`` of a message (None when it has none: ``missing_event_name``;
    a non-string is returned as is: ``event_name_not_string``)."""
    kind = msg.get("type")
    if type(kind) is not str:
        return kind
    if kind == "track":
        name = msg.get("event")
        if type(name) is str:
            return TRACK_NAMES.get(_name_key(name), name)
        return name
    # an unknown type is kept under its own name, like an unknown native event name
    return TYPE_NAMES.get(kind, kind) if kind.strip(_WS) else None


def _properties(msg: dict, native_name: Any) -> Any:
    props = msg.get("properties")
    kind = msg.get("type")
    if kind == "alias":
        props = {"previous_id": msg.get("previousId")}
    elif kind == "group":
        props = {"group_id": msg.get("groupId")}
    elif kind == "identify":
        props = None  # traits are personal data (e-mail, name, address) and unused
    if type(props) is not dict:
        return props  # None, or not an object: properties_not_object
    props = dict(props)
    if kind in ("page", "screen") and type(msg.get("name")) is str:
        props.setdefault("name", msg["name"])
    # the native property names of the funnel events (e-commerce v2: `value`/`revenue`/`total`)
    if native_name == "checkout_started" and "cart_value" not in props:
        for key in ("value", "revenue", "total"):
            if props.get(key) is not None:
                props["cart_value"] = props[key]
                break
    if native_name == "purchase_completed" and props.get("revenue") is None and props.get("total") is not None:
        props["revenue"] = props["total"]
    return props


def _context(msg: dict) -> Any:
    ctx = msg.get("context")
    if ctx is None:
        ctx = {}
    if type(ctx) is not dict:
        return ctx  # context_not_object
    out: dict[str, Any] = {k: ctx[k] for k in _CONTEXT_KEPT if ctx.get(k) is not None}
    if "page" not in out and msg.get("type") == "page" and type(msg.get("properties")) is dict:
        # a page call without context.page: the spec's reserved page properties
        page = {k: msg["properties"][k] for k in _PAGE_FIELDS if k in msg["properties"]}
        if page:
            out["page"] = page
    if ctx.get("userAgent") is not None:
        out["user_agent"] = ctx["userAgent"]
    location = ctx.get("location")
    if type(location) is dict:  # city/country only: latitude/longitude are too precise to keep
        geo = {k: location[k] for k in ("country", "city") if location.get(k) is not None}
        if geo:
            out["geo"] = geo
    device = ctx.get("device")
    if type(device) is dict:
        kept = {k: device[k] for k in _DEVICE_KEPT if device.get(k) is not None}
        if kept:
            out["device"] = kept
    # context.ip, context.traits and every other key are not stored (personal data, unused)
    return out or None


def to_native(msg: Any) -> Any:
    """The native event object (DESIGN §1.1 fields) of one decoded Segment message; a value
    that is not an object is returned unchanged (``not_an_object``)."""
    if type(msg) is not dict:
        return msg
    name = event_name(msg)
    anonymous_id = msg.get("anonymousId")
    if anonymous_id is None or anonymous_id == "":
        # the spec requires anonymousId *or* userId: a server-side call identifies by userId
        anonymous_id = msg.get("userId")
    timestamp = msg.get("timestamp")
    if timestamp is None or timestamp == "":
        timestamp = msg.get("originalTimestamp")
    out = {
        "event_id": msg.get("messageId"),
        "event_name": name,
        "timestamp": timestamp,
        "received_at": msg.get("receivedAt"),
        "anonymous_id": anonymous_id,
        "user_id": msg.get("userId"),
        "properties": _properties(msg, name),
        "context": _context(msg),
    }
    ctx = msg.get("context")
    if type(ctx) is dict and ctx.get("sessionId") is not None:
        out["session_id"] = ctx["sessionId"]  # RudderStack's session (Unix ms, a number)
    return out
