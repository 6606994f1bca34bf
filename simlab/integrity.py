"""Checksummed small files: JSON documents and YAML configs that carry their own SHA-256.

Big files (HDF5 shards, safetensors weights) are checked against a SHA-256
recorded in a small document next to them (the dataset manifest, a model's
``config.json``). This module makes those small documents trustworthy too:

- a *sealed JSON* document holds ``"sha256": <hex>``, the SHA-256 of its
  canonical JSON (sorted keys, no spaces) without that key. A flipped byte, a
  hand edit or a torn copy fails :func:`read_sealed_json` with one line.
- a *sealed YAML* config starts with the line ``# sha256: <hex>``, the SHA-256
  of the text after that line. Unsealed YAML (a preset a user wrote) is read
  as usual; only files simlab wrote are sealed and checked.
- a *digest record* (:func:`write_file_digests` / :func:`verify_file_digests`) is a sealed JSON
  document listing the size and SHA-256 of files written by other libraries in their own
  formats (SB3's zip of torch pickles, accelerate's ``save_state`` directory). It is written
  after those files, so a save that was interrupted has no record; every listed file is checked
  before any of them is handed to the library that unpickles it.

Written by hand (not a library) because the check must cover the document's
own bytes and no maintained package does that for JSON/YAML in a few lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from simlab.errors import SimlabError

SEAL_KEY = "sha256"
YAML_SEAL_PREFIX = "# sha256: "


def _digest(obj: dict[str, Any]) -> str:
    body = {k: v for k, v in obj.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` (JSON types) with its ``sha256`` seal."""
    out = {k: v for k, v in obj.items() if k != SEAL_KEY}
    out[SEAL_KEY] = _digest(out)
    return out


def check_seal(obj: Any, path: str | os.PathLike[str], error: type[SimlabError], what: str) -> dict[str, Any]:
    """``obj`` if it is a mapping whose seal matches; ``error`` naming ``path`` otherwise."""
    if not isinstance(obj, dict):
        raise error(f"{path}: not a simlab {what} (not a JSON object)")
    if SEAL_KEY not in obj:
        raise error(f"{path}: {what} has no sha256 seal (written by an older simlab, or not by simlab)")
    try:
        ok = obj[SEAL_KEY] == _digest(obj)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise error(f"{path}: {what} checksum mismatch (edited by hand or corrupt)")
    return obj


