"""The counterfactual test of a dream (world_models/dropout/counterfactual.py) and the mirror symmetry
that the Dream Land pipeline uses to double its world-model data."""

from __future__ import annotations

import numpy as np
import pytest


def test_action_accuracy_counts_only_mixed_states() -> None:
    from simlab.world_models.dropout.counterfactual import action_accuracy

    groups = {
        "a": [(True, 0.9), (False, 0.1), (False, 0.2)],   # 2 pairs, both right
        "b": [(True, 0.1), (False, 0.5)],                 # 1 pair, wrong
        "c": [(False, 0.3), (False, 0.4)],                # no death: no pair
        "d": [(True, 0.7), (True, 0.2)],                  # every action dies: no pair
        "e": [(True, 0.5), (False, 0.5)],                 # a tie counts half
    }
    acc, n = action_accuracy(groups)
    assert n == 4 and acc == pytest.approx((2 + 0 + 0.5) / 4)
    assert np.isnan(action_accuracy({"c": groups["c"]})[0])


@pytest.mark.parametrize("game", ["dodge", "dodge_v1"])
def test_dodge_mirror_actions_swap_left_and_right(game: str) -> None:
    """The mirror map is an involution that turns every move into the opposite move: a flipped
    episode with mapped actions moves the agent exactly as the flipped original does."""
    from simlab.envs.procgen.dodge import ACTION_DX
    from simlab.envs.procgen.vec import game_class

    perm = np.asarray(game_class(game).mirror_actions)
    assert sorted(perm.tolist()) == list(range(15))
    assert (perm[perm] == np.arange(15)).all()
    assert (np.asarray(ACTION_DX)[perm] == -np.asarray(ACTION_DX)).all()


def test_asymmetric_games_declare_no_mirror() -> None:
    from simlab.envs.procgen.vec import game_class

    assert game_class("coinrun").mirror_actions is None  # the goal is always to the right
