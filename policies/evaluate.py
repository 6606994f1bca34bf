"""The one evaluator of simlab: run any policy in the REAL env over named splits.

Every policy, whatever trained it (PPO, behaviour cloning, a controller
trained in a dream), is judged here the same way::

    from simlab.policies.evaluate import evaluate, load_policy, format_table
    result = evaluate(load_policy("runs/ppo-maze"), "simlab/Maze-v0", ["train", "test"], episodes=100)
    print(format_table(result))

Episodes: for each split the procgen game runs batched (``ProcgenVecEnv``,
levels from ``options_for_split(split)``) and exactly ``episodes`` completed
episodes are kept. To avoid favouring short episodes (in a batch the quick
ones finish first), each slot of the batch has a fixed quota, slot ``i``
contributing ``(episodes + i) // num_envs`` episodes (SB3's
``evaluate_policy`` does the same); episodes beyond a slot's quota are ignored.

Success, per game: maze / coinrun / bigfish: the level was completed (a
``+10`` reward was received in one step); dodge: survived to the time limit
(the episode was truncated, not terminated).

Outputs: the returned dict (per split: mean, std, 95% CI, success rate and
the episodes with their level seeds), ``eval_info.json`` (LeRobot style:
``per_episode`` and ``aggregated``) and one mp4 per recorded episode.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from simlab.data import write_json_atomic
from simlab.errors import CheckpointError, ConfigError

FORMAT_VERSION = 1
EVAL_INFO = "eval_info.json"
GOAL_REWARD = 10.0
SUCCESS_RULES: dict[str, str] = {"maze": "goal", "coinrun": "goal", "coinrun_v1": "goal", "bigfish": "goal", "dodge": "survive",
                                 "dodge_v1": "survive"}
"""How success is defined per game: ``goal`` = a +10 reward seen, ``survive`` = truncated at the time limit."""


class Actor(Protocol):
    """Anything with ``act(obs (B, ...)) -> actions (B,)``."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray: ...


def procgen_game(env_id: str) -> str:
    """Game name of a procgen-like env id (``"simlab/Maze-v0"`` -> ``"maze"``); ConfigError otherwise."""
    from simlab.registry import ENV_SPECS

    for spec in ENV_SPECS:
        if spec.id == env_id:
            if spec.vector_entry_point != "simlab.envs.procgen.vec:ProcgenVecEnv":
                raise ConfigError(f"env id {env_id!r} is not a procgen-like game; choose one of "
                                  f"{', '.join(procgen_env_ids())}")
            return str(spec.kwargs["game"])
    raise ConfigError(f"unknown env id {env_id!r}; procgen-like games: {', '.join(procgen_env_ids())}")


def procgen_env_ids() -> list[str]:
    """Ids of the procgen-like games."""
    from simlab.registry import ENV_SPECS

    return [s.id for s in ENV_SPECS if s.vector_entry_point == "simlab.envs.procgen.vec:ProcgenVecEnv"]


def episode_success(game: str, max_step_reward: float, terminated: bool, truncated: bool) -> bool | None:
    """Success of one episode under :data:`SUCCESS_RULES` (None for a game without a rule)."""
    rule = SUCCESS_RULES.get(game)
    if rule == "goal":
        return bool(max_step_reward >= GOAL_REWARD)
    if rule == "survive":
        return bool(truncated and not terminated)
    return None


def summarize(returns: list[float] | np.ndarray) -> dict[str, float]:
    """Mean, sample std (ddof=1; 0 for one episode) and 95% CI half-width ``1.96 * std / sqrt(n)``."""
    r = np.asarray(returns, np.float64)
    n = len(r)
    if n == 0:
        return {"mean_return": float("nan"), "std_return": float("nan"), "ci95": float("nan")}
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    return {"mean_return": float(r.mean()), "std_return": sd, "ci95": 1.96 * sd / math.sqrt(n)}


