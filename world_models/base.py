"""The one saved-model format of simlab, shared by every world-model module and the dream controllers.

A saved model is a directory in diffusers' layout (what ``ModelMixin.save_pretrained`` writes)::

    DIR/config.json                          the constructor arguments, plus simlab's private keys
    DIR/diffusion_pytorch_model.safetensors  the tensors (CPU), safetensors metadata {"format": "pt"}

``config.json`` holds the constructor arguments as public keys (for a diffusers
model: its registered config, so diffusers' own ``from_pretrained`` reads the
directory too) and simlab's bookkeeping as private keys, which diffusers keeps
out of the constructor::

    "_class_name"              the class that wrote it (diffusers' own key)
    "_simlab_format_version"   FORMAT_VERSION (2); a newer one is refused with an upgrade hint
    "_simlab_version"          the simlab that wrote it
    "_weights_sha256"          SHA-256 of the weights file, checked before it is read
    "_meta", ...               optional extras (a policy's metadata, spaces, diffusers' version)
    "_simlab_sha256"           seal: SHA-256 of the canonical JSON of every other key

:func:`save_model_dir` writes the weights first and ``config.json`` last, each
atomically (:func:`simlab.data.atomic_path`), so a complete ``config.json``
means complete weights. :func:`load_model_dir` never guesses: a missing,
truncated, corrupt, edited or mismatched file raises
:class:`simlab.errors.CheckpointError` with one line naming the file. It also
reads format version 1, the layout simlab wrote before (sealed ``config.json``
with ``class``/``format_version``/``config`` or ``network`` + ``model.safetensors``),
and :func:`convert_v1_dir` rewrites such a directory in the current layout.

The diffusers base class of simlab's torch models, built on these two functions,
is :class:`simlab.world_models.modeling.SimlabModelMixin` (a separate module, so
that this one, which policies import, never imports diffusers).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from simlab.data import atomic_path, sha256_file, write_json_atomic
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import read_sealed_json, write_sealed_json

FORMAT_VERSION = 2
"""Version of the saved-model layout (model directories and ``world_model.json``); 1 is still read."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
"""diffusers' ``SAFETENSORS_WEIGHTS_NAME``."""
V1_WEIGHTS_NAME = "model.safetensors"
"""Weights file of format version 1."""
SEAL_KEY = "_simlab_sha256"
BOOKKEEPING = ("_class_name", "_simlab_format_version", "_simlab_version", "_weights_sha256", SEAL_KEY)
"""Private keys every current ``config.json`` carries."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` of ``device``; ConfigError for a malformed name or an unavailable CUDA device."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"invalid device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {device!r}: simlab runs world models on cpu or cuda")
    return dev


def check_rate(rate: Any, what: str = "dropout") -> float:
    """A dropout rate as float in ``[0, 1)``; ConfigError otherwise."""
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number in [0, 1), got {rate!r}") from None
    if not (math.isfinite(r) and 0.0 <= r < 1.0):
        raise ConfigError(f"{what} must be in [0, 1), got {rate!r}")
    return r


def read_json_doc(path: Path, expected_class: str, kind: str) -> dict[str, Any]:
    """Read and check a sealed simlab JSON document with ``class`` and ``format_version`` keys
    (``world_model.json``, and ``config.json`` of format version 1); CheckpointError naming it otherwise."""
    if not path.exists():
        raise CheckpointError(f"{path}: missing (not a saved {kind}, or saving was interrupted)")
    doc = read_sealed_json(path, CheckpointError, f"saved {kind} config")
    if "format_version" not in doc or "class" not in doc:
        raise CheckpointError(f"{path}: not a simlab {kind} config (no format_version/class)")
    _check_version(path, doc["format_version"])
    if doc["class"] != expected_class:
        raise CheckpointError(f"{path}: holds a {doc['class']!r}, expected {expected_class!r}")
    return doc


def _check_version(path: Path, fv: Any) -> int:
    if not isinstance(fv, int) or isinstance(fv, bool) or fv < 1:
        raise CheckpointError(f"{path}: bad format_version {fv!r}")
    if fv > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {fv} is newer than this simlab reads "
                              f"({FORMAT_VERSION}); upgrade simlab")
    return fv


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], cls_name: str | None = None) -> str:
    """Write ``tensors`` (moved to CPU) to a safetensors file atomically; returns its sha256.

    The file's metadata is diffusers' ``{"format": "pt"}`` (plus ``class`` when ``cls_name`` is given).
    """
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": "pt"} if cls_name is None else {"format": "pt", "class": cls_name}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return sha256_file(path)


def load_tensors(path: Path, sha256: str | None, ref: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file (CPU), checking its sha256 against ``ref``'s record when given."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise CheckpointError(f"{path}: missing weights file")
    if sha256 is not None and sha256_file(path) != sha256:
        raise CheckpointError(f"{path}: checksum differs from the one in {ref} (corrupt or truncated)")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({msg})") from None


def check_state(path: Path, module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """CheckpointError naming ``path`` when ``state`` does not have ``module``'s keys, shapes, dtypes."""
    want = {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}
    got = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    if want != got:
        bad = sorted(want.keys() ^ got.keys()) or sorted(k for k in want if want[k] != got[k])
        raise CheckpointError(f"{path}: weights do not match the {what} (first mismatches: "
                              f"{', '.join(bad[:3])})")


