"""The output layer, the writer: target folders, certificate files named the KonySSLPinningTool
way, and the manifest (``manifest.jsonl`` appended as results arrive, ``manifest.json`` at the
end). It only names and writes: entries come from ``analysis._entry``, the schema's vocabulary
from ``manifest``. Readers of a scan use ``manifest._reader``, never this package.
"""
