"""Benchmark scenarios beyond the loopback comparison of ``benchmarks.run``.

* :mod:`benchmarks.scenarios.latency`: a fleet 50 ms away (round trip, SYN included), with and
  without 10% dead targets, at several concurrencies.
* :mod:`benchmarks.scenarios.scale`: chainscan's memory with 10,000 handshakes in flight, and
  while it streams a million-line input.

See ``benchmarks/scenarios/README.md``.
"""
