"""The analysis layer, pure: DER bytes -> certificate facts, trust and hostname verdicts, problems.

Used by the writer (in the scanning process or the writer child) and by the commands that read a
scan. Never imports the network stack (``scan``), the writer (``output``) or ``run``.
"""
