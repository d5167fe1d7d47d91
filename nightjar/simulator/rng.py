"""Deterministic random streams keyed by (seed, day, purpose).

Each day and each purpose gets its own independent stream, so that generating day N never
depends on how many random numbers day N-1 consumed. That is what lets `append_days`
continue a world exactly, and lets a change in one generator (say, bots) leave the others'
output untouched.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np


def stream_seed(seed: int, day: int, purpose: str) -> int:
    digest = hashlib.blake2b(f"{seed}|{day}|{purpose}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def np_stream(seed: int, day: int, purpose: str) -> np.random.Generator:
    """numpy stream for vectorised draws (visit counts, start times, funnel outcomes)."""
    return np.random.default_rng(stream_seed(seed, day, purpose))


def py_stream(seed: int, day: int, purpose: str) -> random.Random:
    """stdlib stream for the per-event scalar draws of the hot loop (much cheaper per call)."""
    return random.Random(stream_seed(seed, day, purpose))


def hex_id(seed: int, *key: object, n: int = 20) -> str:
    """A stable pseudo-random hex id derived from a key (anonymous ids of known devices)."""
    text = "|".join(map(str, (seed, *key))).encode()
    return hashlib.blake2b(text, digest_size=(n + 1) // 2).hexdigest()[:n]
