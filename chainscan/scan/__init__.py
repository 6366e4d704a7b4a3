"""The scan layer: input lines -> targets -> limits and retries -> TCP + TLS -> chain bytes.

The only part of chainscan that opens sockets. Pure pieces (``_targets``, ``_tls``, ``_limits``)
sit beside the I/O edge (``_resolve``, ``_probe``) and the nursery that drives it (``_schedule``);
``_starttls/`` holds the pure plaintext dialogues (SMTP, IMAP, ...) the probe runs before TLS.
Nothing here imports ``analysis``, ``output``, ``run`` or ``commands``.
"""
