"""A one-line description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kb = int(handle.readline().split()[1])
            memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import apache_beam
    import pyarrow

    return (f"{cpu}, {os.cpu_count()} cores{memory}; Python {platform.python_version()}, "
            f"apache-beam {apache_beam.__version__}, pyarrow {pyarrow.__version__}")
