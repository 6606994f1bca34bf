"""simlab: do learned world models, and the policies trained inside them, generalize?

``import simlab`` registers every simlab environment with gymnasium under
``simlab/<Name>-v<k>``; entry points are strings, so nothing heavy is
imported until ``gymnasium.make``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from simlab.registry import ENV_SPECS, register_envs

register_envs()

__all__ = ["ENV_SPECS", "__version__", "register_envs"]
