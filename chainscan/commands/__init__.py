"""Commands that read a scan: ``pins``, ``bundle``, ``inspect``, ``diff``, ``report``,
``merge``. Each is a pure core (``_pins``, ``_bundle``, ...) plus a thin ``*_cli`` that parses
arguments, prints and picks the exit code; ``_common`` is what the ``*_cli`` modules share.
They read manifests through ``manifest._reader`` only; ``merge`` alone writes a scan (with the
writer, ``output._output.OutputDir``).
"""
