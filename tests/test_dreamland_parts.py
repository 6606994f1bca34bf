"""The parts Dream Land's report is built from: fixed policies, the policy panel and its rank
correlation, the world-model diagnostics, the real-game feature env, the foreground-weighted VAE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import simlab  # noqa: F401
from simlab.errors import ConfigError
from simlab.integrity import seal
from simlab.policies.fixed import FIXED_POLICIES, RandomHeld, Sweep
from simlab.policies.panel import rankdata, rollout_actors, spearman, split_half_ceiling
from simlab.world_models.dropout.diagnostics import hazard_recall, multistep_errors


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- fixed policies --------------------------------------------------------------------------
@pytest.mark.parametrize("speed", [2, 3])
def test_sweep_touches_both_walls_and_keeps_going(speed: int) -> None:
    from simlab.envs.procgen.dodge import Dodge
    from simlab.envs.procgen.vec import ProcgenVecEnv

    env = ProcgenVecEnv("dodge", 1, num_levels=1)
    env.game.agent_speed = speed  # the sweep's timing follows the game's speed
    env.reset(seed=0)
    pol = Sweep(speed)
    xs = []
    for _ in range(200):
        a = pol.act(np.zeros((1, 64, 64, 3), np.uint8))
        env.game.step(a)  # the engine alone: no deaths, only the agent's walk
        xs.append(int(env.game.agent_x[0]))
    xs = np.array(xs)
    assert xs.min() == 0 and xs.max() == 64 - 8 and (np.abs(np.diff(xs)) > 0).mean() > 0.8
    assert isinstance(env.game, Dodge)


def test_random_held_holds_each_action_one_to_ten_steps() -> None:
    pol = RandomHeld(0)
    acts = np.array([pol.act(np.zeros((4, 1)))[0] for _ in range(2000)])
    runs = np.diff(np.flatnonzero(np.diff(acts) != 0))
    # Holds of 1-10 steps (mean 5.5); two equal draws in a row (1 in 15) merge into one longer run.
    assert (runs <= 10).mean() > 0.85 and 4.5 < runs.mean() < 7.5
    assert len(set(acts.tolist())) == 15


def test_fixed_policies_score_differently_on_dodge() -> None:
    from simlab.policies.evaluate import evaluate

    res = {n: evaluate(f(0, 3), "simlab/Dodge-v1", ["levels:0:200"], 16, num_envs=16, videos_per_split=0,
                       use_backgrounds=False)["levels:0:200"]["mean_return"] for n, f in FIXED_POLICIES.items()}
    assert len(set(res.values())) == len(res) and all(0 < r < 1000 for r in res.values())


# ---- panel and rank correlation ----------------------------------------------------------------
def test_rankdata_and_spearman_match_known_values() -> None:
    np.testing.assert_array_equal(rankdata(np.array([3.0, 1.0, 4.0, 1.0, 5.0])), [3.0, 1.5, 4.0, 1.5, 5.0])
    assert spearman(np.arange(10), np.arange(10) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(10), -np.arange(10)) == pytest.approx(-1.0)
    # scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233
    assert spearman(np.array([1, 2, 3, 4, 5]), np.array([5, 6, 7, 8, 7])) == pytest.approx(0.8207826816681233)
    assert np.isnan(spearman(np.ones(4), np.arange(4)))
    with pytest.raises(ConfigError):
        spearman(np.ones(3), np.ones(4))


def test_rollout_actors_gives_each_actor_its_own_slots() -> None:
    """On Dodge-v1 standing still dies; the returns of a panel equal those of each policy alone."""
    from simlab.envs.procgen.vec import ProcgenVecEnv
    from simlab.policies.fixed import StandStill, Sweep

    def make_env(n: int, seed: int):
        return ProcgenVecEnv("dodge_v1", n, num_levels=200, use_backgrounds=False)

    both = rollout_actors(make_env, [StandStill(), Sweep(3)], 4, seed=5, max_steps=300)
    alone = rollout_actors(make_env, [StandStill()], 4, seed=5, max_steps=300)
    assert both.shape == (2, 4)
    np.testing.assert_array_equal(both[0], alone[0])
    assert not np.array_equal(both[0], both[1])


class _StartRecorder:
    """A one-step vec env that pays each slot the start state it was dealt (``reward = start row``)."""

    num_start_states = 1000

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.rows = n, None

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.rows = (np.asarray(options["start_index"]) if options else rng.integers(0, 1000, self.n))
        return np.zeros((self.n, 1)), {}

    def step(self, act):
        return np.zeros((self.n, 1)), self.rows.astype(float), np.ones(self.n, bool), np.zeros(self.n, bool), {}

    def close(self) -> None:
        pass


def test_rollout_actors_common_starts_deal_every_actor_the_same_situations() -> None:
    """With common starts, actor i's j-th episode starts where actor 0's did; without, they differ."""
    class Idle:
        def act(self, obs):
            return np.zeros(len(obs), np.int64)

    common = rollout_actors(_StartRecorder, [Idle(), Idle(), Idle()], 8, seed=3, max_steps=5, common_starts=True)
    np.testing.assert_array_equal(common[0], common[1])
    np.testing.assert_array_equal(common[0], common[2])
    assert len(np.unique(common[0])) > 1  # different situations across episodes
    drawn = rollout_actors(_StartRecorder, [Idle(), Idle()], 8, seed=3, max_steps=5)
    assert not np.array_equal(drawn[0], drawn[1])


def test_split_half_ceiling_separates_signal_from_noise() -> None:
    """Actors that truly differ (large gaps, small noise) leave a ceiling near 1; actors that are the
    same up to noise leave a low one; too few episodes are refused."""
    rng = np.random.default_rng(0)
    true = np.arange(20, dtype=float)[:, None] * 10
    assert split_half_ceiling(true + rng.normal(0, 1, (20, 16))) > 0.98
    noise_only = [split_half_ceiling(rng.normal(0, 1, (20, 16))) for _ in range(50)]
    assert np.mean(noise_only) < 0.5
    assert split_half_ceiling(np.ones((5, 4))) != split_half_ceiling(np.ones((5, 4)))  # nan: constant
    with pytest.raises(ConfigError):
        split_half_ceiling(np.ones((5, 1)))


# ---- diagnostics ---------------------------------------------------------------------------------
def _frames_with_a_fireball() -> tuple[np.ndarray, np.ndarray]:
    real = np.zeros((2, 64, 64, 3), np.uint8)
    real[:, 10:18, 20:28] = [255, 110, 0]
    boxes = np.full((2, 3, 4), -1, np.int16)
    boxes[:, 0] = [20, 10, 28, 18]
    return real, boxes


def test_hazard_recall_sees_a_kept_fireball_and_not_a_lost_or_blurred_one() -> None:
    real, boxes = _frames_with_a_fireball()
    assert hazard_recall(real, real, boxes)["recall"] == 1.0
    assert hazard_recall(real, np.zeros_like(real), boxes)["recall"] == 0.0
    grey = np.full_like(real, 128)  # a uniform grey "reconstruction" recalls nothing
    assert hazard_recall(real, grey, boxes)["recall"] == 0.0
    dim = real.copy()
    dim[:, 10:18, 20:28] = [170, 70, 0]  # faded but there
    assert hazard_recall(real, dim, boxes) == {"recall": 1.0, "hazards": 2, "visible": 2}
    with pytest.raises(ConfigError):
        hazard_recall(real, real[:1], boxes)


def _tiny_world_model():
    from simlab.world_models.dropout.mdnrnn import MDNRNN
    from simlab.world_models.dropout.model import DropoutWorldModel
    from simlab.world_models.dropout.vae import ConvVAE

    torch.manual_seed(0)
    vae = ConvVAE(z_dim=4, width=4).eval()
    rnn = MDNRNN(z_dim=4, n_actions=15, hidden=8, mixtures=2).eval()
    return DropoutWorldModel(vae, rnn, torch.zeros(1, 4), env_id="simlab/Dodge-v1")


def test_multistep_errors_baselines_are_exact() -> None:
    m = _tiny_world_model()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 13, 64, 64, 3), dtype=np.uint8)
    frames[:, 5:] = frames[:, 4:5]  # the scene freezes after the burn-in: "repeat last frame" is exact
    acts = rng.integers(0, 15, (3, 12))
    out = multistep_errors(m, frames, acts, [1, 4, 8], burn_in=5)
    assert out["horizon"] == [1, 4, 8]
    assert out["frame_mse_repeat"] == [0.0, 0.0, 0.0] and out["latent_mse_repeat"] == [0.0, 0.0, 0.0]
    assert all(e > 0 for e in out["frame_mse"]) and all(e > 0 for e in out["frame_mse_vae"])
    with pytest.raises(ConfigError, match="too short"):
        multistep_errors(m, frames, acts, [16], burn_in=5)


# ---- the real game through world-model features ---------------------------------------------------
def test_real_feature_env_matches_the_agent_that_plays_the_real_game() -> None:
    """The upper bound trains on exactly the features a dream-trained controller sees in the real
    game: the env's observations equal WorldModelAgent.features along the same actions."""
    from simlab.envs.procgen.vec import ProcgenVecEnv
    from simlab.policies.cmaes import DropoutWorldModelView, WorldModelAgent
    from simlab.policies.real_features import RealFeatureVecEnv

    m = _tiny_world_model()
    env = RealFeatureVecEnv(ProcgenVecEnv("dodge_v1", 4, num_levels=10), DropoutWorldModelView(m), m.obs_dim)
    ref = ProcgenVecEnv("dodge_v1", 4, num_levels=10)

    class Scripted:
        def __init__(self) -> None:
            self.t = 0

        def act(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:
            self.t += 1
            return np.array([1, 4, 7, 4]) if self.t % 3 else np.array([7, 7, 1, 1])

    agent = WorldModelAgent(DropoutWorldModelView(m), Scripted())
    ctrl = Scripted()
    x, _ = env.reset(seed=2)
    frames, _ = ref.reset(seed=2)
    ends = 0
    for _ in range(400):
        np.testing.assert_array_equal(x, agent.features(frames)[1])
        a = ctrl.act(x)
        agent.controller.t = ctrl.t - 1
        assert np.array_equal(agent.act(frames), a)
        x, r, term, trunc, _ = env.step(a)
        frames, r2, _, _, _ = ref.step(a)
        np.testing.assert_array_equal(r, r2)
        if (term | trunc).any():
            agent.reset(term | trunc)
            ends += 1
    assert ends > 0  # crossed episode boundaries (recurrent state reset per slot)
    assert x.shape == (4, m.obs_dim) and env.single_observation_space.shape == (m.obs_dim,)


# ---- the foreground-weighted VAE -------------------------------------------------------------------
def test_foreground_weight_counts_sprite_errors_more() -> None:
    from simlab.world_models.dropout.vae import ConvVAE, foreground_mask

    real, _ = _frames_with_a_fireball()
    mask = foreground_mask(torch.as_tensor(real).float() / 255)
    assert mask.shape == (2, 64, 64) and int(mask[0].sum()) == 64
    torch.manual_seed(0)
    plain = ConvVAE(z_dim=4, width=4)
    weighted = ConvVAE(z_dim=4, width=4, fg_weight=10.0)
    weighted.load_state_dict(plain.state_dict())
    g = [torch.Generator().manual_seed(1) for _ in range(3)]
    with torch.no_grad():
        _, r0, _ = plain.loss(real, generator=g[0])
        _, r1, _ = weighted.loss(real, generator=g[1])
        recon = plain(real, generator=g[2])[0]  # the same reconstruction both losses saw
    err = (recon - torch.as_tensor(real).float() / 255).pow(2).sum(-1)  # (B, 64, 64)
    fg_err = float((err * mask).sum(dim=(1, 2)).mean())
    assert fg_err > 0 and float(r1) - float(r0) == pytest.approx(10.0 * fg_err, rel=1e-4)
    with pytest.raises(ConfigError, match="fg_weight"):
        ConvVAE(z_dim=4, fg_weight=-1.0)
    with pytest.raises(ConfigError, match="width"):
        ConvVAE(z_dim=4, width=0)


def test_density_weight_favours_small_sprites() -> None:
    """``fg_density_power``: a lone 5-px sprite's pixels weigh more than a 20-px block's interior
    (weight 1, its 9-px window all foreground), the background nothing; power 0 is the mask."""
    from simlab.world_models.dropout.vae import ConvVAE, foreground_mask, foreground_weight

    f = torch.zeros(1, 64, 64, 3)
    f[0, 5:25, 5:25] = torch.tensor([0.0, 0.5, 1.0])  # a large sprite
    f[0, 40:45, 40:45] = torch.tensor([1.0, 0.4, 0.0])  # a just-thrown fireball
    assert torch.equal(foreground_weight(f, 0.0), foreground_mask(f))
    w = foreground_weight(f, 0.5)
    assert float(w[0, 15, 15]) == pytest.approx(1.0) and float(w[0, 60, 60]) == 0.0
    assert float(w[0, 42, 42]) == pytest.approx((81 / 25) ** 0.5)  # centre of the 5x5 sprite
    assert torch.allclose(w[0, 40:45, 40:45], torch.tensor((81 / 25) ** 0.5))  # 1.8x the block interior
    with pytest.raises(ConfigError, match="fg_density_power"):
        ConvVAE(z_dim=4, fg_weight=1.0, fg_density_power=-0.5)


def test_cosine_schedule_decays_the_vae_rate_to_zero() -> None:
    """``lr_schedule=cosine`` lowers Adam's rate every step and ends at 0; ``constant`` keeps it; the
    two train different weights from the same seed."""
    from simlab.world_models.dropout.vae import VAETrainConfig, train_vae

    frames = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    rates: dict[str, list[float]] = {}
    models = {}
    for sched in ("cosine", "constant"):
        rates[sched] = []
        cfg = VAETrainConfig(z_dim=4, width=4, epochs=3, batch_size=8, lr=1e-3, lr_schedule=sched)
        models[sched] = train_vae(frames, cfg, seed=0, log=lambda step, m, r=rates[sched]: r.append(m["vae/lr"]))
    assert rates["constant"] == [1e-3] * 3
    assert rates["cosine"][0] < 1e-3 and rates["cosine"] == sorted(rates["cosine"], reverse=True)
    assert rates["cosine"][-1] == pytest.approx(0.0, abs=1e-12)
    assert any(not torch.equal(a, b) for a, b in zip(models["cosine"].parameters(), models["constant"].parameters()))
    with pytest.raises(ConfigError, match="lr_schedule"):
        VAETrainConfig(lr_schedule="linear")


def test_fidelity_subsets_split_trained_from_untrained() -> None:
    from simlab.pipelines.dreamland import fidelity_subsets

    names = ["fixed: stand still", "fixed: sweep wall to wall", "random linear 0", "random linear 1",
             "CMA mean gen 5", "CMA mean gen 10", "final seed 0", "upper bound seed 0"]
    real = np.array([100, 150, 200, 250, 300, 310, 320, 330], float)
    # the dream ranks the untrained half right and the trained half exactly backwards
    dream = np.array([1, 2, 3, 4, 9, 8, 7, 6], float)
    out = fidelity_subsets(dream, real, names)
    assert out["spearman_untrained"] == pytest.approx(1.0) and out["spearman_trained"] == pytest.approx(-1.0)
    assert fidelity_subsets(dream[2:], real[2:], names[2:])["spearman_untrained"] is None  # 2 untrained: too few


# ---- dreams that start from burned-in real states ------------------------------------------------
def test_dream_starts_carry_the_real_state_and_reload(tmp_path) -> None:
    """Burn-in starts: row i is (z_t, state before z_t) of a real episode; a dream reset there
    observes [z_t, h_t]; saved and reloaded bit-exactly; files without a state bank still load."""
    from safetensors.torch import load_file, save_file

    from simlab.pipelines.dreamland import dream_starts
    from simlab.world_models.dropout.model import DropoutWorldModel

    m = _tiny_world_model()
    rng = np.random.default_rng(0)
    zs = [rng.normal(size=(21, 4)).astype(np.float32), rng.normal(size=(9, 4)).astype(np.float32)]
    acts = [rng.integers(0, 15, 20), rng.integers(0, 15, 8)]
    z0, (h0, c0) = dream_starts(m.rnn, zs, acts, every=8)
    assert z0.shape == (3 + 1, 4) and h0.shape == c0.shape == (4, 8)  # steps 0, 8, 16 and 0
    with torch.no_grad():  # the state before step 8 of episode 0, by the RNN's own sequence pass
        out = m.rnn(torch.as_tensor(zs[0][None, :8]), torch.as_tensor(acts[0][None, :8]))
    torch.testing.assert_close(h0[1], out.state[0][0])
    torch.testing.assert_close(z0[1], torch.as_tensor(zs[0][8]))
    assert float(h0[0].abs().sum()) == 0.0  # step 0: a real episode's start
    # danger starts: the steps 2, 4, 6 before the end of an episode that ended in a death
    dones = [np.zeros(20, bool), np.zeros(8, bool)]
    dones[0][-1] = True
    zd, _ = dream_starts(m.rnn, zs, acts, every=8, dones=dones, danger=6)
    np.testing.assert_array_equal(zd[:6].numpy(), zs[0][[0, 8, 13, 15, 16, 17]])
    assert zd.shape[0] == 6 + 1  # the episode cut without a death adds none
    _, (hd, cd) = dream_starts(m.rnn, zs, acts, every=8, dones=dones, danger=6)
    rows = [(0, t) for t in (0, 8, 13, 15, 16, 17)] + [(1, 0)]
    for r, (ep, t) in enumerate(rows):  # episodes of unequal length run side by side: each row is
        with torch.no_grad():           # the state of its own episode's sequence pass
            out = m.rnn(torch.as_tensor(zs[ep][None, :t]), torch.as_tensor(acts[ep][None, :t])) if t else None
        want_h = out.state[0][0] if t else torch.zeros(8)
        want_c = out.state[1][0] if t else torch.zeros(8)
        torch.testing.assert_close(hd[r], want_h, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(cd[r], want_c, atol=1e-6, rtol=1e-5)
    wm = DropoutWorldModel(m.vae, m.rnn, z0, env_id="simlab/Dodge-v1", start_state=(h0, c0))
    wm.save_pretrained(tmp_path / "wm")
    back = DropoutWorldModel.from_pretrained(tmp_path / "wm")
    torch.testing.assert_close(back.start_h, h0)
    torch.testing.assert_close(back.start_c, c0)
    env = back.as_vec_env(2, mask_mode="none", dropout=0.0)
    obs, _ = env.reset(seed=0, options={"start_index": np.array([1, 2])})
    np.testing.assert_allclose(obs[:, 4:], h0[[1, 2]].numpy(), atol=1e-6)
    # a world model saved before start states existed (start_z only) starts dreams from zeros
    f = tmp_path / "wm" / "start_z.safetensors"
    save_file({"start_z": load_file(str(f))["start_z"]}, str(f))
    doc = json.loads((tmp_path / "wm" / "world_model.json").read_text())
    doc.pop("start_z_sha256")
    (tmp_path / "wm" / "world_model.json").write_text(json.dumps(seal(doc)))
    old = DropoutWorldModel.from_pretrained(tmp_path / "wm")
    assert float(old.start_h.abs().sum()) == 0.0 and old.start_z.shape == (4, 4)


def test_auc_matches_known_values() -> None:
    from simlab.world_models.dropout.diagnostics import auc

    assert auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([0, 0, 1, 1])) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5]), np.array([0, 1, 0])) == 0.5
    # sklearn.metrics.roc_auc_score([0, 1, 0, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.3]) = 0.8333...
    assert auc(np.array([0.1, 0.4, 0.35, 0.8, 0.3]), np.array([0, 1, 0, 1, 1])) == pytest.approx(5 / 6)
    assert np.isnan(auc(np.ones(3), np.zeros(3)))


