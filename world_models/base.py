"""What every world-model module shares: diffusers-style ``save_pretrained`` / ``from_pretrained``.

A saved module is a directory::

    DIR/config.json        {"class", "simlab_version", "format_version", "config": {...},
                            "weights_sha256"}
    DIR/model.safetensors  the module's ``state_dict`` (CPU tensors)

``config`` holds the fields of the module's typed config (a dataclass, the
class attribute ``config_class``); :meth:`PretrainedMixin.from_pretrained`
rebuilds the module from it and loads the weights. Weights are written first
and ``config.json`` last, each atomically (:func:`simlab.data.atomic_path`),
so a complete ``config.json`` means complete weights. Loading never guesses:
a missing, truncated, corrupt or mismatched file raises
:class:`simlab.errors.CheckpointError` with one line naming the file.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from typing_extensions import Self

from simlab.data import atomic_path, sha256_file
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import read_sealed_json, write_sealed_json

FORMAT_VERSION = 1
"""Version of the saved-module layout; a newer one is refused with an upgrade hint."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

if TYPE_CHECKING:
    from typing_extensions import Self


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
    """Read and check a saved ``config.json``-like file; CheckpointError naming it otherwise."""
    if not path.exists():
        raise CheckpointError(f"{path}: missing (not a saved {kind}, or saving was interrupted)")
    doc = read_sealed_json(path, CheckpointError, f"saved {kind} config")
    if "format_version" not in doc or "class" not in doc:
        raise CheckpointError(f"{path}: not a simlab {kind} config (no format_version/class)")
    fv = doc["format_version"]
    if not isinstance(fv, int) or isinstance(fv, bool) or fv < 1:
        raise CheckpointError(f"{path}: bad format_version {fv!r}")
    if fv > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {fv} is newer than this simlab reads "
                              f"({FORMAT_VERSION}); upgrade simlab")
    if doc["class"] != expected_class:
        raise CheckpointError(f"{path}: holds a {doc['class']!r}, expected {expected_class!r}")
    return doc


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], cls_name: str) -> str:
    """Write ``tensors`` (moved to CPU) to a safetensors file atomically; returns its sha256."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "class": cls_name})
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


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built from one config dataclass.

    A subclass sets the class attribute :attr:`config_class` (a dataclass whose
    fields are JSON types), keeps its instance as ``self.config`` and takes it
    as the first constructor argument: ``Cls(config)`` must rebuild the module.
    """

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path`` (created); returns it."""
        import simlab

        assert isinstance(self, torch.nn.Module)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        name = type(self).__name__
        digest = save_tensors(path / WEIGHTS_NAME, self.state_dict(), name)
        doc = {
            "class": name,
            "simlab_version": simlab.__version__,
            "format_version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.config),
            "weights_sha256": digest,
        }
        write_sealed_json(path / CONFIG_NAME, doc)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> Self:
        """Rebuild the module saved in ``path`` and load its weights onto ``device`` (eval mode).

        Raises:
            CheckpointError: the directory, ``config.json`` or ``model.safetensors`` is
                missing, unreadable, of another class or format, or does not match.
            ConfigError: ``device`` is invalid or unavailable.
        """
        dev = resolve_device(device)
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such saved-model directory")
        cfg_path, w_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        doc = read_json_doc(cfg_path, cls.__name__, "world-model module")
        fields = doc.get("config")
        if not isinstance(fields, dict):
            raise CheckpointError(f"{cfg_path}: no 'config' mapping")
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise CheckpointError(f"{cfg_path}: unknown config key(s) {', '.join(unknown)} for "
                                  f"{cls.config_class.__name__}")
        try:
            module = cls(cls.config_class(**fields))  # type: ignore[call-arg]
        except (ConfigError, TypeError, ValueError) as e:
            raise CheckpointError(f"{cfg_path}: bad config ({e})") from None
        assert isinstance(module, torch.nn.Module)
        digest = doc.get("weights_sha256")
        state = load_tensors(w_path, digest if isinstance(digest, str) else None, CONFIG_NAME)
        check_state(w_path, module, state, f"{cls.__name__} described in {CONFIG_NAME}")
        module.load_state_dict(state)
        return module.to(dev).eval()  # type: ignore[return-value]
