"""The key of the keyed HMAC that pseudonymises PII in staging (DESIGN §6 "PII").

``NIGHTJAR_PII_KEY`` when set; else the key file ``<data dir>/pii.key``, created once with
a random key (``secrets.token_hex``) readable by its owner only. There is no built-in
key: a known key would let anyone re-identify e-mail addresses by hashing guesses. dbt reads
the same key through the profile's plugin (``nightjar/dbt_pii_key_plugin.py``); a dbt run
that finds neither fails with the message of :data:`MISSING_KEY_HELP`.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "NIGHTJAR_PII_KEY"
KEY_FILE_NAME = "pii.key"
MISSING_KEY_HELP = (
    "No PII key: set NIGHTJAR_PII_KEY, or create the key file <data dir>/pii.key "
    "(`nightjar pii-key` creates a random one; `nightjar run` does so on its first night)"
)


def read_key(key_file: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """The key: NIGHTJAR_PII_KEY if set, else the key file's content; None without either."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR, "").strip():
        return env[ENV_VAR].strip()
    try:
        key = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not key:
        raise ValueError(f"the PII key file {key_file} is empty; delete it to have a new key created")
    return key


def ensure_key_file(key_file: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Create the key file with a random key (mode 0600) unless NIGHTJAR_PII_KEY is set or
    the file exists. Returns the file, or None when the environment supplies the key."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR, "").strip():
        return None
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once never overwrite each other's key
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_hex(32) + "\n")
    return key_file
