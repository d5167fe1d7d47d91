"""Segment-spec messages for the tests, written from Segment's public Spec pages (Common
Fields; track/page/screen/identify/alias/group; E-commerce v2), and a converter from
native events (DESIGN §1.1) to such messages, as a Segment source would have sent them."""
from __future__ import annotations

import gzip
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

DAY_MS = 86_400_000

# native name -> the spec's track event name (E-commerce v2, "Signed Up")
_TRACK_EVENTS = {
    "product_viewed": "Product Viewed",
    "product_added_to_cart": "Product Added",
    "checkout_started": "Checkout Started",
    "purchase_completed": "Order Completed",
    "search_performed": "Products Searched",
    "user_signed_up": "Signed Up",
}
_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/124.0.0.0 Safari/537.36")


def common(message_id: str, kind: str, ts: str = "2025-01-06T10:00:00.000Z",
           received: str = "2025-01-06T10:00:01.250Z", anonymous_id: str | None = "507f191e810c19729de860ea",
           user_id: str | None = None, **extra: Any) -> dict:
    """A message with the spec's common fields, as an export stores it."""
    msg = {
        "anonymousId": anonymous_id,
        "context": {
            "ip": "203.0.113.42",
            "library": {"name": "analytics.js", "version": "2.11.1"},
            "locale": "en-US",
            "location": {"city": "Berlin", "country": "DE", "latitude": 52.52, "longitude": 13.405},
            "page": {"path": "/academy/", "referrer": "https://www.google.com/", "search": "?utm_source=google",
                     "title": "Analytics Academy", "url": "https://shop.example/academy/?utm_source=google"},
            "campaign": {"name": "spring_sale", "source": "google", "medium": "cpc", "term": "shoes",
                         "content": "image link"},
            "device": {"id": "B5372DB0-C21E-11E4-8DFC-AA07A5B093DB", "advertisingId": "7A3CBEA0-BDF5",
                       "manufacturer": "Apple", "model": "iPhone7,2", "type": "ios", "token": "ff15bc0c20c4"},
            "screen": {"width": 320, "height": 568, "density": 2},
            "timezone": "Europe/Berlin",
            "traits": {"email": "peter@example.com", "name": "Peter Gibbons"},
            "userAgent": _UA,
        },
        "integrations": {"All": True},
        "messageId": message_id,
        "originalTimestamp": ts,
        "receivedAt": received,
        "sentAt": ts,
        "timestamp": ts,
        "type": kind,
        "userId": user_id,
        "version": 2,
    }
    msg.update(extra)
    return msg


def track(message_id: str, event: str, properties: dict | None = None, **kw: Any) -> dict:
    return common(message_id, "track", event=event, properties=properties or {}, **kw)


def write_export(segment_dir: Path, source: str, day_ms: int, name: str, lines: list) -> Path:
    """One export file: gzip, one message per line (dicts are JSON-encoded, str/bytes as given)."""
    folder = segment_dir / source / str(day_ms)
    folder.mkdir(parents=True, exist_ok=True)
    body = b"".join(
        (line if isinstance(line, bytes) else line.encode() if isinstance(line, str) else orjson.dumps(line)) + b"\n"
        for line in lines
    )
    path = folder / name
    path.write_bytes(gzip.compress(body))
    return path


def day_ms(iso_day: str) -> int:
    return int(datetime.fromisoformat(iso_day).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _norm(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def native_to_segment(event: dict) -> dict:
    """The message a Segment source sends for one native event; a `properties`/`context`
    of the wrong type is passed on as it is (raises KeyError when a required field is absent)."""
    name = _norm(event["event_name"])
    props = event.get("properties")
    props = dict(props) if isinstance(props, dict) else props
    ctx_native = event.get("context")
    if not isinstance(ctx_native, dict):  # null stays absent; anything else stays as sent
        return _message(event, name, props, ctx_native, {})
    ctx: dict[str, Any] = {"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "198.51.100.7"}
    for key in ("page", "campaign", "locale", "timezone", "screen"):
        if key in ctx_native:
            ctx[key] = ctx_native[key]
    if "user_agent" in ctx_native:
        ctx["userAgent"] = ctx_native["user_agent"]
    if "geo" in ctx_native:
        ctx["location"] = dict(ctx_native["geo"])
    if event.get("session_id") is not None:
        ctx["sessionId"] = event["session_id"]
    return _message(event, name, props, ctx, ctx_native)


def _message(event: dict, name: str, props: Any, ctx: Any, ctx_native: dict) -> dict:
    msg: dict[str, Any] = {
        "anonymousId": event["anonymous_id"],
        "userId": event.get("user_id"),
        "messageId": event["event_id"],
        "timestamp": event["timestamp"],
        "originalTimestamp": event["timestamp"],
        "sentAt": event["timestamp"],
        "context": ctx,
        "integrations": {},
    }
    if event.get("received_at") is not None:
        msg["receivedAt"] = event["received_at"]
    if ctx is None:
        del msg["context"]
    is_obj = isinstance(props, dict)
    if name == "page_viewed":
        msg["type"] = "page"
        page = ctx_native.get("page") or {}
        if is_obj:  # analytics.js copies the page fields into a page call's properties
            props = {**{k: page[k] for k in ("path", "referrer", "title", "url") if k in page}, **props}
    elif name == "user_identified":
        msg["type"] = "identify"
        msg["traits"] = {"email": f"{event.get('user_id')}@example.com"}
        props = None
    else:
        msg["type"] = "track"
        msg["event"] = _TRACK_EVENTS.get(name, event["event_name"])
        if is_obj and name == "checkout_started" and "cart_value" in props:
            props["value"] = props.pop("cart_value")  # E-commerce v2 calls the cart value `value`
        if is_obj and name == "purchase_completed" and "revenue" in props:
            props["total"] = props.pop("revenue")  # ... and the order's amount `total`
            props.setdefault("products", [])
    if props is not None:
        msg["properties"] = props
    return msg


def export_native_files(native_dir: Path, segment_dir: Path, every: int = 1, move: bool = False) -> int:
    """Write native batch files (every ``every``-th, sorted) again as Segment exports: same
    events, one message per line, in the received-day folder of the file's latest
    ``received_at``, split over two sources (``web``, ``ios``). A line that is not a valid
    native event is copied as it is (it is rejected on both sides). ``move``: delete the
    native file. Returns the number of files written."""
    files = 0
    for i, path in enumerate(sorted(native_dir.glob("dt=*/*.jsonl*"))):
        if i % every:
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        out, latest = [], None
        for line in data.splitlines():
            try:
                event = orjson.loads(line)
                msg = orjson.dumps(native_to_segment(event))
                ts = datetime.fromisoformat((event.get("received_at") or event["timestamp"]).replace("Z", "+00:00"))
            except Exception:  # noqa: BLE001 - a malformed line stays as it is
                out.append(line)
                continue
            out.append(msg)
            latest = ts if latest is None or ts > latest else latest
        day = (int(latest.astimezone(timezone.utc).timestamp() * 1000) if latest else 0) // DAY_MS * DAY_MS
        source = ("web", "ios")[zlib.crc32(path.name.encode()) % 2]
        folder = segment_dir / source / str(day)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (path.name.split(".")[0] + ".gz")).write_bytes(gzip.compress(b"\n".join(out) + b"\n", 3))
        if move:
            path.unlink()
        files += 1
    return files
