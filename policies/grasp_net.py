"""The grasp BC network: a small CNN, detection pooling or mean pooling, an action-chunk head.

"Learning to Grasp Anything by Playing with Random Toys" pools a ViT's patch
tokens over the target object's mask only ("detection pooling") and shows it
transfers to unseen objects far better than mean pooling over all patches.
This is that comparison at CPU scale, with both encoders the same network
(same parameters, same count) and only the pooling weights different:

- ``detpool``: feature-map cell ``(i, j)`` gets the weight "fraction of its
  pixels that belong to the target mask"; the feature is the weighted mean
  (zeros when the target is not visible);
- ``meanpool``: every cell weight 1 (the mask is not used at all);
- ``slots``: the mask input is one mask per object on the table ``(K, H, W)``
  (not told which is the target); each is detection-pooled into a slot and a
  goal-queried attention picks among them (:mod:`~simlab.policies.grasp_slots`).

Per frame: ``rgb (H, W, 3)`` uint8 + two coordinate channels (x, y in [-1, 1])
-> conv ``patch x patch`` stride ``patch`` -> ReLU -> two 3x3 convs (ReLU)
-> feature map ``(C, H / patch, W / patch)``; with ``pooled_coords`` each
cell's own coordinates (2 channels, its centre in [-1, 1]) are appended after
the convs -> pooled ``(C [+ 2],)``. Those two channels are what a ViT's position
embeddings give a pooled token: detection pooling turns them into the target's
centroid in the image, mean pooling into a constant.

Why ``pooled_coords``: with coordinates only at the input, the ReLU convs kept
the target's position in the pooled feature (a linear probe reads the mask
centroid from it with r = 0.98-0.996) but in directions of small variance (the
probe needed weights of norm ~56 for the lateral move), and the head of a
1,500-3,000-step run never learned them: it output a lateral move of ~0 at
every approach step (|pre-tanh| < 0.04), so the hand closed 7-9 cm from the
object, like a blind grasp (docs/toygrasp.md, "Why the first policies did not
localise"). The head sees the last ``context`` frames: ``[pooled feature,
normalised proprioception]`` per frame, concatenated, -> MLP -> ``chunk``
future actions ``(chunk, 5)`` squashed by tanh into the action box.

Proprioception statistics (mean/std of the 8 values) are buffers of the
network, set from the training data and saved with the weights, so a loaded
policy never runs with missing normalisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ENCODERS = ("detpool", "meanpool", "slots")
ACTION_DIM = 5
PROPRIO_DIM = 8


def mask_weights(mask: torch.Tensor, patch: int) -> torch.Tensor:
    """Per-cell pooling weights of a target mask.

    Args:
        mask: ``(N, H, W)`` uint8 (0/255) or bool/float in [0, 1].
        patch: cell side in pixels (``H`` and ``W`` divisible by it).

    Returns:
        ``(N, H / patch, W / patch)`` float: the fraction of each cell's pixels on the target.
    """
    m = mask.float()
    if mask.dtype == torch.uint8:
        m = m / 255.0
    return F.avg_pool2d(m[:, None], patch, patch)[:, 0]


def weighted_pool(fmap: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Weighted mean of a feature map over its cells.

    Args:
        fmap: ``(N, C, h, w)`` features.
        weights: ``(N, h, w)`` non-negative weights; an all-zero row pools to zeros.

    Returns:
        ``(N, C)``: ``sum_ij w_ij f_ij / max(sum_ij w_ij, eps)``.
    """
    w = weights[:, None]
    return (fmap * w).sum((2, 3)) / w.sum((2, 3)).clamp_min(eps)


