"""The list of simlab environments and their gymnasium registration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvSpec:
    """One registered env: id, string entry point, step limit, one-line summary."""

    id: str
    entry_point: str
    max_episode_steps: int | None
    summary: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    vector_entry_point: str | None = None


ENV_SPECS: tuple[EnvSpec, ...] = (
    EnvSpec(
        "simlab/Collision2D-v0",
        "simlab.envs.collision2d.control:Collision2DEnv",
        200,
        "push the red ball so that it knocks the blue ball into the target region (exact elastic physics)",
    ),
    *(
        EnvSpec(f"simlab/{name}-v0", "simlab.envs.procgen.vec:ProcgenEnv", steps, summary, {"game": game},
                "simlab.envs.procgen.vec:ProcgenVecEnv")
        for name, game, steps, summary in (
            ("Maze", "maze", 500, "procgen-like maze: reach the cheese (+10); maze size depends on the level"),
            ("CoinRun", "coinrun", 1000, "procgen-like platformer: jump gaps, saws and enemies to the coin (+10)"),
            ("BigFish", "bigfish", 1000, "procgen-like: eat smaller fish to grow, die touching a bigger one"),
            ("Dodge", "dodge", 1000, "TakeCover-like survival: dodge projectiles, +1 per step survived"),
        )
    ),
    EnvSpec("simlab/Dodge-v1", "simlab.envs.procgen.vec:ProcgenEnv", 1000,
            "Dodge with TakeCover's visible danger: agent-centred view, fireballs that grow as they "
            "approach, shots that lead the agent", {"game": "dodge_v1"}, "simlab.envs.procgen.vec:ProcgenVecEnv"),
    EnvSpec("simlab/CoinRun-v1", "simlab.envs.procgen.vec:ProcgenEnv", 1000,
            "CoinRun with Procgen's easy difficulty: short levels, few gaps, a faster agent; random play "
            "reaches the coin on about a third of easy levels", {"game": "coinrun_v1"},
            "simlab.envs.procgen.vec:ProcgenVecEnv"),
    EnvSpec("simlab/ToyGrasp-v0", "simlab.envs.toygrasp.env:ToyGraspEnv", 50,
            "Franka Panda (pybullet): lift a random toy or an unseen object 10 cm and hold it 1 s "
            "(needs the grasp extra)"),
    EnvSpec("simlab/ToyGraspMJ-v0", "simlab.envs.toygrasp.env:ToyGraspMJEnv", 50,
            "ToyGrasp in MuJoCo: the same robot file, scene, task and actions (needs the grasp extra)"),
)


class RenderModes(list):
    """``metadata["render_modes"]`` of simlab envs: a plain list of mode names, except that a
    value that is not a string counts as contained.

    Why: ``gymnasium.make(id, render_mode=5)`` calls ``render_mode.endswith(...)`` on any mode
    missing from this list before the env is constructed, and crashes with an AttributeError.
    With this list a non-string mode reaches the env's constructor, which rejects it with a
    one-line :class:`~simlab.errors.ConfigError`. String modes behave exactly as with a list
    (``"human"`` and ``"rgb_array_list"`` still get gymnasium's rendering wrappers).
    """

    def __contains__(self, mode: object) -> bool:
        return not isinstance(mode, str) or list.__contains__(self, mode)


_GYMNASIUM_ORDER_CHECK = frozenset({"simlab/ToyGrasp-v0", "simlab/ToyGraspMJ-v0"})
"""Envs that do not validate their own use (reset before step, reset arguments): gymnasium.make wraps
them in OrderEnforcing and PassiveEnvChecker as usual."""


def register_envs() -> None:
    """Register every env in :data:`ENV_SPECS` with gymnasium (idempotent)."""
    import gymnasium

    for spec in ENV_SPECS:
        if spec.id in gymnasium.registry:
            continue
        # Envs that validate themselves (all but ToyGrasp) are registered without gymnasium's
        # OrderEnforcing and PassiveEnvChecker wrappers:
        # - they enforce reset-before-step themselves and raise simlab.errors.ResetNeededError
        #   (a SimlabError and a gymnasium ResetNeeded: one line, exit 2 at the CLI), where
        #   OrderEnforcing would raise a plain gymnasium ResetNeeded first;
        # - they reject a bad reset(seed=..., options=...) with a ConfigError, after which the
        #   PassiveEnvChecker of gymnasium 1.4 fails the next step() with a TypeError (it keeps
        #   no data from the failed first reset). Their spaces and API are checked by
        #   gymnasium's check_env in the tests instead.
        own_checks = spec.id not in _GYMNASIUM_ORDER_CHECK
        gymnasium.register(id=spec.id, entry_point=spec.entry_point, vector_entry_point=spec.vector_entry_point,
                           max_episode_steps=spec.max_episode_steps, kwargs=dict(spec.kwargs),
                           order_enforce=not own_checks, disable_env_checker=own_checks)


def env_ids() -> list[str]:
    """Ids of all simlab envs."""
    return [s.id for s in ENV_SPECS]
