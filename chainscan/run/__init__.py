"""Execution modes of a scan: one process, a writer child process, ``--workers`` scanning
processes, ``--dask`` and ``--shard``; and what a person sees on stderr while it runs.
"""
