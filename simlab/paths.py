"""One check for every output path a user gives (``--out``, ``--video``, ...).

Called by the CLI's option parsers (so a bad path fails before any work) and by
the writers themselves (``RunDir.create``, dataset collectors), so the Python
API gets the same one-line :class:`~simlab.errors.ConfigError`.

Writability is probed by creating and removing a temporary file in the nearest
existing directory, not with ``os.access``: as root ``os.access`` says yes to
read-only directories, and it knows nothing of read-only file systems.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from simlab.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(directory: Path, shown: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".simlab-probe-", dir=directory)
    except OSError as e:
        raise ConfigError(f"{shown}: cannot write in {directory} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(name)


def check_output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """``path`` as a Path if a directory can be created or written there; ConfigError otherwise.

    Refused: an empty path, an existing file, a path below a file, and a
    location where this process cannot create files.
    """
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{option} is empty; give a directory")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {text}: is an existing file, not a directory")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise ConfigError(f"{option} {text}: {base} is a file, so no directory can be made below it")
    _probe_writable(base, f"{option} {text}")
    return p


def check_output_file(path: str | os.PathLike[str], option: str = "--out",
                      suffixes: Iterable[str] = ()) -> Path:
    """``path`` as a Path if a file with one of ``suffixes`` can be written there; ConfigError otherwise."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{option} is empty; give a file name")
    p = Path(text)
    suffixes = tuple(suffixes)
    if suffixes and p.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} must end in {' or '.join(suffixes)}, got {text}")
    if p.is_dir():
        raise ConfigError(f"{option} {text}: is a directory, not a file")
    base = _nearest_existing(p.parent if str(p.parent) else Path("."))
    if not base.is_dir():
        raise ConfigError(f"{option} {text}: {base} is a file, so no file can be made below it")
    _probe_writable(base, f"{option} {text}")
    return p
