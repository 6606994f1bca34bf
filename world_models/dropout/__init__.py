"""Dropout world model (World Models + Dropout's Dream Land): ConvVAE, MDN-RNN and dream envs.

Importing this package imports torch. Pipeline: frames -> :func:`train_vae` ->
:func:`encode_frames` -> :func:`train_mdnrnn` (dropout inside the LSTM) ->
:class:`DropoutWorldModel` -> ``as_vec_env(...)`` -> controllers trained in the dream.
"""

from __future__ import annotations

from simlab.world_models.dropout.dream import MASK_MODES, DreamCore, DreamEnv, DreamVecEnv
from simlab.world_models.dropout.mdnrnn import (
    MDNRNN,
    Masks,
    MDNRNNConfig,
    RNNTrainConfig,
    StepOut,
    mdn_loss,
    sample_next_z,
    train_mdnrnn,
)
from simlab.world_models.dropout.model import DropoutWorldModel
from simlab.world_models.dropout.vae import (
    ConvVAE,
    ConvVAEConfig,
    VAETrainConfig,
    encode_frames,
    train_vae,
)

__all__ = [
    "MASK_MODES",
    "MDNRNN",
    "ConvVAE",
    "ConvVAEConfig",
    "DreamCore",
    "DreamEnv",
    "DreamVecEnv",
    "DropoutWorldModel",
    "MDNRNNConfig",
    "Masks",
    "RNNTrainConfig",
    "StepOut",
    "VAETrainConfig",
    "encode_frames",
    "mdn_loss",
    "sample_next_z",
    "train_mdnrnn",
    "train_vae",
]