class GraspBCNet(nn.Module):
    """Observation history -> action chunk.

    Args:
        encoder: ``detpool`` | ``meanpool`` (module docstring).
        image_size: image side in pixels (square; divisible by ``patch``).
        patch: stride of the first conv = side of a feature cell, px.
        channels: feature channels C.
        context: frames of history the head sees (the current one included).
        chunk: future actions predicted per call.
        hidden: width of the head's two hidden layers.
        goal_dim: size of an optional goal vector (e.g. a target colour one-hot) appended to the
            head's input (0: none).
        pooled_coords: append each cell's coordinates to the feature map after the convs (module
            docstring). False (the default of saved policies that predate it) reproduces them.
        slots: object masks per frame K of the ``slots`` encoder (>= 1 there, 0 otherwise; the
            default of saved policies that predate it).
    """

    def __init__(self, encoder: str = "detpool", image_size: int = 96, patch: int = 4, channels: int = 32,
                 context: int = 2, chunk: int = 8, hidden: int = 256, goal_dim: int = 0,
                 pooled_coords: bool = False, slots: int = 0) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if (encoder == "slots") != (slots >= 1) or slots < 0:
            raise ValueError(f"slots must be >= 1 for the slots encoder and 0 otherwise, got {slots} ({encoder})")
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not divisible by patch {patch}")
        self.encoder_kind, self.image_size, self.patch, self.channels = encoder, image_size, patch, channels
        self.context, self.chunk, self.hidden, self.goal_dim = context, chunk, hidden, goal_dim
        self.pooled_coords, self.slots = bool(pooled_coords), int(slots)
        self.feature_dim = channels + (2 if self.pooled_coords else 0)
        self.last_attention: torch.Tensor | None = None
        if self.slots:
            from simlab.policies.grasp_slots import SlotSelector

            self.selector = SlotSelector(self.feature_dim, goal_dim)
        self.stem = nn.Conv2d(5, channels, patch, stride=patch)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Sequential(
            nn.Linear(context * (self.feature_dim + PROPRIO_DIM) + goal_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, chunk * ACTION_DIM))
        lin = torch.linspace(-1.0, 1.0, image_size)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("coords", torch.stack([xx, yy])[None], persistent=False)
        self.register_buffer("cell_coords", F.avg_pool2d(self.coords, patch, patch), persistent=False)
        self.register_buffer("proprio_mean", torch.zeros(PROPRIO_DIM))
        self.register_buffer("proprio_std", torch.ones(PROPRIO_DIM))

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON types): ``GraspBCNet(**net.config)`` rebuilds it."""
        return {"encoder": self.encoder_kind, "image_size": self.image_size, "patch": self.patch,
                "channels": self.channels, "context": self.context, "chunk": self.chunk, "hidden": self.hidden,
                "goal_dim": self.goal_dim, "pooled_coords": self.pooled_coords,
                **({"slots": self.slots} if self.slots else {})}

    def set_proprio_stats(self, mean: Any, std: Any) -> None:
        """Normalisation of the proprioception (8,) each; std is floored at 1e-3."""
        self.proprio_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.proprio_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def feature_map(self, rgb: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 -> ``(N, feature_dim, H / patch, W / patch)`` features."""
        x = rgb.permute(0, 3, 1, 2).float() / 255.0
        x = torch.cat([x, self.coords.expand(len(x), -1, -1, -1)], 1)
        h = torch.relu(self.stem(x))
        h = torch.relu(self.conv1(h))
        h = torch.relu(self.conv2(h) + h)
        if self.pooled_coords:
            h = torch.cat([h, self.cell_coords.expand(len(h), -1, -1, -1)], 1)
        return h

    def pool_weights(self, mask: torch.Tensor) -> torch.Tensor:
        """``(N, H, W)`` mask -> ``(N, h, w)`` pooling weights of this encoder."""
        w = mask_weights(mask, self.patch)
        return w if self.encoder_kind == "detpool" else torch.ones_like(w)

    def encode(self, rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One feature per frame: ``rgb (N, H, W, 3)`` uint8, ``mask (N, H, W)`` -> ``(N, feature_dim)``.

        ``slots`` encoder: ``mask (N, K, H, W)`` object masks -> slots ``(N, K, feature_dim)`` in image
        order (:func:`~simlab.policies.grasp_slots.slot_features`).
        """
        if self.slots:
            from simlab.policies.grasp_slots import slot_features

            if mask.ndim != 4 or mask.shape[1] != self.slots:
                raise ValueError(f"the slots encoder expects (N, {self.slots}, H, W) object masks, "
                                 f"got shape {tuple(mask.shape)}")
            return slot_features(self.feature_map(rgb), mask, self.patch)[0]
        return weighted_pool(self.feature_map(rgb), self.pool_weights(mask))

    def head_forward(self, feats: torch.Tensor, proprio: torch.Tensor, goal: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """``feats (B, T, feature_dim)``, ``proprio (B, T, 8)``, ``goal (B, goal_dim)`` -> actions ``(B, chunk, 5)`` in (-1, 1).

        ``slots`` encoder: ``feats (B, T, K, feature_dim)``; the goal-queried attention turns them into
        ``(B, T, feature_dim)`` first, its weights ``(B, T, K)`` kept in ``last_attention``.
        """
        if self.slots:
            feats, att = self.selector(feats, goal)
            self.last_attention = att.detach()
        p = (proprio - self.proprio_mean) / self.proprio_std
        x = torch.cat([feats, p], -1).flatten(1)
        if self.goal_dim:
            if goal is None:
                raise ValueError("this network needs a goal vector")
            x = torch.cat([x, goal.float()], 1)
        return torch.tanh(self.head(x)).view(len(x), self.chunk, ACTION_DIM)

    def forward(self, rgb: torch.Tensor, mask: torch.Tensor, proprio: torch.Tensor,
                goal: torch.Tensor | None = None) -> torch.Tensor:
        """``rgb (B, T, H, W, 3)`` uint8, ``mask (B, T, H, W)`` (slots: ``(B, T, K, H, W)``),
        ``proprio (B, T, 8)`` -> ``(B, chunk, 5)``."""
        b, t = rgb.shape[:2]
        feats = self.encode(rgb.flatten(0, 1), mask.flatten(0, 1))
        feats = feats.view(b, t, *feats.shape[1:])
        return self.head_forward(feats, proprio, goal)
