"""A local TOS server for tests, the demo and the benchmarks (standard library and the
``tos`` SDK's CRC class only; it imports nothing of the cutover, so it checks the client
rather than sharing its code).

``store`` keeps buckets, objects and multipart uploads on disk; ``signature`` checks the
V4 signatures; ``request`` parses requests; ``http`` dispatches operations and serves;
``faults`` injects misbehaviour; ``python -m devtools.tos_server`` runs it.
"""

from devtools.tos_server.faults import Faults
from devtools.tos_server.http import TosServer

__all__ = ["Faults", "TosServer"]
