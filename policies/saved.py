"""The saved-policy format shared by every image policy in simlab (no pickles).

A saved policy is a directory::

    DIR/config.json        format version, class name, simlab version, observation and
                           action spaces, network config, sha256 of the weights, free metadata
    DIR/model.safetensors  the network's state_dict (float tensors, CPU)

The network is an :class:`ImpalaActor` (IMPALA-CNN encoder -> linear head over
the discrete actions): PPO exports the actor of its SB3 ``ActorCriticPolicy``
into it, behaviour cloning trains one directly, and both load back the same
way through :meth:`SavedPolicy.load`. Loading never guesses: a missing,
truncated or corrupt file, or a config that does not describe the weights,
raises :class:`simlab.errors.CheckpointError` with one line naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simlab.data import atomic_path, sha256_file
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import read_sealed_json, write_sealed_json
from simlab.policies.networks import ImpalaCNN

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class ImpalaActor(nn.Module):
    """IMPALA-CNN encoder + linear head: ``(B, H, W, C)`` uint8 images -> ``(B, n_actions)`` logits.

    Args:
        n_actions: number of discrete actions (Procgen: 15).
        in_channels: image channels (3).
        image_size: image side in pixels (64); images are square.
        depths: channels of the three IMPALA stacks.
        features_dim: width of the encoder's output (and the head's input).
    """

    def __init__(self, n_actions: int = 15, in_channels: int = 3, image_size: int = 64,
                 depths: tuple[int, ...] | list[int] = (16, 32, 32), features_dim: int = 256) -> None:
        super().__init__()
        self.n_actions = int(n_actions)
        self.in_channels = int(in_channels)
        self.image_size = int(image_size)
        self.depths = tuple(int(d) for d in depths)
        self.features_dim = int(features_dim)
        self.encoder = ImpalaCNN(self.in_channels, self.image_size, self.depths, self.features_dim,
                                 channels_last=True)
        self.head = nn.Linear(self.features_dim, self.n_actions)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON types): ``ImpalaActor(**actor.config)`` rebuilds it."""
        return {"n_actions": self.n_actions, "in_channels": self.in_channels, "image_size": self.image_size,
                "depths": list(self.depths), "features_dim": self.features_dim}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` uint8 (or float 0-255) -> ``(B, n_actions)`` logits."""
        return self.head(self.encoder(obs))


NETWORKS: dict[str, type[nn.Module]] = {"ImpalaActor": ImpalaActor}
"""Classes a saved policy may name in ``config.json``."""


def _spaces(net: ImpalaActor) -> tuple[dict[str, Any], dict[str, Any]]:
    obs = {"type": "Box", "shape": [net.image_size, net.image_size, net.in_channels], "dtype": "uint8",
           "low": 0, "high": 255}
    return obs, {"type": "Discrete", "n": net.n_actions}


def save_policy(path: str | Path, network: nn.Module, config: dict[str, Any] | None = None) -> Path:
    """Save ``network`` as a saved-policy directory; returns ``path``.

    Args:
        path: directory to write (created; existing files are replaced atomically,
            the weights first and ``config.json`` last, so a complete config means
            complete weights).
        network: an :class:`ImpalaActor`, or any module whose ``state_dict`` has
            exactly an ImpalaActor's keys and shapes (``encoder.*``, ``head.*``).
        config: optional dict. ``config["network"]`` gives the ImpalaActor arguments
            (required unless ``network`` is an ImpalaActor); every other key (trainer,
            env id, training config...) is stored as JSON metadata under ``"meta"``.

    Raises:
        ConfigError: the network does not match an ImpalaActor of that config, or the
            metadata is not JSON-serialisable.
    """
    from safetensors.torch import save_file

    import simlab

    config = dict(config or {})
    net_cfg = config.pop("network", None)
    if net_cfg is None:
        if not isinstance(network, ImpalaActor):
            raise ConfigError(f"save_policy: pass config['network'] (ImpalaActor arguments) for a "
                              f"{type(network).__name__}")
        net_cfg = network.config
    try:
        ref = ImpalaActor(**net_cfg)
    except TypeError as e:
        raise ConfigError(f"save_policy: bad network config {net_cfg!r} ({e})") from None
    state = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        missing = sorted(want.keys() - got.keys())[:3]
        extra = sorted(got.keys() - want.keys())[:3]
        shapes = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])[:3]
        raise ConfigError(f"save_policy: {type(network).__name__} is not an ImpalaActor{ref.config} "
                          f"(missing {missing}, unexpected {extra}, wrong shapes {shapes})")
    obs_space, act_space = _spaces(ref)
    meta = {k: v for k, v in config.items()}
    try:
        json.dumps(meta)
    except TypeError as e:
        raise ConfigError(f"save_policy: metadata must be JSON-serialisable ({e})") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "class": "ImpalaActor"})
    doc = {
        "format_version": FORMAT_VERSION,
        "class": "ImpalaActor",
        "simlab_version": simlab.__version__,
        "observation_space": obs_space,
        "action_space": act_space,
        "network": ref.config,
        "weights_sha256": sha256_file(path / WEIGHTS_NAME),
        "meta": meta,
    }
    write_sealed_json(path / CONFIG_NAME, doc)
    return path


def read_model_config(path: Path, classes: Any, what: str = "saved policy") -> dict[str, Any]:
    """Read and check ``path/config.json`` of any simlab saved model (policy, controller).

    CheckpointError (one line naming the file) for a missing directory or file, invalid
    JSON, a newer format, a class not in ``classes``, or no ``network`` config.
    """
    cfg_path = path / CONFIG_NAME
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such {what} directory")
    if not cfg_path.exists():
        raise CheckpointError(f"{cfg_path}: missing (not a {what}, or saving was interrupted)")
    doc = read_sealed_json(cfg_path, CheckpointError, f"{what} config")
    if "format_version" not in doc or "class" not in doc:
        raise CheckpointError(f"{cfg_path}: not a simlab {what} config (no format_version/class)")
    if not isinstance(doc["format_version"], int) or doc["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: format version {doc['format_version']!r} is newer than this "
                              f"simlab reads ({FORMAT_VERSION}); upgrade simlab")
    if doc["class"] not in classes:
        raise CheckpointError(f"{cfg_path}: unknown policy class {doc['class']!r}; "
                              f"known: {', '.join(classes)}")
    if not isinstance(doc.get("network"), dict):
        raise CheckpointError(f"{cfg_path}: no 'network' config")
    return doc


def sample_from_logits(logits: np.ndarray, deterministic: bool, rng: np.random.Generator) -> np.ndarray:
    """Actions ``(B,)`` int64: argmax of ``logits`` ``(B, A)``, or a softmax sample with ``rng``."""
    if deterministic:
        return logits.argmax(axis=1).astype(np.int64)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((len(p), 1))
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1).astype(np.int64)


def _read_config(path: Path) -> dict[str, Any]:
    return read_model_config(path, NETWORKS, "saved-policy")


class SavedPolicy:
    """A loaded (or wrapped) :class:`ImpalaActor` with the simlab ``Policy`` interface.

    ``act(obs)`` runs the network on CPU under ``torch.no_grad``:
    observations ``(B, H, W, C)`` uint8 -> actions ``(B,)`` int64 (argmax of the
    logits when ``deterministic``, else sampled with :attr:`rng`).
    """

    def __init__(self, network: ImpalaActor, meta: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.network = network.to("cpu").eval()
        self.meta = dict(meta or {})
        self.rng = np.random.default_rng(seed)

    @property
    def config(self) -> dict[str, Any]:
        """The network config (``ImpalaActor`` arguments)."""
        return self.network.config

    @classmethod
    def load(cls, path: str | Path) -> SavedPolicy:
        """Load a saved-policy directory; CheckpointError naming the file when anything is off.

        Checked: the sealed ``config.json`` (:func:`read_model_config`), the weights' SHA-256
        against the one it records (required), then the safetensors header and tensor shapes.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        doc = _read_config(path)
        cfg_path, w_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        try:
            net = NETWORKS[doc["class"]](**doc["network"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{cfg_path}: bad network config {doc['network']!r} ({e})") from None
        if not w_path.exists():
            raise CheckpointError(f"{w_path}: missing weights file")
        digest = doc.get("weights_sha256")
        if not isinstance(digest, str):  # save_policy always records it: the weights cannot be checked
            raise CheckpointError(f"{w_path}: {CONFIG_NAME} records no weights_sha256, so the weights "
                                  "cannot be checked (not written by save_policy)")
        if sha256_file(w_path) != digest:
            raise CheckpointError(f"{w_path}: checksum differs from {CONFIG_NAME} (corrupt or truncated)")
        try:
            state = load_file(str(w_path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{w_path}: not a readable safetensors file ({msg})") from None
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if want != got:
            bad = sorted(want.keys() ^ got.keys()) or sorted(k for k in want if want[k] != got[k])
            raise CheckpointError(f"{w_path}: weights do not match the {doc['class']} in {CONFIG_NAME} "
                                  f"(first mismatches: {', '.join(bad[:3])})")
        net.load_state_dict(state)
        return cls(net, meta=doc.get("meta"))

    def save(self, path: str | Path) -> None:
        """Write this policy as a saved-policy directory (:func:`save_policy`)."""
        save_policy(path, self.network, dict(self.meta))

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Action logits ``(B, n_actions)`` float32 of a batch of observations."""
        x = self._check(obs)
        with torch.no_grad():
            return self.network(torch.from_numpy(x)).numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``(B,)`` int64 for observations ``(B, H, W, C)`` uint8 (a single ``(H, W, C)`` -> ``(1,)``)."""
        return sample_from_logits(self.logits(obs), deterministic, self.rng)

    def _check(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs)
        shape = (self.network.image_size, self.network.image_size, self.network.in_channels)
        if x.shape == shape:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != shape:
            raise ConfigError(f"policy expects observations of shape (B, {', '.join(map(str, shape))}), "
                              f"got {x.shape}")
        return np.ascontiguousarray(x)

    def __repr__(self) -> str:
        return f"SavedPolicy(ImpalaActor{self.config})"


def load_saved_policy(path: str | Path) -> SavedPolicy:
    """Shorthand for :meth:`SavedPolicy.load`."""
    return SavedPolicy.load(path)
