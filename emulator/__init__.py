"""A local stand-in for Okta's System Log API (``GET /api/v1/logs``), for testing clients over real HTTP.

``SystemLogServer(EmulatorConfig(...))`` serves on 127.0.0.1; ``python -m
emulator`` runs it from the command line. See ``emulator/README.md``.
"""

from emulator.config import EmulatorConfig
from emulator.server import SystemLogServer
from emulator.stats import RequestRecord, Stats

__all__ = ["EmulatorConfig", "RequestRecord", "Stats", "SystemLogServer"]
