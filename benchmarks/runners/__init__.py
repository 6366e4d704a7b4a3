"""One runner per tool that fetches certificate chains; each is measured the same way.

To add a competitor: write ``benchmarks/runners/<tool>.py`` with a class that follows
:class:`Runner` (see ``openssl_xargs.py`` for a short one) and add it to ``RUNNERS``.
"""

from ._base import Measured as Measured
from ._base import Runner as Runner
from ._base import RunResult as RunResult
from ._base import RunStatus as RunStatus
from ._base import measure as measure
from .chainscan import ChainscanRunner
from .openssl_xargs import OpensslXargsRunner

RUNNERS: dict[str, type[Runner]] = {
    ChainscanRunner.name: ChainscanRunner,
    OpensslXargsRunner.name: OpensslXargsRunner,
}
"""Every runner, by name, in the order the driver runs them (rotated each repeat)."""
