"""chainscan: fetch the TLS certificate chains that many endpoints present.

The public API is what this module exports; everything else lives in private ``_modules``.
"""

from ._api import ScanResults as ScanResults
from ._api import open_scan as open_scan
from ._api import open_scan_sync as open_scan_sync
from ._api import scan_all as scan_all
from ._api import scan_all_sync as scan_all_sync
from ._errors import ChainscanError as ChainscanError
from ._errors import InputError as InputError
from ._errors import OutputError as OutputError
from ._errors import UsageError as UsageError
from ._models import BadLine as BadLine
from ._models import CertFacts as CertFacts
from ._models import CertFormat as CertFormat
from ._models import ErrorKind as ErrorKind
from ._models import ProbeOutcome as ProbeOutcome
from ._models import ScanOptions as ScanOptions
from ._models import ScanResult as ScanResult
from ._models import Status as Status
from ._models import Target as Target
from ._models import Timings as Timings
from .analysis._analyze import analyze_der as analyze_der
from .analysis._chain_inventory import ChainInventory as ChainInventory
from .analysis._chain_inventory import HostnameCheck as HostnameCheck
from .analysis._problems import Problem as Problem
from .analysis._verify import ChainLink as ChainLink
from .analysis._verify import TrustVerdict as TrustVerdict
from .scan._targets import Deduplicator as Deduplicator
from .scan._targets import load_targets as load_targets
from .scan._targets import parse_line as parse_line

__version__ = "0.1.0"
