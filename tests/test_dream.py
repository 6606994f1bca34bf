"""Dream environments: mask modes, same-step autoreset, gymnasium/SB3 compatibility, determinism."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gymnasium.error import ResetNeeded

from simlab.errors import ActionError, ConfigError
from simlab.world_models.dropout import (
    MDNRNN,
    ConvVAE,
    DreamEnv,
    DreamVecEnv,
    DropoutWorldModel,
    Masks,
    MDNRNNConfig,
)

torch.set_num_threads(1)

Z, H, A, K = 8, 32, 3, 2


@pytest.fixture(scope="module")
def vae() -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(z_dim=Z).eval()


def random_model(vae: ConvVAE, seed: int = 0, done_bias: float | None = -10.0, dropout: float = 0.05,
                 n_start: int = 5) -> DropoutWorldModel:
    """Random weights; ``done_bias=-10`` makes episodes end only by truncation."""
    torch.manual_seed(seed)
    rnn = MDNRNN(MDNRNNConfig(z_dim=Z, n_actions=A, hidden=H, mixtures=K, dropout=dropout))
    if done_bias is not None:
        with torch.no_grad():
            rnn.done_fc.bias.fill_(done_bias)
    return DropoutWorldModel(vae, rnn, torch.randn(n_start, Z), n_actions=A, env_id="test")


def scripted_model(vae: ConvVAE, dropout: float = 0.0) -> DropoutWorldModel:
    """Hand-set weights with known dynamics.

    The LSTM forgets its state (forget gate shut, no recurrent weights), so
    ``h_t[0] ~ 0.76 * sign(z_t[0])`` and ``h_t[1]`` depends only on the action;
    terminated iff ``z_t[0] > 0``; reward ``1 + h_t[1]``; next ``z[0] ~ -1``, other
    dims ~ 0. Start rows: ``z[0] = +1`` (episode ends after one step) or ``-1``
    (runs until truncation).
    """
    rnn = MDNRNN(MDNRNNConfig(z_dim=Z, n_actions=A, hidden=H, mixtures=K, dropout=dropout))
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
        cell = rnn.cell
        cell.bias_ih[0:H] = 10.0            # input gate open
        cell.bias_ih[H:2 * H] = -10.0       # forget gate shut
        cell.bias_ih[3 * H:4 * H] = 10.0    # output gate open
        cell.weight_ih[2 * H + 0, 0] = 10.0  # cell input 0 = tanh(10 z0)
        for k in range(A):
            cell.weight_ih[2 * H + 1, Z + k] = 0.5 * k  # cell input 1 from the action
        rnn.done_fc.weight[0, 0] = 10.0
        rnn.reward_fc.weight[0, 1] = 1.0
        rnn.reward_fc.bias[0] = 1.0
        bias = rnn.mdn.bias.view(3, K, Z)    # (logpi, mu, logsigma) x K x z_dim
        bias[1, :, 0] = -1.0
        bias[2] = -5.0
    start = np.zeros((2, Z), np.float32)
    start[0, 0], start[1, 0] = 1.0, -1.0
    return DropoutWorldModel(vae, rnn, start, n_actions=A)


def rollout(env, actions: np.ndarray) -> list[tuple]:
    out = []
    for a in actions:
        obs, rew, term, trunc, _ = env.step(a)
        out.append((obs.copy(), rew.copy(), term.copy(), trunc.copy()))
    return out


# ---- validation -----------------------------------------------------------------------------

def test_invalid_arguments_are_config_errors(vae) -> None:
    model = random_model(vae)
    for kw in ({"mask_mode": "dropout"}, {"dropout": 1.0}, {"dropout": -0.1},
               {"mask_mode": "none", "dropout": 0.1}, {"temperature": -1.0}, {"mc_samples": 0},
               {"max_episode_steps": 0}, {"render_mode": "human"}, {"device": "tpu"}):
        with pytest.raises(ConfigError):
            DreamVecEnv(model, 2, **kw)
        with pytest.raises(ConfigError):
            DreamEnv(model, **kw)
    with pytest.raises(ConfigError):
        DreamVecEnv(model, 0)
    DreamVecEnv(model, 2, mask_mode="none", dropout=0.0)  # explicit 0 is fine with "none"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            DreamVecEnv(model, 2, device="cuda")


def test_actions_are_validated(vae) -> None:
    env = DreamVecEnv(random_model(vae), 3)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(3, np.int64))
    env.reset(seed=0)
    for bad in (np.array([0, 1, A]), np.array([-1, 0, 0]), np.array([0, 1]), np.zeros((3, 1), np.int64),
                np.array([0.5, 0, 0]), np.array([True, False, True]), torch.tensor([0, A, 0])):
        with pytest.raises(ActionError):
            env.step(bad)
    env.step([0, 1, 2])
    env.step(np.array([0.0, 1.0, 2.0]))       # integral floats are accepted, like the procgen envs
    env.step(torch.tensor([2, 1, 0]))         # torch actions (e.g. from a controller on the device)
    single = DreamEnv(random_model(vae))
    with pytest.raises(ResetNeeded):
        single.step(0)
    single.reset(seed=0)
    with pytest.raises(ActionError):
        single.step(A)
    with pytest.raises(ActionError):
        single.step([0, 1])
    single.step(np.int64(1))


def test_spaces_and_start_state(vae) -> None:
    model = random_model(vae)
    env = DreamVecEnv(model, 4)
    d = Z + H
    assert env.single_observation_space.shape == (d,) and env.single_action_space.n == A
    assert env.observation_space.shape == (4, d) and env.action_space.shape == (4,)
    assert env.metadata["autoreset_mode"].value == "SameStep"
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (4, d)
    np.testing.assert_array_equal(obs[:, :Z], model.start_z.numpy()[info["start_index"]])
    assert not obs[:, Z:].any()
    obs, info = env.reset(options={"start_index": np.array([4, 3, 2, 1])})
    np.testing.assert_array_equal(obs[:, :Z], model.start_z.numpy()[[4, 3, 2, 1]])
    with pytest.raises(ConfigError, match="start_index"):
        env.reset(options={"start_index": np.array([5, 0, 0, 0])})
    for _ in range(3):
        obs, rew, term, _, info = env.step(np.array([0, 1, 2, 0]))
        assert obs.dtype == np.float32 and rew.dtype == np.float32 and term.dtype == bool
        assert env.observation_space.contains(obs)
        assert np.abs(obs[:, Z:]).max() <= 1.0


# ---- same-step autoreset --------------------------------------------------------------------

def test_same_step_autoreset_final_obs_and_episode_stats(vae) -> None:
    model = scripted_model(vae)
    n, limit = 6, 5
    env = DreamVecEnv(model, n, mask_mode="none", max_episode_steps=limit, seed=0)
    obs, info = env.reset()
    start = model.start_z.numpy()
    rng = np.random.default_rng(0)
    ret, length = np.zeros(n), np.zeros(n, np.int64)
    saw_term = saw_trunc = 0
    for _ in range(25):
        prev = obs
        act = rng.integers(0, A, n)
        obs, rew, term, trunc, info = env.step(act)
        ret += rew
        length += 1
        np.testing.assert_array_equal(term, prev[:, 0] > 0)           # the scripted done rule
        np.testing.assert_array_equal(trunc, (length >= limit) & ~term)
        done = term | trunc
        saw_term += int(term.sum())
        saw_trunc += int(trunc.sum())
        if not done.any():
            assert "final_obs" not in info and "_episode" not in info
            np.testing.assert_allclose(rew, 1.0 + obs[:, Z + 1], atol=1e-6)
        else:
            np.testing.assert_array_equal(info["_final_obs"], done)
            np.testing.assert_array_equal(info["_episode"], done)
            np.testing.assert_allclose(info["episode_return"][done], ret[done], rtol=1e-6)
            np.testing.assert_array_equal(info["episode_length"][done], length[done])
            assert not info["episode_return"][~done].any() and not info["episode_length"][~done].any()
            for i in range(n):
                if done[i]:
                    final = info["final_obs"][i]
                    assert final.shape == (Z + H,) and final.dtype == np.float32
                    assert abs(final[0] + 1.0) < 0.05                  # the dream's next z, not a start row
                    assert rew[i] == pytest.approx(1.0 + final[Z + 1], abs=1e-6)
                    # the slot restarted in the same step: start latent, zero LSTM state
                    np.testing.assert_array_equal(obs[i, :Z], start[info["start_index"][i]])
                    assert not obs[i, Z:].any()
                else:
                    assert info["final_obs"][i] is None
            ret[done] = 0
            length[done] = 0
    assert saw_term > 0 and saw_trunc > 0


def test_dream_vec_env_through_sb3_adapter_and_ppo(vae) -> None:
    from stable_baselines3 import PPO

    from simlab.sb3 import SB3VecEnv

    venv = SB3VecEnv(DreamVecEnv(scripted_model(vae), 8, mask_mode="none", max_episode_steps=20, seed=0))
    obs = venv.reset()
    assert obs.shape == (8, Z + H)
    venv.step_async(np.zeros(8, np.int64))
    obs, _, dones, infos = venv.step_wait()
    for i in np.flatnonzero(dones):
        assert infos[i]["terminal_observation"].shape == (Z + H,)
        assert infos[i]["episode"]["l"] == 1 and infos[i]["TimeLimit.truncated"] is False
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu",
                policy_kwargs={"net_arch": [32]})
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    assert len(model.ep_info_buffer) > 0
    assert all(1 <= ep["l"] <= 20 and np.isfinite(ep["r"]) for ep in model.ep_info_buffer)


# ---- mask modes -----------------------------------------------------------------------------

def _masks(env) -> tuple[np.ndarray, np.ndarray]:
    return env.masks.z.numpy().copy(), env.masks.h.numpy().copy()


def test_per_episode_masks_fixed_within_episode_and_new_at_reset(vae) -> None:
    model = scripted_model(vae, dropout=0.5)
    n = 8
    env = DreamVecEnv(model, n, mask_mode="per_episode", max_episode_steps=4, seed=0)
    assert env.dropout == 0.5
    env.reset()
    mz, mh = _masks(env)
    assert set(np.unique(mz)) <= {0.0, 2.0} and (mh == 0).any() and (mh == 2).any()
    changed_slots = 0
    rng = np.random.default_rng(0)
    for _ in range(12):
        _, _, term, trunc, _ = env.step(rng.integers(0, A, n))
        nz, nh = _masks(env)
        done = term | trunc
        for i in range(n):
            same = np.array_equal(nz[i], mz[i]) and np.array_equal(nh[i], mh[i])
            assert same != bool(done[i]), (i, done)  # fixed within an episode, new after a reset
        changed_slots += int(done.sum())
        mz, mh = nz, nh
    assert changed_slots >= n
    env.reset()
    assert not np.array_equal(_masks(env)[1], mh)


def test_per_step_masks_change_every_step(vae) -> None:
    env = DreamVecEnv(random_model(vae), 4, mask_mode="per_step", dropout=0.3, seed=0)
    env.reset()
    prev = None
    for _ in range(5):
        env.step(np.zeros(4, np.int64))
        cur = _masks(env)
        assert cur[0].shape == (4, Z) and cur[1].shape == (4, H)
        if prev is not None:
            for i in range(4):
                assert not np.array_equal(cur[1][i], prev[1][i])
        prev = cur


def _copy_state(dst, src) -> None:
    dst.core.z, dst.core.h, dst.core.c = src.core.z.clone(), src.core.h.clone(), src.core.c.clone()


def test_none_is_deterministic_given_z_and_uses_no_dropout(vae) -> None:
    model = random_model(vae)
    a = np.array([0, 1, 2, 1])
    # two different seeds (different sampling streams) from the same state
    e1 = DreamVecEnv(model, 4, mask_mode="none", seed=0)
    e2 = DreamVecEnv(model, 4, mask_mode="none", seed=1)
    e1.reset()
    e2.reset()
    _copy_state(e2, e1)
    assert e1.masks is None
    o1, r1, *_ = e1.step(a)
    o2, r2, *_ = e2.step(a)
    np.testing.assert_array_equal(o1[:, Z:], o2[:, Z:])  # h, reward, done: functions of (z, h, a)
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(o1[:, :Z], o2[:, :Z])       # the next z is sampled (tau = 1)
    # tau = 0: the whole step is deterministic
    g1 = DreamVecEnv(model, 4, mask_mode="none", temperature=0.0, seed=0)
    g2 = DreamVecEnv(model, 4, mask_mode="none", temperature=0.0, seed=1)
    g1.reset()
    g2.reset()
    _copy_state(g2, g1)
    np.testing.assert_array_equal(rollout(g1, [a] * 3)[-1][0], rollout(g2, [a] * 3)[-1][0])
    # with dropout the same state gives different h (the masks differ)
    d1 = DreamVecEnv(model, 4, mask_mode="per_step", dropout=0.3, seed=0)
    d2 = DreamVecEnv(model, 4, mask_mode="per_step", dropout=0.3, seed=1)
    d1.reset()
    d2.reset()
    _copy_state(d2, d1)
    assert not np.array_equal(d1.step(a)[0][:, Z:], d2.step(a)[0][:, Z:])


def test_rate_zero_dropout_equals_no_dropout(vae) -> None:
    model = random_model(vae, done_bias=None)
    actions = np.random.default_rng(0).integers(0, A, (15, 3))
    runs = []
    for mode in ("none", "per_episode", "per_step"):
        env = DreamVecEnv(model, 3, mask_mode=mode, dropout=0.0, max_episode_steps=6, seed=4)
        env.reset()
        runs.append(rollout(env, actions))
    for other in runs[1:]:
        for x, y in zip(runs[0], other):
            for u, v in zip(x, y):
                np.testing.assert_array_equal(u, v)


def test_mc_mean_averages_over_masks(vae) -> None:
    model = random_model(vae)
    rnn = model.rnn
    a = np.array([0, 2, 1])
    # with one sample, mc_mean is exactly per_step
    e1 = DreamVecEnv(model, 3, mask_mode="mc_mean", mc_samples=1, dropout=0.3, seed=2)
    e2 = DreamVecEnv(model, 3, mask_mode="per_step", dropout=0.3, seed=2)
    e1.reset()
    e2.reset()
    for x, y in zip(rollout(e1, [a] * 4), rollout(e2, [a] * 4)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    # with 8 samples: reward, done probability and state are the means over the 8 masks
    env = DreamVecEnv(model, 3, mask_mode="mc_mean", mc_samples=8, dropout=0.3, seed=0)
    env.reset()
    env.step(a)
    z, h, c = env.core.z.clone(), env.core.h.clone(), env.core.c.clone()
    obs, rew, *_ = env.step(a)
    mz, mh = env.masks
    assert mz.shape == (8, 3, Z) and mh.shape == (8, 3, H)
    rews, hs = [], []
    with torch.no_grad():
        for s in range(8):
            out = rnn.step(z, torch.from_numpy(a), (h, c), masks=Masks(mz[s], mh[s]))
            rews.append(out.reward)
            hs.append(out.state[0])
    mean_r, mean_h = torch.stack(rews).mean(0), torch.stack(hs).mean(0)
    np.testing.assert_allclose(rew, mean_r.numpy(), atol=1e-6)
    np.testing.assert_allclose(obs[:, Z:], mean_h.numpy(), atol=1e-6)
    assert torch.stack(rews).std(0).min() > 0  # the masks really differed


# ---- single env, seeding, gymnasium ---------------------------------------------------------

def test_single_slot_vec_env_and_dream_env_give_the_same_trajectory(vae) -> None:
    model = random_model(vae, done_bias=None, dropout=0.2)
    vec = DreamVecEnv(model, 1, mask_mode="per_episode", max_episode_steps=7, seed=11)
    single = DreamEnv(model, mask_mode="per_episode", max_episode_steps=7, seed=11)
    vo, _ = vec.reset()
    so, _ = single.reset()
    np.testing.assert_array_equal(vo[0], so)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(40):
        a = int(rng.integers(0, A))
        vo, vr, vt, vtr, vinfo = vec.step(np.array([a]))
        so, sr, st, strunc, _ = single.step(a)
        assert (vr[0], bool(vt[0]), bool(vtr[0])) == (sr, st, strunc)
        if st or strunc:
            episodes += 1
            np.testing.assert_array_equal(vinfo["final_obs"][0], so)
            so, _ = single.reset()
        np.testing.assert_array_equal(vo[0], so)
    assert episodes >= 5


def test_dream_env_step_after_episode_end_needs_reset(vae) -> None:
    env = DreamEnv(random_model(vae), max_episode_steps=2)
    env.reset(seed=0)
    env.step(0)
    _, _, term, trunc, _ = env.step(0)
    assert trunc and not term
    with pytest.raises(ResetNeeded):
        env.step(0)


def test_reset_seed_makes_the_dream_reproducible(vae) -> None:
    model = random_model(vae, done_bias=None, dropout=0.2)
    env = DreamVecEnv(model, 4, mask_mode="per_episode", max_episode_steps=5)
    actions = np.random.default_rng(0).integers(0, A, (12, 4))
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=123)
        runs.append([obs.copy()] + [x[0] for x in rollout(env, actions)])
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))
    env.reset(seed=124)
    other = [x[0] for x in rollout(env, actions)]
    assert not np.array_equal(np.stack(other), np.stack(runs[0][1:]))


def test_dream_env_passes_gymnasium_and_sb3_check_env(vae) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = DreamEnv(random_model(vae), render_mode="rgb_array", max_episode_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded z bounds and no registered spec: expected
        check_env(env)
        sb3_check_env(DreamEnv(random_model(vae), max_episode_steps=50))


def test_render_decodes_slot_zero(vae) -> None:
    model = random_model(vae)
    env = DreamVecEnv(model, 2, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    expect = vae.decode_uint8(env.core.z[:1])[0]
    np.testing.assert_array_equal(frame[::4, ::4], expect)
    assert DreamVecEnv(model, 2).render() is None
    single = DreamEnv(model, render_mode="rgb_array")
    single.reset(seed=0)
    assert single.render().shape == (256, 256, 3)


# ---- the dream's fused transition is the model's transition ----------------------------------

def test_dream_step_matches_the_model_step(vae) -> None:
    from simlab.world_models.dropout import sample_next_z

    model = random_model(vae, done_bias=None, dropout=0.3)
    rnn = model.rnn
    for mode in ("none", "per_episode"):
        env = DreamVecEnv(model, 5, mask_mode=mode, temperature=0.0, seed=1, done_mode="threshold")
        env.reset()
        for t in range(4):
            a = np.array([t % A, 0, 1, 2, (t + 1) % A])
            z, h, c = env.core.z.clone(), env.core.h.clone(), env.core.c.clone()
            masks = None if env.masks is None else Masks(env.masks.z.clone(), env.masks.h.clone())
            obs, rew, term, trunc, _ = env.step(a)
            with torch.no_grad():
                out = rnn.step(z, torch.from_numpy(a), (h, c), masks=masks)
                z_mode = sample_next_z(out.logpi, out.mu, out.logsigma, tau=0.0)
            live = ~(term | trunc)
            np.testing.assert_allclose(obs[live, Z:], out.state[0].numpy()[live], atol=1e-5)
            np.testing.assert_allclose(obs[live, :Z], z_mode.numpy()[live], atol=1e-4)
            np.testing.assert_allclose(rew, out.reward.numpy(), atol=1e-5)
            np.testing.assert_array_equal(term, torch.sigmoid(out.done_logit).numpy() > 0.5)


def test_packed_host_transfer_gives_the_same_steps(vae) -> None:
    """The one-transfer output path used on GPUs returns exactly what the CPU path returns."""
    model = random_model(vae, done_bias=None)
    actions = np.random.default_rng(0).integers(0, A, (12, 4))
    runs = []
    for packed in (False, True):
        env = DreamVecEnv(model, 4, max_episode_steps=5, seed=2)
        env.core.pack_transfer = packed
        env.reset()
        runs.append(rollout(env, actions))
        obs, rew, term, _, _ = env.step(actions[0])
        assert obs.flags.c_contiguous and obs.dtype == rew.dtype == np.float32 and term.dtype == bool
    for x, y in zip(*runs):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_dream_follows_weight_updates(vae) -> None:
    model = random_model(vae)
    env = DreamVecEnv(model, 4, mask_mode="none", seed=0)
    env.reset()
    assert not env.step(np.zeros(4, np.int64))[2].any()
    with torch.no_grad():
        model.rnn.done_fc.bias.fill_(100.0)  # e.g. training went on after the env was made
    assert env.step(np.zeros(4, np.int64))[2].all()


def test_bfloat16_precision_is_close_to_float32(vae) -> None:
    model = random_model(vae)
    a = np.array([0, 1, 2, 0])
    runs = {}
    for precision in ("float32", "bfloat16"):
        env = DreamVecEnv(model, 4, mask_mode="per_episode", dropout=0.1, temperature=0.0, seed=3,
                          precision=precision)
        assert env.precision == precision
        env.reset()
        runs[precision] = np.stack([env.step(a)[0] for _ in range(5)])
    np.testing.assert_allclose(runs["bfloat16"], runs["float32"], atol=0.05)
    assert not np.array_equal(runs["bfloat16"], runs["float32"])
    with pytest.raises(ConfigError, match="precision"):
        DreamVecEnv(model, 2, precision="float16")


def test_dream_speed_benchmark_runs_and_reports_json() -> None:
    """One run of the folded benchmark times both world models' dreams and reports both in one JSON."""
    pytest.importorskip("diffusers")  # the diffusion dream's networks
    import json
    import math
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "dream_speed.py"
    common = ["--batches", "8,16", "--dream-steps", "64", "--real-steps", "50", "--vec-envs", "4",
              "--vec-iterations", "5", "--warmup", "1", "--z-dim", "8", "--hidden", "32", "--episode-len", "5",
              "--max-episode-steps", "20", "--repeats", "1", "--peak-sizes", "32,64",
              "--diffusion-batches", "1,3", "--diffusion-steps", "2", "--resolution", "16", "--channels", "8,16",
              "--no-train", "--json"]
    proc = subprocess.run([sys.executable, str(script), *common], capture_output=True, text=True, timeout=180,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["world_models"] == ["dropout", "diffusion"] and out["skipped"] is None
    drop, diff = out["dropout"], out["diffusion"]
    assert "target_ratio" not in drop and drop["mask_mode"] == "per_episode"
    # FLOPs from the shapes: 2 * (4H (z + A + H) + H (3 K z + 2)) with z=8, H=32, K=5, A=15
    assert drop["model"]["flops_per_dream_step"] == 2 * (4 * 32 * (8 + 15 + 32) + 32 * (3 * 5 * 8 + 2))
    peak = drop["matmul_peak"]
    assert peak["dtype"] == "float32" and peak["gflops"] > 0 and peak["best_size"] in (32, 64)
    assert out["real"]["single"]["steps_per_s"] > 0
    assert out["real"]["vec"]["steps_per_s"] > 0 and "dodge_v1" in out["real"]["vec"]["env"]
    rows = drop["dream"]
    assert [(r["precision"], r["num_envs"]) for r in rows] == [
        ("float32", 8), ("float32", 16), ("bfloat16", 8), ("bfloat16", 16)]
    for r in rows:
        assert math.isfinite(r["steps_per_s"]) and r["steps_per_s"] > 0 and r["steps_per_cpu_s"] > 0
        assert r["gflops"] > 0 and r["fraction_of_peak"] > 0 and r["fraction_of_peak_cpu"] > 0
        assert r["episodes_finished"] > 0  # the calibrated done head ends episodes
    # the diffusion dream, same run: frames/s per asked batch, and the ratio to DIAMOND's 1,570 frames/s
    assert [r["num_envs"] for r in diff["dream"]] == [1, 3] and diff["train"] is None
    for r in diff["dream"]:
        assert math.isfinite(r["frames_per_s"]) and r["frames_per_s"] > 0 and r["iterations"] == 2
        assert r["env_steps"] == 2 * r["num_envs"] and r["num_steps"] == 3
        assert r["diamond_ratio"] == pytest.approx(r["frames_per_s"] / 1570.0)
    if not torch.cuda.is_available():
        proc = subprocess.run([sys.executable, str(script), *common, "--device", "cuda", "--no-real"],
                              capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "cuda not available" in proc.stderr
        out = json.loads(proc.stdout)
        assert out["skipped"] == "cuda not available" and out["real"] == {"vec": None, "single": None}
        assert out["dropout"]["dream"] == [] and out["dropout"]["matmul_peak"] is None
        assert out["diffusion"]["dream"] == [] and out["diffusion"]["train"] is None


def test_dream_speed_calibration_gives_the_asked_episode_length(monkeypatch) -> None:
    """The benchmark times dreams whose sampled terminations come about once per ``episode_len``
    steps (before the fix it calibrated for the threshold rule and dreams reset every ~2 steps)."""
    import importlib.util
    from pathlib import Path

    from simlab.world_models.dropout import DreamVecEnv

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dream_speed.py"
    monkeypatch.syspath_prepend(str(path.parent))  # the benchmark imports its sibling _machine
    spec = importlib.util.spec_from_file_location("dream_speed_bench", path)
    bench = importlib.util.module_from_spec(spec)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")  # the module sets these on import; undone after the test
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    model = bench.build_model(8, 32, 2, seed=0)
    bench.calibrate_done_bias(model, 40.0, "per_episode", seed=0)
    env = DreamVecEnv(model, 64, mask_mode="per_episode", max_episode_steps=10**6, seed=1)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    ends = sum(int(env.step(rng.integers(0, 15, 64))[2].sum()) for _ in range(100))
    rate = ends / (64 * 100)
    assert 1 / 80 < rate < 1 / 20, rate


def test_rare_deaths_end_dreams_when_sampled() -> None:
    """A done head with p_done ~ 1/50 never crosses 0.5, but sampled deaths end dreams at ~50 steps."""
    import numpy as np
    import torch

    from simlab.errors import ConfigError
    from simlab.world_models.dropout.mdnrnn import MDNRNN
    from simlab.world_models.dropout.model import DropoutWorldModel
    from simlab.world_models.dropout.vae import ConvVAE

    torch.manual_seed(0)
    vae, rnn = ConvVAE(z_dim=8), MDNRNN(z_dim=8, hidden=16, mixtures=2)
    with torch.no_grad():  # done head: constant logit log(1/49) -> p_done = 0.02
        for name, p in rnn.named_parameters():
            if "done" in name:
                p.zero_()
                if name.endswith("bias"):
                    p.fill_(float(np.log(1 / 49)))
    model = DropoutWorldModel(vae, rnn, torch.zeros(4, 8))
    lengths = {}
    for mode in ("sample", "threshold"):
        env = model.as_vec_env(64, mask_mode="none", max_episode_steps=400, done_mode=mode, seed=0)
        env.reset(seed=0)
        ended = []
        for _ in range(400):
            _, _, term, _trunc, info = env.step(np.zeros(64, np.int64))
            if "_episode" in info:
                ended.extend(info["episode_length"][info["_episode"] & term])
        lengths[mode] = ended
    assert not lengths["threshold"], "p_done < 0.5 never terminates under thresholding"
    assert len(lengths["sample"]) > 200 and 35 < np.mean(lengths["sample"]) < 70
    with pytest.raises(ConfigError, match="done_mode"):
        model.as_vec_env(2, done_mode="sometimes")


def test_expected_done_weights_rewards_by_survival() -> None:
    """``done_mode="expected"`` never ends a dream; step t's reward is weighted by prod_{s<t}(1 - p_done),
    so with p_done = 0.02 and reward r the return of T steps is r (1 - 0.98^T) / 0.02, the mean of
    what sampled deaths give."""
    import numpy as np
    import torch

    from simlab.world_models.dropout.mdnrnn import MDNRNN
    from simlab.world_models.dropout.model import DropoutWorldModel
    from simlab.world_models.dropout.vae import ConvVAE

    torch.manual_seed(0)
    vae, rnn = ConvVAE(z_dim=8), MDNRNN(z_dim=8, hidden=16, mixtures=2)
    with torch.no_grad():  # constant heads: p_done = 0.02, reward 1.5
        for name, p in rnn.named_parameters():
            if "done" in name or "reward" in name:
                p.zero_()
                if name.endswith("bias"):
                    p.fill_(float(np.log(1 / 49)) if "done" in name else 1.5)
    model = DropoutWorldModel(vae, rnn, torch.zeros(4, 8))
    steps = 30
    env = model.as_vec_env(8, mask_mode="none", max_episode_steps=steps, done_mode="expected", seed=0)
    env.reset(seed=0)
    total = np.zeros(8)
    for t in range(steps):
        _, rew, term, trunc, info = env.step(np.zeros(8, np.int64))
        assert not term.any()
        total += rew
        assert np.allclose(rew, 1.5 * 0.98 ** t, rtol=1e-5)
    assert trunc.all() and np.allclose(info["episode_return"], total)
    assert np.allclose(total, 1.5 * (1 - 0.98 ** steps) / 0.02, rtol=1e-4)
    env.reset(seed=0)  # a new episode starts alive again
    _, rew, *_ = env.step(np.zeros(8, np.int64))
    assert np.allclose(rew, 1.5, rtol=1e-5)


# ---- common random numbers (CMA-ES candidates x episodes) ------------------------------------

@pytest.mark.parametrize("mask_mode,done_mode", [("per_episode", "sample"), ("per_step", "sample"),
                                                 ("mc_mean", "expected"), ("none", "sample")])
def test_noise_group_gives_equal_actions_equal_dreams(vae, mask_mode, done_mode) -> None:
    """Slots i and i % G draw the same latents, masks and deaths: the same actions give the same
    dream; without the group they differ. A different action in one block changes only that block."""
    model = random_model(vae, done_bias=-3.0)  # deaths happen (p ~ 0.05 per step)
    g, p = 4, 3
    kw = {"mask_mode": mask_mode, "dropout": 0.0 if mask_mode == "none" else 0.3, "seed": 5,
          "max_episode_steps": 50, "done_mode": done_mode, "mc_samples": 2}
    starts = np.tile(np.arange(g) % 5, p)
    rng = np.random.default_rng(0)
    acts = [np.tile(rng.integers(0, A, g), p) for _ in range(12)]
    env = DreamVecEnv(model, g * p, **kw)
    env.reset(options={"start_index": starts, "noise_group": g})
    out = rollout(env, acts)
    for obs, rew, term, trunc in out:
        for x in (obs, rew, term, trunc):
            blocks = x.reshape(p, g, *x.shape[1:])
            np.testing.assert_array_equal(blocks[0], blocks[1])
            np.testing.assert_array_equal(blocks[0], blocks[2])
    assert any(o[2].any() for o in out) or done_mode == "expected"  # deaths were drawn in common
    plain = DreamVecEnv(model, g * p, **kw)
    plain.reset(options={"start_index": starts})
    obs = rollout(plain, acts)[-1][0].reshape(p, g, -1)
    assert not np.array_equal(obs[0], obs[1])  # independent draws differ
    # block 1 acts differently: blocks 0 and 2 still agree
    env.reset(seed=5, options={"start_index": starts, "noise_group": g})
    acts2 = [a.copy() for a in acts]
    for a in acts2:
        a[g:2 * g] = (a[g:2 * g] + 1) % A
    last = rollout(env, acts2)[-1][0].reshape(p, g, -1)
    np.testing.assert_array_equal(last[0], last[2])
    assert not np.array_equal(last[0], last[1])


def test_noise_group_is_validated_and_cleared_by_a_plain_reset(vae) -> None:
    env = DreamVecEnv(random_model(vae), 6)
    for bad in (4, -1, 2.5, True, "2"):
        with pytest.raises(ConfigError, match="noise_group"):
            env.reset(options={"noise_group": bad})
    env.reset(options={"noise_group": 3})
    assert env.core.noise_group == 3
    env.reset()
    assert env.core.noise_group == 0


def test_cmaes_common_noise_ranks_identical_candidates_equal(vae) -> None:
    """With common noise, identical candidates get identical fitness; it needs common starts."""
    from simlab.policies.cmaes import CMAESConfig, LinearController, rollout_controllers

    model = random_model(vae, done_bias=-3.0)
    c = LinearController(Z + H, [0, 1, 2])
    c.set_params(np.random.default_rng(1).normal(0, 1, c.num_params))
    params = np.stack([c.get_params()] * 3)

    def make(n: int, s: int) -> DreamVecEnv:
        return DreamVecEnv(model, n, mask_mode="per_episode", dropout=0.3, seed=s, max_episode_steps=20)

    same = rollout_controllers(make, params, Z + H, [0, 1, 2], 8, 3, 20, common_starts=True, common_noise=True)
    np.testing.assert_array_equal(same["returns"][0], same["returns"][1])
    np.testing.assert_array_equal(same["returns"][0], same["returns"][2])
    apart = rollout_controllers(make, params, Z + H, [0, 1, 2], 8, 3, 20, common_starts=True)
    assert not np.array_equal(apart["returns"][0], apart["returns"][1])
    with pytest.raises(ConfigError, match="common_starts"):
        CMAESConfig(common_noise=True)
    with pytest.raises(ConfigError, match="common_starts"):
        rollout_controllers(make, params, Z + H, [0, 1, 2], 8, 3, 20, common_noise=True)


def test_held_action_returns_match_single_dreams_and_pick_the_spread(vae) -> None:
    """Deterministic dreams (tau 0, no masks): every row x action equals its own single dream, in
    any chunking; informative_rows keeps the rows whose actions matter most."""
    from simlab.world_models.dropout.starts import held_action_returns, informative_rows

    model = random_model(vae, done_bias=-2.0, n_start=5)
    kw = {"mask_mode": "none", "temperature": 0.0, "max_episode_steps": 6, "done_mode": "expected"}

    def make(n: int, s: int) -> DreamVecEnv:
        return DreamVecEnv(model, n, seed=s, **kw)

    got = held_action_returns(make, 5, [0, 2], 6, seed=1, chunk=2)
    np.testing.assert_allclose(got, held_action_returns(make, 5, [0, 2], 6, seed=9, chunk=64), rtol=1e-6)
    for row in range(5):
        for j, a in enumerate((0, 2)):
            env = DreamEnv(model, **kw)
            env.reset(options={"start_index": row})
            total, done = 0.0, False
            while not done:
                _, r, term, trunc, _ = env.step(a)
                total, done = total + r, term or trunc
            assert got[row, j] == pytest.approx(total, rel=1e-5)
    assert (got[:, 0] != got[:, 1]).any()
    spread = np.abs(got[:, 0] - got[:, 1])
    top = informative_rows(got, 0.4)
    assert len(top) == 2 and set(top) == set(np.argsort(-spread)[:2])
    np.testing.assert_array_equal(informative_rows(np.array([[0, 1], [0, 5], [2, 2]]), 1 / 3), [1])
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="fraction"):
            informative_rows(got, bad)


def test_common_starts_draw_from_the_start_pool(vae) -> None:
    from simlab.policies.panel import common_start_rows

    env = DreamVecEnv(random_model(vae, n_start=5), 4)
    rng = np.random.default_rng(0)
    assert set(common_start_rows(env, rng, 200)) == {0, 1, 2, 3, 4}
    env.start_pool = np.array([1, 3])
    assert set(common_start_rows(env, rng, 200)) == {1, 3}
    env.start_pool = np.array([1, 7])
    with pytest.raises(ConfigError, match="start_pool"):
        common_start_rows(env, rng, 4)
