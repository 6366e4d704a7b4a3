"""The output layer: target folders, certificate files named the KonySSLPinningTool way, and the
manifest (``manifest.jsonl`` appended as results arrive, ``manifest.json`` at the end).
"""
