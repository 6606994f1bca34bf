"""Network building blocks shared by simlab's policies.

The IMPALA-CNN of Espeholt et al. (2018), as used by Procgen's PPO baseline:
three stacks (conv 3x3 -> max-pool 3x3 stride 2 -> two residual blocks) of
16, 32, 32 channels, then ReLU -> linear 256 -> ReLU.

A depth of 0 in ``depths`` is a parameter-free 2x2 average-pool stage
(halves H and W, keeps the channels): ``(0, 16, 32, 32)`` runs the standard
IMPALA-CNN on a 32x32 view of a 64x64 frame at about a third of the CPU cost
(``docs/procgen_rl.md``), and the weights still save and load as an
``ImpalaActor`` whose observations are the full frames.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """ReLU -> conv3x3 -> ReLU -> conv3x3, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ConvSequence(nn.Module):
    """conv3x3 -> max-pool(3, stride 2) -> 2 residual blocks; halves H and W."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0 = ResidualBlock(out_ch)
        self.res1 = ResidualBlock(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(nn.Module):
    """IMPALA-CNN encoder.

    ``depths``: channels of each stack; a 0 is a 2x2 average-pool stage instead
    (no parameters), e.g. ``(0, 16, 32, 32)`` = downsample 64 -> 32 first.
    Input: ``(B, H, W, C)`` uint8 images (channels last, as envs emit them) or
    ``(B, C, H, W)`` floats in [0, 1] when ``channels_last=False``.
    Output: ``(B, features_dim)`` float features.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 64, depths: tuple[int, ...] = (16, 32, 32),
                 features_dim: int = 256, channels_last: bool = True) -> None:
        super().__init__()
        self.channels_last = channels_last
        seqs, ch, size = [], in_channels, image_size
        for d in depths:
            if d == 0:
                seqs.append(nn.AvgPool2d(2, stride=2, ceil_mode=True))
                size = (size + 1) // 2
                continue
            seqs.append(ConvSequence(ch, d))
            ch, size = d, (size + 1) // 2
        self.seqs = nn.Sequential(*seqs)
        self.fc = nn.Linear(ch * size * size, features_dim)
        self.features_dim = features_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.permute(0, 3, 1, 2).float() / 255.0
        h = self.seqs(x)
        return torch.relu(self.fc(torch.relu(h).flatten(1)))
