"""Scale benchmarks (`nightjar bench`): Nightjar's steps against the raw-DuckDB limit.

See ``nightjar/bench/harness.py`` for what is measured and BENCHMARKS.md ("Scale
benchmarks") for results. Every measured step runs in its own subprocess so that its peak
memory (``ru_maxrss`` from ``wait4``, children included) and CPU time are its own.
"""
