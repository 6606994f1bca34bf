"""CoinRun-v1: CoinRun with levels a random agent can finish, as in Procgen.

Description:
    The same game, engine, physics and rendering as
    :mod:`simlab.envs.procgen.coinrun` (CoinRun-v0: run and jump to the coin at
    the end of the level, +10; saws, patrolling enemies and gaps end the
    episode), with other level-generation parameters
    (:class:`~simlab.envs.procgen.coinrun.Params`) so that, as in Procgen's
    CoinRun, uniform random play reaches the coin on a good share of the easy
    levels and PPO's rollouts contain rewards. On easy:

    - **Faster agent**: LEFT / RIGHT move ``SPEED_V1`` (4) px per step instead
      of 2. Actions are unbiased (3 of the 15 combos go left, 3 right), so
      random play is a random walk whose reach grows with the speed (its
      spread after ``T`` steps is about ``speed * sqrt(0.4 T)`` px: 80 px at
      speed 4 in 1000 steps, 40 px at v0's 2). 4 px is 0.8 tiles per step.
    - **Shorter levels**: 14-24 tiles requested, 16-33 built (v0: 30-50
      requested, 30-59 built), so the coin is 55-140 px from the start (v0:
      125-270 px). 14 is the shortest request that still puts a segment (after
      a step or a gap) between the start and the final segment.
    - **Fewer gaps**: a gap between two segments with probability 0.25 (v0:
      0.5), still 2-3 tiles wide, and no gap is forced into a level (v0 adds
      one when none was drawn): about 0.35 gaps per level, v0 2.2.
    - **No hazard early**: the first segment after the start gets no saw,
      enemy or platform. The hazard probabilities per segment, the enemy
      speed (1 px/step) and the steps up (1-2 tiles, which a walking agent
      must jump) are v0's, so hazards, gaps and steps still end or stall fixed
      policies (always RIGHT reaches the coin on about 27% of easy levels).
      Being short, a level has about 0.23 saws or enemies (v0: 1.9).

    Hard levels: v0's hard parameters (wider gaps, twice the hazards, faster
    enemies, a forced gap) with v1's speed and no hazard in the first segment,
    at 24-48 tiles requested (about twice the easy length). ``simlab/CoinRun-v0``
    stays registered and unchanged (its levels and frames are pinned by the tests).
Action Space:
    ``Discrete(15)``, Procgen's combos: LEFT/RIGHT move 4 px per step (also in
    the air); a combo with UP (indices 2, 5, 8) jumps when standing on ground.
    The rest are no-ops.
Observation Space:
    ``(64, 64, 3)`` uint8, as CoinRun-v0: a 64 px window following the agent.
Rewards:
    +10 on touching the coin; 0 otherwise.
Episode End:
    As CoinRun-v0: coin touched (+10), or touching a saw or an enemy, or falling
    through a gap (terminated, 0); 1000 steps (truncated).

Measured on levels 0-199, easy (``docs/procgen_rl.md`` section 3): uniform
random play reaches the coin in about 30% of episodes (v0: 0%), always
RIGHT in about 27%, random actions held 1-10 steps in about 53%.
"""

from __future__ import annotations

from dataclasses import replace

from simlab.envs.procgen.coinrun import EASY, HARD, CoinRun, Params

SPEED_V1 = 4
"""Horizontal speed of the agent (px/step); v0's is 2."""

EASY_V1 = replace(EASY, min_width=14, max_width=24, gap_prob=0.25, force_gap=False, safe_segments=1,
                  speed=SPEED_V1)
"""Easy levels of CoinRun-v1 (widths in tiles; every other field is v0's easy one)."""
HARD_V1 = replace(HARD, min_width=24, max_width=48, safe_segments=1, speed=SPEED_V1)
"""Hard levels of CoinRun-v1: v0's hard hazards and gaps at twice v1's easy length."""


def params_v1(hard: bool) -> Params:
    """Generation parameters of a CoinRun-v1 mode."""
    return HARD_V1 if hard else EASY_V1


class CoinRunV1(CoinRun):
    """Batched CoinRun-v1 (see module docstring): CoinRun with :data:`EASY_V1` / :data:`HARD_V1` levels."""

    name = "coinrun_v1"

    @classmethod
    def level_params(cls, hard: bool) -> Params:
        return params_v1(hard)


__all__ = ["EASY_V1", "HARD_V1", "SPEED_V1", "CoinRunV1", "params_v1"]
