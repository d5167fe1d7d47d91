"""Orchestration: daily partitions, the nightly job and schedule (see defs.py)."""