def write_sealed_json(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """Write ``obj`` sealed, as indented JSON, atomically."""
    from simlab.data import write_json_atomic

    write_json_atomic(path, seal(obj))


def read_sealed_json(path: str | os.PathLike[str], error: type[SimlabError], what: str) -> dict[str, Any]:
    """Read a sealed JSON document; ``error`` with one line when missing, unreadable or not intact."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: missing {what}")
    try:
        obj = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{p}: {what} is not valid JSON ({e})") from None
    except OSError as e:
        raise error(f"{p}: cannot read {what} ({e.strerror or e})") from None
    return check_seal(obj, p, error, what)


def seal_yaml(text: str) -> str:
    """YAML text with a first line ``# sha256: <hex of the rest>``."""
    return f"{YAML_SEAL_PREFIX}{hashlib.sha256(text.encode()).hexdigest()}\n{text}"


def unseal_yaml(raw: bytes, path: str | os.PathLike[str], error: type[SimlabError],
                required: bool = False) -> str:
    """The YAML text of ``raw`` after checking its seal (unsealed text passes unless ``required``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e})") from None
    first, _, rest = text.partition("\n")
    if first.startswith(YAML_SEAL_PREFIX):
        if hashlib.sha256(rest.encode()).hexdigest() != first[len(YAML_SEAL_PREFIX):].strip():
            raise error(f"{path}: checksum mismatch (edited by hand or corrupt)")
        return rest
    if required or first.startswith("# sha"):
        raise error(f"{path}: no valid sha256 seal line (written by an older simlab, or corrupt)")
    return text


# ---- digest records of checkpoint files ----------------------------------------------------------
DIGEST_RECORD = "files.sha256.json"
"""File name of a directory's digest record (:func:`write_dir_digests`)."""
DIGEST_KIND = "simlab.file_digests"


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _files_under(root: Path, skip: Path) -> list[Path]:
    """Every regular file below ``root`` (recursively, sorted), except ``skip``."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = Path(dirpath) / name
            if p != skip:
                out.append(p)
    return out


def write_file_digests(record: str | os.PathLike[str], paths: list[Path] | tuple[Path, ...]) -> Path:
    """Write the sealed digest record ``record`` of ``paths`` (files below ``record``'s directory).

    The record maps each path, relative to the record's directory in POSIX form, to its size in
    bytes and SHA-256. It is written atomically; call it after the files are complete, so a
    record's existence means the save finished. Returns ``record``.
    """
    rec = Path(record)
    base = rec.parent.absolute()
    files: dict[str, dict[str, Any]] = {}
    for p in paths:
        p = Path(p)
        rel = p.absolute().relative_to(base).as_posix()
        files[rel] = {"bytes": p.stat().st_size, "sha256": _sha256_of(p)}
    write_sealed_json(rec, {"kind": DIGEST_KIND, "format_version": 1, "files": files})
    return rec


def verify_file_digests(record: str | os.PathLike[str], error: type[SimlabError],
                        what: str = "checkpoint") -> list[Path]:
    """Check every file a digest record lists; returns their paths.

    Checked, each failure raising ``error`` with one line that names the file: the record
    exists (``what`` has no integrity record otherwise: written by an older simlab, or its save
    was interrupted), is sealed and well formed (relative paths that stay below its directory),
    and each listed file exists with the recorded size (truncated or extended otherwise) and
    SHA-256 (corrupt or modified otherwise).
    """
    rec = Path(record)
    if not rec.is_file():
        raise error(f"{rec.parent}: {what} has no integrity record ({rec.name}; written by an older "
                    f"simlab, or its save was interrupted)")
    doc = read_sealed_json(rec, error, f"{what} integrity record")
    files = doc.get("files")
    if doc.get("kind") != DIGEST_KIND or not isinstance(files, dict):
        raise error(f"{rec}: not a simlab integrity record")
    out = []
    for rel, info in sorted(files.items()):
        parts = Path(rel).parts
        if (not isinstance(info, dict) or not isinstance(info.get("bytes"), int)
                or not isinstance(info.get("sha256"), str) or not parts or Path(rel).is_absolute()
                or ".." in parts):
            raise error(f"{rec}: malformed entry {rel!r} in the {what} integrity record")
        p = rec.parent / rel
        if not p.is_file():
            raise error(f"{p}: missing from the {what} (listed in its integrity record)")
        size = p.stat().st_size
        if size != info["bytes"]:
            raise error(f"{p}: {size} bytes, the {what} integrity record says {info['bytes']} "
                        f"(truncated or modified)")
        if _sha256_of(p) != info["sha256"]:
            raise error(f"{p}: checksum differs from the {what} integrity record (corrupt or modified)")
        out.append(p)
    return out


def write_dir_digests(root: str | os.PathLike[str]) -> Path:
    """Write ``root/files.sha256.json``: the digest record of every file below ``root``."""
    root = Path(root)
    rec = root / DIGEST_RECORD
    return write_file_digests(rec, _files_under(root, rec))


def verify_dir_digests(root: str | os.PathLike[str], error: type[SimlabError], what: str = "checkpoint") -> None:
    """Check a directory against its ``files.sha256.json`` (:func:`verify_file_digests`), and that
    it holds no file the record does not list (a library would read it unchecked)."""
    root = Path(root)
    rec = root / DIGEST_RECORD
    listed = {p.absolute() for p in verify_file_digests(rec, error, what)}
    for p in _files_under(root, rec):
        if p.absolute() not in listed:
            raise error(f"{p}: not listed in the {what} integrity record (added after the save)")