def _slot_quotas(episodes: int, n: int) -> np.ndarray:
    return np.array([(episodes + i) // n for i in range(n)], np.int64)


def run_split(policy: Actor, game: str, split: str, episodes: int, seed: int = 0, num_envs: int = 16,
              videos: int = 0, max_episode_steps: int | None = None,
              deterministic: bool = True, use_backgrounds: bool = True, bar: Any = None,
              ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Play ``episodes`` episodes of one split (``use_backgrounds``: Procgen's option of that name;
    ``bar``: an optional tqdm bar advanced by one per counted episode).

    Returns:
        (episodes, videos): per-episode dicts (``split, episode, slot, level_seed, return,
        length, success, terminated, truncated``) ordered by (slot, episode-in-slot), and the
        frames ``(T, 64, 64, 3)`` uint8 of the first ``videos`` episodes in that order.
    """
    from simlab.envs.procgen.base import options_for_split
    from simlab.envs.procgen.vec import ProcgenVecEnv

    opts = options_for_split(split, rand_seed=seed, use_backgrounds=use_backgrounds)
    n = max(1, min(num_envs, episodes))
    env = ProcgenVecEnv(game, n, options=opts, max_episode_steps=max_episode_steps)
    quota = _slot_quotas(episodes, n)
    order = [(s, j) for s in range(n) for j in range(quota[s])]
    to_record = set(order[:videos])
    obs, info = env.reset()
    # Recurrent policies (e.g. a world-model agent) get told when slots start new episodes.
    reset_hook = getattr(policy, "reset", None)
    if callable(reset_hook):
        reset_hook(None)
    cur_seed = np.asarray(info["level_seed"]).copy()
    count = np.zeros(n, np.int64)
    ret = np.zeros(n, np.float64)
    length = np.zeros(n, np.int64)
    best = np.full(n, -np.inf)
    frames: dict[int, list[np.ndarray]] = {s: [obs[s].copy()] for s in range(n) if (s, 0) in to_record}
    done_eps: dict[tuple[int, int], dict[str, Any]] = {}
    done_videos: dict[tuple[int, int], np.ndarray] = {}
    while (count < quota).any():
        act = np.asarray(policy.act(obs) if deterministic else policy.act(obs, deterministic=False))
        obs, rew, term, trunc, info = env.step(act.reshape(n))
        ret += rew
        length += 1
        best = np.maximum(best, rew)
        done = term | trunc
        if callable(reset_hook) and done.any():
            reset_hook(done)  # before the next act(): these slots now show a new episode's first frame
        for s, clip in frames.items():
            clip.append(info["final_obs"][s] if done[s] else obs[s].copy())
        for s in np.flatnonzero(done):
            s = int(s)
            j = int(count[s])
            if j < quota[s]:
                done_eps[(s, j)] = {
                    "split": split, "slot": s, "episode": j, "level_seed": int(cur_seed[s]),
                    "return": float(ret[s]), "length": int(length[s]),
                    "success": episode_success(game, float(best[s]), bool(term[s]), bool(trunc[s])),
                    "terminated": bool(term[s]), "truncated": bool(trunc[s]),
                }
                if s in frames:
                    done_videos[(s, j)] = np.stack(frames.pop(s))
                if bar is not None:
                    bar.update(1)
            count[s] += 1
            ret[s], length[s], best[s] = 0.0, 0, -np.inf
            if (s, j + 1) in to_record:
                frames[s] = [obs[s].copy()]
        cur_seed = np.asarray(info["level_seed"]).copy()
    env.close()
    eps = [done_eps[k] for k in order]
    for i, e in enumerate(eps):
        e["index"] = i
    return eps, [done_videos[k] for k in order[:videos]]


def evaluate(policy: Actor, env_id: str, splits: list[str] | tuple[str, ...], episodes: int, seed: int = 0,
             num_envs: int = 16, video_dir: Path | str | None = None, videos_per_split: int = 2,
             out_dir: Path | str | None = None, max_episode_steps: int | None = None,
             deterministic: bool = True, fps: float = 15.0, use_backgrounds: bool = True,
             progress: bool = False) -> dict[str, dict[str, Any]]:
    """Evaluate ``policy`` in the real env over named splits.

    Args:
        policy: anything with ``act(obs (B, 64, 64, 3) uint8) -> actions (B,)``.
        env_id: a procgen-like env id (``simlab/Maze-v0``, ``simlab/CoinRun-v0``...).
        splits: split names (train, val, test, vis_train, vis_test, hard).
        episodes: completed episodes per split (exactly).
        seed: seed of the level streams (same seed -> same levels).
        num_envs: batch size (capped at ``episodes``).
        video_dir: where to write ``<split>_<k>.mp4`` for the first ``videos_per_split``
            episodes of each split (and ``eval_info.json`` when ``out_dir`` is None).
        videos_per_split: episodes recorded per split when ``video_dir`` is given.
        out_dir: where to write ``eval_info.json`` (default: ``video_dir``; neither: not written).
        max_episode_steps: optional shorter time limit (default: the game's).
        deterministic: passed to ``policy.act`` when False (True uses ``act(obs)``).
        fps: frame rate of the videos.
        use_backgrounds: Procgen's option: textured level backgrounds (False: plain), as the
            policy's training data had them.
        progress: a tqdm bar over episodes (all splits) on stderr.

    Returns:
        ``{split: {"mean_return", "std_return", "ci95", "success_rate", "mean_length",
        "n_episodes", "episodes": [{"level_seed", "return", "length", "success", ...}]}}``;
        ``success_rate`` is None for a game without a success rule.

    Raises:
        ConfigError: unknown env id or split, or ``episodes`` / ``num_envs`` < 1.
    """
    from simlab.envs.procgen.base import check_split_name

    game = procgen_game(env_id)
    splits = list(splits)
    for s in splits:
        check_split_name(s)
    if not splits:
        raise ConfigError("evaluate needs at least one split")
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    n_videos = max(0, int(videos_per_split)) if video_dir is not None else 0
    result: dict[str, dict[str, Any]] = {}
    per_episode: list[dict[str, Any]] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(splits) * episodes, desc=f"eval {env_id}", unit="ep", disable=not progress,
               dynamic_ncols=True)
    for split in splits:
        bar.set_postfix(split=split)
        eps, vids = run_split(policy, game, split, episodes, seed=seed, num_envs=num_envs,
                              videos=min(n_videos, episodes), max_episode_steps=max_episode_steps,
                              deterministic=deterministic, use_backgrounds=use_backgrounds, bar=bar)
        if vids:
            from simlab.video import write_mp4

            for k, frames in enumerate(vids):
                p = Path(video_dir) / f"{split}_{k}.mp4"  # type: ignore[arg-type]
                write_mp4(p, frames, fps=fps)
                eps[k]["video"] = str(p)
        succ = [e["success"] for e in eps]
        stats = summarize([e["return"] for e in eps])
        result[split] = {
            **stats,
            "success_rate": None if any(s is None for s in succ) else float(np.mean(succ)),
            "mean_length": float(np.mean([e["length"] for e in eps])),
            "n_episodes": len(eps),
            "episodes": eps,
        }
        per_episode.extend(eps)
    bar.close()
    info_dir = out_dir if out_dir is not None else video_dir
    if info_dir is not None:
        import simlab

        write_json_atomic(Path(info_dir) / EVAL_INFO, {
            "format_version": FORMAT_VERSION,
            "simlab_version": simlab.__version__,
            "env_id": env_id,
            "game": game,
            "seed": seed,
            "episodes_per_split": episodes,
            "use_backgrounds": use_backgrounds,
            "success_rule": SUCCESS_RULES.get(game),
            "per_episode": per_episode,
            "aggregated": {s: {k: v for k, v in r.items() if k != "episodes"} for s, r in result.items()},
        })
    return result


def format_table(result: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of :func:`evaluate`'s result, one row per split."""
    head = ("split", "episodes", "mean return", "std", "95% CI", "success", "mean length")
    rows = [head]
    for split, r in result.items():
        sr = r.get("success_rate")
        rows.append((split, str(r["n_episodes"]), f"{r['mean_return']:.3f}", f"{r['std_return']:.3f}",
                     f"+/- {r['ci95']:.3f}", "-" if sr is None else f"{100 * sr:.1f}%",
                     f"{r['mean_length']:.1f}"))
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_policy(path: str | Path, checkpoint: str | None = None) -> Any:
    """Load a policy for :func:`evaluate` from a saved-policy directory or a run directory.

    Args:
        path: a saved-policy directory (``config.json`` + ``model.safetensors``), or a
            run directory. In a run directory the final policy (``RUN/policy``) is used,
            else the latest checkpoint's (``RUN/checkpoints/latest/policy``).
        checkpoint: in a run directory, pick ``"final"``, ``"latest"`` or ``"best"`` explicitly.

    Raises:
        CheckpointError: nothing loadable there (the message names what was looked for).
    """
    from simlab.policies.saved import CONFIG_NAME, SavedPolicy

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such policy or run directory")
    if (path / CONFIG_NAME).exists() and checkpoint is None:
        return SavedPolicy.load(path)
    cands = {"final": path / "policy", "latest": path / "checkpoints" / "latest" / "policy",
             "best": path / "checkpoints" / "best" / "policy"}
    if checkpoint is not None:
        if checkpoint not in cands:
            raise ConfigError(f"unknown checkpoint {checkpoint!r}; choose one of {', '.join(cands)}")
        return SavedPolicy.load(cands[checkpoint])
    for key in ("final", "latest"):
        if (cands[key] / CONFIG_NAME).exists():
            return SavedPolicy.load(cands[key])
    raise CheckpointError(f"{path}: neither a saved policy ({CONFIG_NAME}) nor a run directory with "
                          f"policy/ or checkpoints/latest/policy/")


def eval_metrics(res: dict[str, dict[str, Any]], stats: tuple[str, ...] = ("mean_return",)) -> dict[str, float]:
    """``evaluate``'s per-split results as flat ``eval/<split>/<stat>`` metrics (``success_rate``
    added where the game has one), the form trainers log to ``metrics.jsonl``."""
    out: dict[str, float] = {}
    for split, r in res.items():
        for k in stats:
            out[f"eval/{split}/{k}"] = r[k]
        if r["success_rate"] is not None:
            out[f"eval/{split}/success_rate"] = r["success_rate"]
    return out
