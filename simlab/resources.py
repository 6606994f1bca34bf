"""Refuse requests this machine cannot hold, before allocating anything.

Collectors and trainers estimate the memory (and disk) a request needs from
its config and call :func:`check_memory` / :func:`check_disk` first, so
``--size 99999999999999999999999`` ends with one line naming the figure
instead of growing until the kernel kills the process.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

from simlab.errors import ConfigError

FRAME_BYTES: Final = 64 * 64 * 3
"""Bytes of one 64x64 RGB uint8 frame (procgen-like observations)."""
MIN_GZIP_RATIO: Final = 0.1
"""Smallest on-disk size of gzip-compressed frames, as a fraction of their raw bytes, that the
disk checks assume (the lower bound Dream Land uses too: shards of these games' frames do not
compress below ~1/10). Lower-bounding the need means a refusal is certain, never a guess."""


def human_bytes(n: float) -> str:
    """``1.5e9`` -> ``"1.4 GiB"`` (binary units, 1 decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable``; total RAM when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62


def check_memory(nbytes: float, what: str) -> None:
    """ConfigError when ``what`` needs more than the memory available now."""
    avail = available_memory()
    if nbytes > avail:
        raise ConfigError(f"{what} needs ~{human_bytes(nbytes)} of memory; this machine has "
                          f"{human_bytes(avail)} available (make it smaller)")


def check_disk(nbytes: float, path: str | os.PathLike[str], what: str) -> None:
    """ConfigError when ``what`` needs more than the free space on ``path``'s file system."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    free = shutil.disk_usage(p).free
    if nbytes > free:
        raise ConfigError(f"{what} needs at least {human_bytes(nbytes)} of disk; {p} has "
                          f"{human_bytes(free)} free (make it smaller)")


def bytes_under(path: str | os.PathLike[str]) -> int:
    """Total size of the regular files below ``path`` (0 when it does not exist): what a resumed
    collection has already written, to take off its disk estimate."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
