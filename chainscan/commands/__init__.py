"""Commands that read a finished scan: ``pins``, ``bundle``, ``inspect``, ``diff``, ``report``,
``merge``. Each is a pure core plus a thin ``*_cli`` (or ``main``) that parses arguments.
"""