# ---- the saved-model directory -------------------------------------------------------------------
def _seal_digest(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal_config(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``config.json`` document (JSON types) with a fresh ``_simlab_sha256`` seal."""
    out = {k: v for k, v in doc.items() if k != SEAL_KEY}
    out[SEAL_KEY] = _seal_digest(out)
    return out


@dataclass
class SavedModel:
    """What :func:`load_model_dir` read from a saved-model directory (either format version)."""

    class_name: str
    """The class that wrote it."""
    fields: dict[str, Any]
    """Constructor arguments (format 2: the public keys of ``config.json``; format 1: its
    ``config`` or ``network`` mapping)."""
    tensors: dict[str, torch.Tensor]
    """The weights, on CPU, checked against the recorded SHA-256."""
    config_path: Path
    weights_path: Path
    format_version: int
    """1 (old layout) or 2."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Optional extras without their underscore (``meta``, ``observation_space``, ``action_space``...)."""
    simlab_version: str | None = None


def save_model_dir(path: str | Path, class_name: str, fields: dict[str, Any], tensors: dict[str, torch.Tensor],
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``path/diffusion_pytorch_model.safetensors`` then ``path/config.json`` (atomic; config last).

    Args:
        path: the directory (created; other files in it are left alone).
        class_name: stored as ``_class_name``; the loader checks it.
        fields: constructor arguments (JSON types, names without a leading underscore).
        tensors: the weights (moved to CPU).
        extra: optional extras, stored as private keys (``{"meta": {...}}`` -> ``"_meta"``).

    Raises:
        ConfigError: a field name starting with ``_``, or values that are not JSON-serialisable.
    """
    import simlab

    bad = sorted(k for k in fields if k.startswith("_"))
    if bad:
        raise ConfigError(f"{class_name}: constructor argument names must not start with '_' ({', '.join(bad)})")
    priv = {f"_{k}": v for k, v in (extra or {}).items()}
    clash = sorted(set(priv) & set(BOOKKEEPING))
    if clash:
        raise ConfigError(f"{class_name}: extra keys {', '.join(clash)} are reserved")
    doc: dict[str, Any] = {**fields, **priv, "_class_name": class_name,
                           "_simlab_format_version": FORMAT_VERSION, "_simlab_version": simlab.__version__}
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{class_name}: config and metadata must be JSON-serialisable ({e})") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    doc["_weights_sha256"] = save_tensors(path / WEIGHTS_NAME, tensors)
    write_json_atomic(path / CONFIG_NAME, seal_config(doc))
    return path


def _read_config(cfg_path: Path, kind: str) -> dict[str, Any]:
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing (not a saved {kind}, or saving was interrupted)")
    try:
        doc = json.loads(cfg_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: {kind} config is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{cfg_path}: not a simlab {kind} config (not a JSON object)")
    return doc


def load_model_dir(path: str | Path, classes: Collection[str], kind: str = "model") -> SavedModel:
    """Read a saved-model directory of format version 2 or 1 (detected from ``config.json``).

    Args:
        path: the directory.
        classes: class names accepted (``_class_name``, or ``class`` in format 1).
        kind: what the caller loads, for messages ("world-model module", "controller").

    Raises:
        CheckpointError: (one line naming the file) no directory, a missing or invalid
            ``config.json``, a broken seal, a newer format, another class, a missing weights
            file, a checksum mismatch or an unreadable safetensors file.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such saved {kind} directory")
    cfg_path = path / CONFIG_NAME
    doc = _read_config(cfg_path, kind)
    if "_class_name" not in doc and "format_version" in doc and "class" in doc:
        return _load_v1(path, doc, classes, kind)
    if "_simlab_format_version" not in doc or "_class_name" not in doc:
        raise CheckpointError(f"{cfg_path}: not a simlab {kind} config (no _simlab_format_version/_class_name)")
    if doc.get(SEAL_KEY) != _seal_digest(doc):
        raise CheckpointError(f"{cfg_path}: {kind} config checksum mismatch (edited by hand or corrupt)")
    fv = _check_version(cfg_path, doc["_simlab_format_version"])
    name = doc["_class_name"]
    if name not in classes:
        raise CheckpointError(f"{cfg_path}: holds a {name!r}, expected {' or '.join(map(repr, classes))}")
    digest = doc.get("_weights_sha256")
    if not isinstance(digest, str):
        raise CheckpointError(f"{cfg_path}: records no _weights_sha256, so the weights cannot be checked")
    w_path = path / WEIGHTS_NAME
    tensors = load_tensors(w_path, digest, CONFIG_NAME)
    fields = {k: v for k, v in doc.items() if not k.startswith("_")}
    extra = {k[1:]: v for k, v in doc.items() if k.startswith("_") and k not in BOOKKEEPING}
    return SavedModel(name, fields, tensors, cfg_path, w_path, fv, extra, doc.get("_simlab_version"))


def _load_v1(path: Path, doc: dict[str, Any], classes: Collection[str], kind: str) -> SavedModel:
    """Format version 1: sealed ``config.json`` (``class``, ``config`` or ``network``) + ``model.safetensors``."""
    cfg_path, w_path = path / CONFIG_NAME, path / V1_WEIGHTS_NAME
    doc = read_sealed_json(cfg_path, CheckpointError, f"saved {kind} config")  # checks the v1 seal
    fv = _check_version(cfg_path, doc["format_version"])
    if fv != 1:
        raise CheckpointError(f"{cfg_path}: format version {fv} in the layout of version 1")
    if doc["class"] not in classes:
        raise CheckpointError(f"{cfg_path}: holds a {doc['class']!r}, expected {' or '.join(map(repr, classes))}")
    fields = doc.get("config", doc.get("network"))
    if not isinstance(fields, dict):
        raise CheckpointError(f"{cfg_path}: no 'config' (or 'network') mapping")
    digest = doc.get("weights_sha256")
    tensors = load_tensors(w_path, digest if isinstance(digest, str) else None, CONFIG_NAME)
    extra = {k: doc[k] for k in ("meta", "observation_space", "action_space") if k in doc}
    return SavedModel(doc["class"], dict(fields), tensors, cfg_path, w_path, 1, extra, doc.get("simlab_version"))


def is_v1_dir(path: str | Path) -> bool:
    """True when ``path/config.json`` (or ``path/world_model.json``) is in format version 1's layout."""
    path = Path(path)
    for name in (CONFIG_NAME, "world_model.json"):
        try:
            doc = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format_version") == 1 and "class" in doc:
            return True
    return False


def convert_v1_dir(path: str | Path, classes: Collection[str], kind: str = "model") -> bool:
    """Rewrite a format-1 model directory in the current layout, bit-exactly; False if already current.

    Everything is read and checked first (as :func:`load_model_dir` does); then the new weights
    file is written, then ``config.json`` is replaced (atomically), then the old
    ``model.safetensors`` removed. An interruption at any point leaves a directory that loads:
    until ``config.json`` is replaced it is the old one, afterwards the new one.
    """
    path = Path(path)
    saved = load_model_dir(path, classes, kind)
    if saved.format_version != 1:
        return False
    save_model_dir(path, saved.class_name, saved.fields, saved.tensors, saved.extra)
    back = load_model_dir(path, classes, kind)  # paranoia: the new files hold the same tensors
    if back.tensors.keys() != saved.tensors.keys() or any(
            not torch.equal(back.tensors[k], v) or back.tensors[k].dtype != v.dtype for k, v in saved.tensors.items()):
        raise CheckpointError(f"{path / WEIGHTS_NAME}: converted weights differ from {saved.weights_path.name}")
    old = path / V1_WEIGHTS_NAME
    if old.exists():
        os.remove(old)
    return True


def rewrite_sealed_json(path: Path, updates: dict[str, Any]) -> None:
    """Replace keys of a sealed JSON document (read and checked first), atomically."""
    doc = read_sealed_json(path, CheckpointError, "simlab document")
    write_sealed_json(path, {**{k: v for k, v in doc.items() if k != "sha256"}, **updates})
