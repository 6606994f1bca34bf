"""``SimlabModelMixin``: the diffusers base class of simlab's torch models (ConvVAE, MDN-RNN).

A subclass is a diffusers ``ModelMixin`` + ``ConfigMixin``: its constructor
arguments are registered with ``register_to_config`` and ``config.json`` holds
them, next to ``diffusion_pytorch_model.safetensors`` (diffusers' layout, so
diffusers' own ``ModelMixin.from_pretrained(dir, local_files_only=True)``
rebuilds the model too). Saving and loading go through simlab's one format
implementation, :mod:`simlab.world_models.base`, which adds what diffusers does
not check: atomic writes (weights first, ``config.json`` last), a sealed
``config.json`` with the weights' SHA-256, one-line
:class:`~simlab.errors.CheckpointError` naming the file for anything missing,
truncated, corrupt or mismatched, never the network, and the reading of
directories in simlab's earlier layout (format version 1).

A subclass:

- sets :attr:`SimlabModelMixin.config_class`, a dataclass (JSON-typed fields, validated in
  ``__post_init__``);
- takes ``config`` (an instance) as its first argument and the fields as keyword arguments
  named in its signature (diffusers builds models from the signature), and calls
  :meth:`SimlabModelMixin._set_config` first thing after ``super().__init__()``;
- reads its typed config as ``self.config`` (the dataclass; diffusers' own dict is
  ``self._internal_dict``).

Importing this module imports diffusers' model base (about 2 s on a 2-core CPU, mostly
``torch._dynamo``); ``import simlab`` does not import it. diffusers is the ``diffusion`` extra;
the dropout world model is part of the main job, whose quick start installs only the ``torch``
extra. Without diffusers the same class is built on a small stand-in (``nn.Module`` plus
``register_to_config`` keeping the fields): saving and loading are simlab's own in both cases,
so the files, the weights and every number are identical; only ``isinstance(m, ModelMixin)``
and diffusers' own loader need diffusers (:data:`HAS_DIFFUSERS`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from typing_extensions import Self

from simlab.errors import CheckpointError, ConfigError
from simlab.world_models.base import (
    CONFIG_NAME,
    check_state,
    load_model_dir,
    resolve_device,
    save_model_dir,
)

try:
    from diffusers.configuration_utils import ConfigMixin
    from diffusers.models.modeling_utils import ModelMixin

    HAS_DIFFUSERS = True
    """True when the base classes are diffusers' own."""
except ImportError:  # the `torch` extra alone: the same files through a plain torch base
    HAS_DIFFUSERS = False

    class ModelMixin(torch.nn.Module):  # type: ignore[no-redef]
        """Stand-in for diffusers' ``ModelMixin`` when diffusers is not installed."""

    class ConfigMixin:  # type: ignore[no-redef]
        """Stand-in for diffusers' ``ConfigMixin``: ``register_to_config`` keeps the fields."""

        config_name: str | None = None

        def register_to_config(self, **kwargs: Any) -> None:
            self._internal_dict = {**getattr(self, "_internal_dict", {}), **kwargs}


def make_config(config_class: type, config: Any, fields: dict[str, Any]) -> Any:
    """A ``config_class`` instance from ``config`` or from ``fields`` (keyword arguments; None = default).

    ConfigError when both are given, for unknown field names, or when ``config`` has another type.
    """
    given = {k: v for k, v in fields.items() if v is not None}
    if config is not None and given:
        raise ConfigError(f"pass either a {config_class.__name__} or its fields as keywords, not both")
    if config is None:
        try:
            return config_class(**given)
        except TypeError as e:
            raise ConfigError(f"{config_class.__name__}: {e}") from None
    if not isinstance(config, config_class):
        raise ConfigError(f"expected a {config_class.__name__}, got {type(config).__name__}")
    return config


class SimlabModelMixin(ModelMixin, ConfigMixin):
    """diffusers model base with simlab's typed config and checked ``save_pretrained`` / ``from_pretrained``."""

    config_name = CONFIG_NAME
    config_class: ClassVar[type]
    """The typed config (a dataclass) of the subclass."""

    def _set_config(self, config: Any) -> None:
        """Keep ``config`` (a validated :attr:`config_class`) and register its fields with diffusers."""
        self._typed_config = config
        self.register_to_config(**dataclasses.asdict(config))

    @property
    def config(self) -> Any:  # type: ignore[override]
        """The typed config (an instance of :attr:`config_class`)."""
        return self._typed_config

    def save_pretrained(self, path: str | Path, **_: Any) -> Path:  # type: ignore[override]
        """Write ``path/diffusion_pytorch_model.safetensors`` then ``path/config.json``; returns ``path``.

        Each file is replaced atomically and ``config.json`` comes last, so a complete
        ``config.json`` means complete weights (its ``_weights_sha256`` says which).
        Extra diffusers keywords (``safe_serialization``...) are accepted and ignored.
        """
        extra = {}
        if HAS_DIFFUSERS:
            import diffusers

            extra["diffusers_version"] = diffusers.__version__
        return save_model_dir(path, type(self).__name__, dataclasses.asdict(self.config), self.state_dict(),
                              extra=extra)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",  # type: ignore[override]
                        **_: Any) -> Self:
        """Rebuild the model saved in ``path`` (format 2, or simlab's format 1) onto ``device``, in eval mode.

        Local files only (extra diffusers keywords such as ``local_files_only`` are accepted and
        ignored: nothing is ever downloaded).

        Raises:
            CheckpointError: the directory, ``config.json`` or the weights are missing, unreadable,
                corrupt, of another class or a newer format, or do not match each other.
            ConfigError: ``device`` is invalid or unavailable.
        """
        dev = resolve_device(device)
        saved = load_model_dir(path, (cls.__name__,), "world-model module")
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(saved.fields) - known)
        if unknown:
            raise CheckpointError(f"{saved.config_path}: unknown config key(s) {', '.join(unknown)} for "
                                  f"{cls.config_class.__name__}")
        try:
            model = cls(cls.config_class(**saved.fields))
        except (ConfigError, TypeError, ValueError) as e:
            raise CheckpointError(f"{saved.config_path}: bad config ({e})") from None
        check_state(saved.weights_path, model, saved.tensors, f"{cls.__name__} described in {CONFIG_NAME}")
        model.load_state_dict(saved.tensors)
        return model.to(dev).eval()
