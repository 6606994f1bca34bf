"""The dropout world model: ConvVAE + MDN-RNN + encoded real first frames, saved as one directory.

Layout of a saved model::

    DIR/world_model.json     class, simlab version, format version, n_actions, action_space
                             ({"type": "Discrete", "n"} or {"type": "Box", "shape", "dtype",
                             "low", "high"}), env_id, z_dim, hidden, number of start latents,
                             sha256 of start_z
    DIR/vae/                 ConvVAE (config.json + diffusion_pytorch_model.safetensors)
    DIR/mdnrnn/              MDNRNN  (config.json + diffusion_pytorch_model.safetensors)
    DIR/start_z.safetensors  {"start_z": (M, z_dim) float32, "start_h", "start_c": (M, hidden)}

``world_model.json`` is written last, so its presence means a complete save.
Its ``format_version`` is 2 (:data:`simlab.world_models.base.FORMAT_VERSION`): the modules
are diffusers models (:mod:`simlab.world_models.modeling`). Directories of format
version 1 (modules as ``config.json`` + ``model.safetensors``) still load, and
``python -m simlab.world_models.convert DIR`` rewrites them in the current layout.
Files saved before ``action_space`` existed (no such key) load as ``Discrete(n_actions)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from simlab.actions import action_space_from_json, action_space_to_json, check_box
from simlab.errors import CheckpointError, ConfigError
from simlab.world_models.base import (
    FORMAT_VERSION,
    load_tensors,
    read_json_doc,
    resolve_device,
    save_tensors,
)
from simlab.world_models.dropout.mdnrnn import MDNRNN
from simlab.world_models.dropout.vae import ConvVAE

if TYPE_CHECKING:
    from simlab.world_models.dropout.dream import DreamEnv, DreamVecEnv

MODEL_JSON = "world_model.json"
START_Z_NAME = "start_z.safetensors"


class DropoutWorldModel(nn.Module):
    """A learned simulator: ConvVAE (frames <-> z) + MDN-RNN (dynamics) + start latents.

    Args:
        vae: the :class:`ConvVAE`.
        rnn: the :class:`MDNRNN` (same ``z_dim``).
        start_z: ``(M, z_dim)`` latents of real frames; a dream episode starts from one of
            them, drawn uniformly (World Models: the first frames of real episodes).
        start_state: optional ``(h, c)``, each ``(M, hidden)``: the MDN-RNN's state before
            ``start_z[i]`` when it was taken from the middle of a real episode (burn-in, as in
            DIAMOND and Dreamer: the dream continues a real situation, e.g. with fireballs in
            flight); None (default): zeros, a dream starts like a real episode.
        n_actions: discrete actions (default and must equal ``rnn.config.n_actions``; None or
            0 for a continuous model).
        env_id: the real env the model was trained on (metadata, e.g. ``"simlab/Dodge-v0"``).
        action_space: the real env's action space. Discrete models: None or
            ``Discrete(n_actions)`` (default). Continuous models (``rnn.continuous``): required,
            a ``Box(low, high, (action_dim,))`` with finite bounds (e.g. CarRacing's
            ``Box([-1, 0, 0], [1, 1, 1])``); the dreams expose it and refuse actions outside it.

    Attributes:
        action_space: ``Discrete(n)`` or float32 ``Box`` (see above).
        continuous: True for Box actions; ``action_dim``: their size (0 when discrete).
    """

    def __init__(self, vae: ConvVAE, rnn: MDNRNN, start_z: torch.Tensor | np.ndarray,
                 n_actions: int | None = None, env_id: str | None = None,
                 action_space: spaces.Space | None = None,
                 start_state: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        if not isinstance(vae, ConvVAE) or not isinstance(rnn, MDNRNN):
            raise ConfigError(f"DropoutWorldModel needs a ConvVAE and an MDNRNN, got "
                              f"{type(vae).__name__} and {type(rnn).__name__}")
        if vae.z_dim != rnn.z_dim:
            raise ConfigError(f"ConvVAE z_dim {vae.z_dim} != MDNRNN z_dim {rnn.z_dim}")
        n_actions = rnn.n_actions if n_actions is None else int(n_actions)
        if n_actions != rnn.n_actions:
            raise ConfigError(f"n_actions {n_actions} != the MDNRNN's {rnn.n_actions}"
                              + (" (a continuous model has n_actions 0)" if rnn.continuous else ""))
        space = self._check_space(rnn, action_space)
        sz = torch.as_tensor(np.asarray(start_z) if not isinstance(start_z, torch.Tensor) else start_z)
        sz = sz.detach().to(torch.float32)
        if sz.ndim != 2 or sz.shape[0] < 1 or sz.shape[1] != rnn.z_dim:
            raise ConfigError(f"start_z must have shape (M >= 1, {rnn.z_dim}), got {tuple(sz.shape)}")
        if not torch.isfinite(sz).all():
            raise ConfigError("start_z has NaN or inf")
        self.vae, self.rnn = vae, rnn
        self.register_buffer("start_z", sz.to(rnn.device).clone())
        if start_state is None:
            hc = torch.zeros(2, sz.shape[0], rnn.hidden)
        else:
            hc = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in start_state])
            if tuple(hc.shape) != (2, sz.shape[0], rnn.hidden) or not torch.isfinite(hc).all():
                raise ConfigError(f"start_state must be two finite ({sz.shape[0]}, {rnn.hidden}) tensors, "
                                  f"got {tuple(hc.shape)}")
        self.register_buffer("start_h", hc[0].to(rnn.device).clone())
        self.register_buffer("start_c", hc[1].to(rnn.device).clone())
        self.n_actions = n_actions
        self.action_space = space
        self.env_id = env_id

    @staticmethod
    def _check_space(rnn: MDNRNN, action_space: Any) -> spaces.Space:
        if not rnn.continuous:
            if action_space is None:
                return spaces.Discrete(rnn.n_actions)
            if not isinstance(action_space, spaces.Discrete) or int(action_space.n) != rnn.n_actions:
                raise ConfigError(f"action_space {action_space!r} does not fit the MDN-RNN's "
                                  f"Discrete({rnn.n_actions}) actions")
            return spaces.Discrete(rnn.n_actions)
        if action_space is None:
            raise ConfigError(f"a continuous MDN-RNN (action_dim {rnn.action_dim}) needs "
                              "action_space=gymnasium.spaces.Box(low, high) with finite bounds")
        box = check_box(action_space, "DropoutWorldModel action_space")
        if box.shape != (rnn.action_dim,):
            raise ConfigError(f"action_space shape {box.shape} != the MDN-RNN's action_dim ({rnn.action_dim},)")
        return box

    @property
    def continuous(self) -> bool:
        """True when actions are float vectors in :attr:`action_space` (a Box)."""
        return self.rnn.continuous

    @property
    def action_dim(self) -> int:
        """Size of a continuous action (0 for a discrete model)."""
        return self.rnn.action_dim

    @property
    def z_dim(self) -> int:
        return self.rnn.z_dim

    @property
    def hidden(self) -> int:
        return self.rnn.hidden

    @property
    def obs_dim(self) -> int:
        """Size of a dream observation ``[z, h]``."""
        return self.rnn.z_dim + self.rnn.hidden

    @property
    def dropout(self) -> float:
        """The MDN-RNN's training dropout rate (the dream's default)."""
        return self.rnn.config.dropout

    def as_env(self, **kw: Any) -> DreamEnv:
        """A single :class:`~simlab.world_models.dropout.dream.DreamEnv` (keywords as its constructor's)."""
        from simlab.world_models.dropout.dream import DreamEnv

        return DreamEnv(self, **kw)

    def as_vec_env(self, num_envs: int, **kw: Any) -> DreamVecEnv:
        """A batched :class:`~simlab.world_models.dropout.dream.DreamVecEnv` of ``num_envs`` dreams."""
        from simlab.world_models.dropout.dream import DreamVecEnv

        return DreamVecEnv(self, num_envs, **kw)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``vae/``, ``mdnrnn/``, ``start_z.safetensors`` and (last) ``world_model.json``; returns ``path``."""
        import simlab
        from simlab.integrity import write_sealed_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(path / "vae")
        self.rnn.save_pretrained(path / "mdnrnn")
        digest = save_tensors(path / START_Z_NAME, {"start_z": self.start_z, "start_h": self.start_h,
                                                    "start_c": self.start_c}, type(self).__name__)
        doc = {
            "class": type(self).__name__,
            "simlab_version": simlab.__version__,
            "format_version": FORMAT_VERSION,
            "n_actions": self.n_actions,
            "action_space": action_space_to_json(self.action_space),
            "env_id": self.env_id,
            "z_dim": self.z_dim,
            "hidden": self.hidden,
            "num_start_z": int(self.start_z.shape[0]),
            "start_z_sha256": digest,
        }
        write_sealed_json(path / MODEL_JSON, doc)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> DropoutWorldModel:
        """Load a saved world model (format 2 or 1) onto ``device``; CheckpointError naming the bad file otherwise."""
        dev = resolve_device(device)
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such world-model directory")
        jpath = path / MODEL_JSON
        doc = read_json_doc(jpath, cls.__name__, "dropout world model")
        vae = ConvVAE.from_pretrained(path / "vae", device=dev)
        rnn = MDNRNN.from_pretrained(path / "mdnrnn", device=dev)
        digest = doc.get("start_z_sha256")
        tensors = load_tensors(path / START_Z_NAME, digest if isinstance(digest, str) else None, MODEL_JSON)
        if set(tensors) not in ({"start_z"}, {"start_z", "start_h", "start_c"}):  # start_z alone: older files
            raise CheckpointError(f"{path / START_Z_NAME}: expected tensors 'start_z' (and 'start_h', 'start_c'), "
                                  f"got {sorted(tensors)}")
        for key, want in (("z_dim", rnn.z_dim), ("hidden", rnn.hidden), ("n_actions", rnn.n_actions)):
            if key in doc and doc[key] != want:
                raise CheckpointError(f"{jpath}: {key} {doc[key]!r} does not match the saved MDN-RNN ({want})")
        try:
            space = doc.get("action_space")  # absent in files saved before continuous actions: discrete
            space = None if space is None else action_space_from_json(space)
            state = (tensors["start_h"], tensors["start_c"]) if "start_h" in tensors else None
            model = cls(vae, rnn, tensors["start_z"], n_actions=doc.get("n_actions"), env_id=doc.get("env_id"),
                        action_space=space, start_state=state)
        except ConfigError as e:
            raise CheckpointError(f"{path}: inconsistent world model ({e})") from None
        return model.to(dev).eval()

    def __repr__(self) -> str:
        return (f"DropoutWorldModel(env_id={self.env_id!r}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"action_space={self.action_space}, dropout={self.dropout}, start_z={tuple(self.start_z.shape)})")
