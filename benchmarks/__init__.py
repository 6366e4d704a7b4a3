"""Benchmark harness for chainscan: a local TLS fleet, one runner per tool, one driver.

* :mod:`benchmarks.fleet` builds a test PKI and serves it from nginx on 127.0.0.0/8.
* :mod:`benchmarks.runners` runs one tool over the fleet's targets and measures it.
* :mod:`benchmarks.run` is the command: ``python -m benchmarks.run``.
* :mod:`benchmarks._system` finds or installs programs (nginx, GNU time) and ties children to
  the harness's life.

See ``benchmarks/README.md``.
"""
