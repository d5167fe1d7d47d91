"""Reliability (fault-injection) suite: bad input, crashes, retries, late data, overlapping runs."""
