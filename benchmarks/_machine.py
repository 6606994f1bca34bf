"""Machine facts and single-core pinning shared by the benchmarks (imported as a sibling module)."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any


def pin_one_core(cpu: int | None) -> int | None:
    """Restrict this process to one CPU; returns it (None where unsupported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return chosen


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what platform knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float] | None:
    """1/5/15-minute load averages (None where unsupported)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info(pinned: int | None, **extra: Any) -> dict[str, Any]:
    """What a benchmark result must record: CPU, cores, pinning, load, versions, date (+ ``extra``)."""
    import numpy as np

    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "pinned_cpu": pinned,
        "loadavg_1_5_15": loadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **extra,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
