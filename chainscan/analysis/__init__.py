"""The analysis layer, pure: DER bytes -> certificate facts, trust and hostname verdicts,
problems, the ``--deployments`` summary, and a result's manifest entry (``_entry``).

Used by the writer (in the scanning process or the writer child) and by the commands that read
a scan. Imports the manifest model (``manifest._model``, the schema's vocabulary); never the
network stack (``scan``), the writer (``output``), ``run`` or ``commands``.
"""