def test_open_loop_forward_feeds_the_models_own_mean() -> None:
    """``feedback_from=k``: steps >= k consume the previous step's predicted mean latent, exactly
    as a deterministic dream would; steps < k are teacher-forced (same outputs as plain forward)."""
    from simlab.world_models.dropout.diagnostics import mixture_mean

    m = _tiny_world_model().rnn
    rng = np.random.default_rng(0)
    z = torch.as_tensor(rng.normal(size=(3, 10, 4)).astype(np.float32))
    a = torch.as_tensor(rng.integers(0, 15, (3, 10)))
    with torch.no_grad():
        tf = m(z, a)
        ol = m(z, a, feedback_from=6)
        torch.testing.assert_close(ol.mu[:, :6], tf.mu[:, :6])
        state, zin, mus = None, None, []
        for t in range(10):
            out = m.step(z[:, t] if t < 6 else zin, a[:, t], state)
            state = out.state
            zin = mixture_mean(out.logpi, out.mu)
            mus.append(out.mu)
    torch.testing.assert_close(ol.mu, torch.stack(mus, 1))
    assert not torch.allclose(ol.mu[:, 7:], tf.mu[:, 7:])


def test_main_job_runs_without_diffusers(tmp_path) -> None:
    """The README's quick start installs only the ``torch`` extra: the default world model must not
    need diffusers (it once failed while merely validating the diffusion dream's settings)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['diffusers'] = None; sys.modules['accelerate'] = None\n"
            "from simlab.cli import main\n"
            f"sys.exit(main(['train', 'dreamland', '--preset', 'debug', '--out', {str(tmp_path / 'run')!r}]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "run" / "report.json").exists()


def test_transfer_verdict_does_not_round_a_miss_into_a_hit() -> None:
    """1.496x with disjoint CIs misses the 1.5x target; 1.5x with overlapping CIs misses it too."""
    from simlab.pipelines.dreamland_report import verdict

    def summary(var_mean: float, var_ci: float) -> dict:
        row = lambda m, c: {"train": {"mean": m, "ci95": c}, "heldout": {"mean": m, "ci95": c}}  # noqa: E731
        return {"variants": {"dreamland": row(var_mean, var_ci)}, "fixed_policies": {"random": row(100.0, 10.0)}}

    assert verdict(summary(149.6, 20.0))["transfer_target_met"] is False
    assert verdict(summary(150.0, 41.0))["transfer_target_met"] is False  # CIs overlap
    v = verdict(summary(150.0, 20.0))
    assert v["transfer_target_met"] is True and v["heldout_ratio"] == pytest.approx(1.5)


def test_transfer_verdict_gives_no_ratio_against_a_non_positive_baseline() -> None:
    """CarRacing's random play scores below 0: a ratio would be meaningless (it was 2e9x), so the
    verdict gives the difference and leaves the ratio and the target undefined."""
    from simlab.pipelines.dreamland_report import verdict

    row = lambda m: {"train": {"mean": m, "ci95": 1.0}, "heldout": {"mean": m, "ci95": 1.0}}  # noqa: E731
    v = verdict({"variants": {"dreamland": row(2.1)}, "fixed_policies": {"uniform random": row(-4.1)}})
    assert v["heldout_ratio"] is None and v["transfer_target_met"] is None
    assert v["heldout_difference"] == pytest.approx(6.2) and v["heldout_cis_disjoint"] is True
