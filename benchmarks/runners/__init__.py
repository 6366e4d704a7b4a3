"""One runner per tool that fetches certificate chains; each is measured the same way.

To add a competitor: write ``benchmarks/runners/<tool>.py`` with a class that follows
:class:`Runner` (see ``openssl_xargs.py`` for a short one) and add it to ``RUNNERS``.
"""

from ._base import Measured as Measured
from ._base import Runner as Runner
from ._base import RunResult as RunResult
from ._base import RunStatus as RunStatus
from ._base import measure as measure
from .bare_trio_runner import BareTrioRunner
from .chainscan import Chainscan1pRunner, Chainscan2wRunner, ChainscanRunner
from .nmap_ssl_cert import NmapSslCertRunner
from .openssl_s_time import OpensslSTimeRunner
from .openssl_xargs import OpensslXargsRunner
from .sslyze_runner import SslyzeApiRunner, SslyzeCliRunner

RUNNERS: dict[str, type[Runner]] = {
    r.name: r
    for r in (
        ChainscanRunner,
        Chainscan1pRunner,
        Chainscan2wRunner,
        BareTrioRunner,
        OpensslXargsRunner,
        SslyzeCliRunner,
        SslyzeApiRunner,
        NmapSslCertRunner,
        OpensslSTimeRunner,
    )
}
"""Every runner, by name, in the order the driver runs them (rotated each repeat)."""
