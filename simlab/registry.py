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


ENV_SPECS: tuple[EnvSpec, ...] = (
    EnvSpec(
        "simlab/Collision2D-v0",
        "simlab.envs.collision2d.control:Collision2DEnv",
        200,
        "push the red ball so that it knocks the blue ball into the target region (exact elastic physics)",
    ),
)


def register_envs() -> None:
    """Register every env in :data:`ENV_SPECS` with gymnasium (idempotent)."""
    import gymnasium

    for spec in ENV_SPECS:
        if spec.id in gymnasium.registry:
            continue
        gymnasium.register(id=spec.id, entry_point=spec.entry_point,
                           max_episode_steps=spec.max_episode_steps, kwargs=dict(spec.kwargs))


def env_ids() -> list[str]:
    """Ids of all simlab envs."""
    return [s.id for s in ENV_SPECS]
