"""Object-centric slots for grasp BC: one detection-pooled feature per object, the instruction picks one.

The shortcut probe (:mod:`~simlab.policies.grasp_shortcut`) needs a policy
that localises (detection pooling does, mean pooling does not) but is *not*
told which object is the target (the target mask gives the answer away). The
``slots`` encoder of :class:`~simlab.policies.grasp_net.GraspBCNet` does both:

1. The env gives one mask per object on the table (``objects``, ``(K, H, W)``;
   every toy, target or not, :class:`~simlab.envs.toygrasp.env.ToyGraspEnv`
   with ``object_masks=True``).
2. The shared CNN feature map (with pooled cell coordinates, as detection
   pooling) is detection-pooled once per object mask -> ``K`` slot vectors
   ``(K, D)``, in image order (:func:`slot_order`: mask centroid column u
   ascending, then row v; empty masks last, their slot zero and never attended).
3. :class:`SlotSelector`: a query from the goal (the target colour one-hot)
   scores every slot, ``score_k = q(goal) . k(slot_k) / sqrt(D)``; the softmax
   over the visible slots weighs them into one feature ``(D,)``, which takes the
   place of detection pooling's target feature in the head.

So the policy has to work out from the pixels under each mask which object is
red and which blue; nothing but the image tells it which slot is the target.
Attention makes the output independent of the slot order (the order is
documented and used for determinism, not needed for correctness), and the
attention weights say which object the policy chose (recorded by the probe).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from simlab.policies.grasp_net import mask_weights, weighted_pool


def slot_order(masks: torch.Tensor) -> torch.Tensor:
    """Image order of object masks: ``(N, K, H, W)`` -> ``(N, K)`` int64 indices.

    Sorted by mask centroid column u (px) ascending, ties by row v ascending; empty masks last
    (in their input order). The same rule as :func:`simlab.envs.toygrasp.env.position_order`.
    """
    m = (masks > 0).float()
    n, k, h, w = m.shape
    area = m.sum((2, 3))
    xs = torch.arange(w, dtype=torch.float32, device=m.device)
    ys = torch.arange(h, dtype=torch.float32, device=m.device)
    u = (m.sum(2) * xs).sum(-1) / area.clamp_min(1.0)
    v = (m.sum(3) * ys).sum(-1) / area.clamp_min(1.0)
    inf = torch.full_like(u, float("inf"))
    u, v = torch.where(area > 0, u, inf), torch.where(area > 0, v, inf)
    idx = torch.arange(k, device=m.device).expand(n, k)
    # lexicographic (u, v, input index) by stable sorts, least significant key first
    for key in (v, u):
        order = torch.sort(torch.gather(key, 1, idx), dim=1, stable=True).indices
        idx = torch.gather(idx, 1, order)
    return idx


def slot_features(fmap: torch.Tensor, masks: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Detection-pool ``fmap`` once per object mask, slots in image order.

    Args:
        fmap: ``(N, D, h, w)`` features (``h = H / patch``).
        masks: ``(N, K, H, W)`` object masks, uint8 0/255 or bool/float in [0, 1], any order.
        patch: cell side in pixels.

    Returns:
        ``slots (N, K, D)`` (zeros for an empty mask) and ``visible (N, K)`` bool, both in
        :func:`slot_order` order.
    """
    n, k, hh, ww = masks.shape
    masks = torch.gather(masks, 1, slot_order(masks)[:, :, None, None].expand(n, k, hh, ww))
    w = mask_weights(masks.reshape(n * k, hh, ww), patch)  # (N K, h, w)
    f = fmap[:, None].expand(n, k, *fmap.shape[1:]).reshape(n * k, *fmap.shape[1:])
    slots = weighted_pool(f, w).view(n, k, -1)
    return slots, (w.sum((1, 2)) > 0).view(n, k)


class SlotSelector(nn.Module):
    """Goal-queried attention over slots: ``(.., K, D)`` slots + goal -> ``(.., D)`` feature.

    Args:
        dim: slot feature size D.
        goal_dim: goal vector size (0: a learned query, the same for every input).
    """

    def __init__(self, dim: int, goal_dim: int) -> None:
        super().__init__()
        self.dim, self.goal_dim = dim, goal_dim
        self.key = nn.Linear(dim, dim)
        if goal_dim:
            self.query = nn.Linear(goal_dim, dim)
        else:
            self.query_vec = nn.Parameter(torch.zeros(dim))

    def forward(self, slots: torch.Tensor, goal: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Args:
            slots: ``(B, T, K, D)`` slot features; a slot whose every entry is 0 (empty mask) is
                not attended (all slots empty: the output is zeros).
            goal: ``(B, goal_dim)`` (ignored when ``goal_dim`` is 0).

        Returns:
            ``feature (B, T, D)`` and ``attention (B, T, K)`` (softmax weights; rows of an all-empty
            frame are 0).
        """
        b = slots.shape[0]
        if self.goal_dim:
            if goal is None:
                raise ValueError("the slot encoder of this network needs a goal vector")
            q = self.query(goal.float())  # (B, D)
        else:
            q = self.query_vec[None].expand(b, -1)
        scores = (self.key(slots) * q[:, None, None]).sum(-1) / math.sqrt(self.dim)  # (B, T, K)
        visible = slots.abs().sum(-1) > 0
        scores = scores.masked_fill(~visible, float("-inf"))
        att = torch.softmax(scores, -1).nan_to_num(0.0)  # an all-empty frame: NaN -> 0
        return (att[..., None] * slots).sum(-2), att
