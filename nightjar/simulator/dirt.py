"""Deliberate dirt in the landing files: duplicates, malformed lines, local disorder.

Every malformed line breaks exactly one rule of DESIGN.md §1.1, and kinds are chosen
round-robin (a counter kept in the world state), so that even a low rate covers every
rejection reason once enough lines were written. Reasons use the ingestion's codes
(nightjar/ingest/validate.py) so ground truth and `raw.events_rejected` can be reconciled.
"""
from __future__ import annotations

import random

import orjson

from .timefmt import fmt_ms

# (variant, reason code the loader must report)
MALFORMED_KINDS: tuple[tuple[str, str], ...] = (
    ("broken_json", "invalid_json"),
    ("json_array", "not_an_object"),
    ("json_string", "not_an_object"),
    ("missing_event_id", "missing_event_id"),
    ("empty_event_id", "missing_event_id"),
    ("missing_event_name", "missing_event_name"),
    ("empty_event_name", "missing_event_name"),
    ("missing_anonymous_id", "missing_anonymous_id"),
    ("empty_anonymous_id", "missing_anonymous_id"),
    ("missing_timestamp", "missing_timestamp"),
    ("unparsable_timestamp", "unparsable_timestamp"),
    ("timestamp_without_offset", "timestamp_without_offset"),
    ("timestamp_after_received_at", "timestamp_after_received_at"),
    ("timestamp_before_2000", "timestamp_too_early"),
    ("properties_not_object", "properties_not_object"),
    ("context_not_object", "context_not_object"),
    ("user_id_not_string", "user_id_not_string"),
    ("line_too_large", "line_too_large"),
)
MAX_LINE_BYTES = 32 * 1024


def make_malformed(variant: str, recv_ms: int, head: str, tail: str, rng: random.Random) -> str:
    """A rejected line derived from a real one (fresh event_id so it can never shadow it)."""
    line = head + fmt_ms(recv_ms) + tail
    if variant == "broken_json":
        return line[: max(10, len(line) // 2 + rng.randrange(len(line) // 3))]
    obj = orjson.loads(line)
    obj["event_id"] = "bad-%024x" % rng.getrandbits(96)
    if variant == "json_array":
        return orjson.dumps([obj]).decode()
    if variant == "json_string":
        return orjson.dumps(line[:60]).decode()
    if variant == "missing_event_id":
        del obj["event_id"]
    elif variant == "empty_event_id":
        obj["event_id"] = "  " if rng.random() < 0.5 else ""
    elif variant == "missing_event_name":
        del obj["event_name"]
    elif variant == "empty_event_name":
        obj["event_name"] = ""
    elif variant == "missing_anonymous_id":
        del obj["anonymous_id"]
    elif variant == "empty_anonymous_id":
        obj["anonymous_id"] = ""
    elif variant == "missing_timestamp":
        del obj["timestamp"]
    elif variant == "unparsable_timestamp":
        obj["timestamp"] = rng.choice(("yesterday 10:15", "2024-13-45T25:61:00Z", "not-a-date", "1718000000"))
    elif variant == "timestamp_without_offset":
        obj["timestamp"] = fmt_ms(recv_ms)[:-1]  # drop the Z
    elif variant == "timestamp_after_received_at":
        obj["timestamp"] = fmt_ms(recv_ms + (2 + rng.randrange(30)) * 86_400_000)
    elif variant == "timestamp_before_2000":
        obj["timestamp"] = rng.choice(("1970-01-01T00:00:00Z", "1999-12-31T23:59:59.000Z"))
    elif variant == "properties_not_object":
        obj["properties"] = rng.choice(("oops", [1, 2, 3], 42))
    elif variant == "context_not_object":
        obj["context"] = rng.choice(("ctx", ["page"], 0))
    elif variant == "user_id_not_string":
        obj["user_id"] = rng.choice((12345, True, {"id": "c_000001"}))
    elif variant == "line_too_large":
        # a valid event whose only fault is its size (a client dumping a DOM into properties)
        props = obj.get("properties") or {}
        props["debug_blob"] = "x" * (MAX_LINE_BYTES + 100 + rng.randrange(4000))
        obj["properties"] = props
    else:  # pragma: no cover - guarded by MALFORMED_KINDS
        raise ValueError(variant)
    return orjson.dumps(obj).decode()


def shuffle_locally(lines: list[str], rate: float, rng: random.Random) -> int:
    """Swap a share of lines with a neighbour up to 5 positions away (out-of-order delivery)."""
    n = len(lines)
    swaps = 0
    if n < 2 or rate <= 0:
        return 0
    for _ in range(int(n * rate)):
        i = rng.randrange(n)
        j = min(n - 1, i + 1 + rng.randrange(5))
        if i != j:
            lines[i], lines[j] = lines[j], lines[i]
            swaps += 1
    return swaps
