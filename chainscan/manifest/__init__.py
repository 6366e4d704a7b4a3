"""The manifest layer: one typed, frozen model of a manifest entry (``_model``) and one reader
(``_reader``, streaming ``manifest.jsonl`` / ``manifest.json``). Pure data and file reading.

Everything that reads a scan back (``commands``, ``--resume`` and ``--overwrite`` in the writer)
goes through ``_reader``; the writer (``output``) and the analysis side (``analysis``) take the
schema's vocabulary from ``_model`` (file names, the role rule, the time form). Imports neither
the writer, the analysis, nor the network stack.
"""
