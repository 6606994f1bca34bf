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
