"""A local stand-in for Okta's System Log API (``GET /api/v1/logs``), for testing clients over real HTTP.

``SystemLogServer(EmulatorConfig(...))`` serves on 127.0.0.1; ``python -m
devtools.system_log_server`` runs it from the command line. See ``devtools/system_log_server/README.md``.
"""

from devtools.system_log_server.config import EmulatorConfig
from devtools.system_log_server.server import SystemLogServer
from devtools.system_log_server.stats import RequestRecord, Stats

__all__ = ["EmulatorConfig", "RequestRecord", "Stats", "SystemLogServer"]
