"""A child stage for ``tests/test_child.py``: ``python -m tests.child_stage CONFIG`` runs
``run._child.child_main`` with a stage that obeys its stdin, one command a line:

    ok NAME      send a manifest line for NAME
    fail TEXT    send a line for ``before``, then the error line of ``OutputError(TEXT)``; exit 1
    torn         send half a line, then exit 3 (a child that died mid-write)
    exit N       exit with code N (0: the end, as a stage that finished)
    env          send a line whose host is ``cert_format,root`` of the config it was given
    ready        send ``READY_LINE`` (the stage can take work)
"""

from __future__ import annotations

import os
import sys

import orjson

from chainscan._errors import OutputError
from chainscan.output._output import OutputDir
from chainscan.run._child import READY_LINE, ChildConfig, LineOut, child_main


def line(host: str) -> bytes:
    return orjson.dumps({"host": host, "status": "ok", "error_kind": None}) + b"\n"


def _stage(config: ChildConfig, output: OutputDir, out: LineOut) -> int:
    for raw in sys.stdin.buffer:
        command, _, argument = raw.decode().strip().partition(" ")
        if command == "ok":
            out.send([line(argument)])
        elif command == "fail":
            out.fail([line("before")], OutputError(argument))
            return 1
        elif command == "torn":
            sys.stdout.buffer.write(line("torn")[:9])
            sys.stdout.buffer.flush()
            os._exit(3)
        elif command == "exit":
            return int(argument)
        elif command == "ready":
            out.send([READY_LINE])
        elif command == "env":
            out.send([line(f"{output.cert_format.value},{output.root}")])
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], _stage))
