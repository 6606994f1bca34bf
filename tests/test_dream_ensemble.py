"""Ensemble dreams: members follow the primary's dream and pool its termination probability."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simlab.errors import ConfigError
from simlab.world_models.dropout import ConvVAE, DropoutWorldModel
from simlab.world_models.dropout.ensemble import ensemble_vec_env, pool_probs
from tests.test_dream import A, Z, random_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vae() -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(z_dim=Z).eval()


def member(model: DropoutWorldModel) -> tuple:
    return (model.rnn, model.start_h, model.start_c)


def run(env, steps: int, seed: int = 3) -> tuple[np.ndarray, ...]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    out = [obs]
    rews, terms = [], []
    for _ in range(steps):
        obs, r, term, _, _ = env.step(rng.integers(0, A, env.num_envs))
        out.append(obs)
        rews.append(r)
        terms.append(term)
    return np.stack(out), np.stack(rews), np.stack(terms)


def test_pool_probs() -> None:
    p = torch.tensor([[0.1, 0.5], [0.3, 0.2]])
    assert torch.allclose(pool_probs(p, "max"), torch.tensor([0.3, 0.5]))
    assert torch.allclose(pool_probs(p, "mean"), torch.tensor([0.2, 0.35]))
    with pytest.raises(ConfigError, match="pool"):
        pool_probs(p, "min")


@pytest.mark.parametrize("done_mode", ["sample", "expected"])
def test_a_copy_of_the_primary_changes_nothing(vae, done_mode) -> None:
    """Members that predict what the primary predicts (the same MDN-RNN; no dropout, which members
    never use) leave every step as the plain dream's."""
    model = random_model(vae, seed=1, done_bias=-2.0)
    kw = {"mask_mode": "none", "dropout": 0.0, "max_episode_steps": 12, "seed": 5, "done_mode": done_mode}
    plain = run(model.as_vec_env(6, **kw), 30)
    for pool in ("max", "mean"):
        ens = run(ensemble_vec_env(model, [member(model), member(model)], 6, pool=pool, **kw), 30)
        for a, b in zip(plain, ens):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_a_pessimistic_member_ends_every_dream(vae) -> None:
    """With ``max`` a member sure of death ends each episode at its first step; with ``mean`` it
    halves survival instead; the observations stay the primary's."""
    model = random_model(vae, seed=1, done_bias=-10.0)         # the primary never predicts death
    doom = random_model(vae, seed=2, done_bias=10.0)           # the member always does
    kw = {"mask_mode": "none", "dropout": 0.0, "max_episode_steps": 20, "seed": 5}
    obs_plain, _, term_plain = run(model.as_vec_env(8, **kw), 10)
    _, _, term_max = run(ensemble_vec_env(model, [member(doom)], 8, pool="max", **kw), 10)
    assert not term_plain.any() and term_max.all()
    env = ensemble_vec_env(model, [member(doom)], 8, pool="max", **kw)
    env.reset(seed=3)
    _, _, _, _, info = env.step(np.random.default_rng(0).integers(0, A, 8))
    np.testing.assert_allclose(np.stack(info["final_obs"]), obs_plain[1], rtol=1e-6)  # the primary's step
    _, r_exp, _ = run(ensemble_vec_env(model, [member(doom)], 8, pool="mean", done_mode="expected", **kw), 3)
    _, r_plain, _ = run(model.as_vec_env(8, done_mode="expected", **kw), 3)
    # survival after one step ~ 1 - (p0 + 1) / 2 ~ 1/2, so the second reward is about half the plain one
    np.testing.assert_allclose(r_exp[0], r_plain[0], rtol=1e-5)
    np.testing.assert_allclose(r_exp[1], r_plain[1] * 0.5, rtol=1e-3)


def test_members_restart_from_their_own_state_at_the_primary_start_row(vae) -> None:
    model = random_model(vae, seed=1, n_start=5)
    h = torch.randn(5, model.hidden)
    c = torch.randn(5, model.hidden)
    env = ensemble_vec_env(model, [(random_model(vae, seed=2, n_start=5).rnn, h, c)], 4, mask_mode="none",
                           dropout=0.0, seed=0)
    env.reset(options={"start_index": np.array([4, 0, 2, 2])})
    torch.testing.assert_close(env.core.mh[0], h[[4, 0, 2, 2]])
    torch.testing.assert_close(env.core.mc[0], c[[4, 0, 2, 2]])


def test_bad_members_are_config_errors(vae) -> None:
    model = random_model(vae, seed=1, n_start=5)
    other = random_model(vae, seed=2, n_start=3)                  # 3 start rows, primary has 5
    with pytest.raises(ConfigError, match="start states"):
        ensemble_vec_env(model, [member(other)], 2, mask_mode="none", dropout=0.0)
    with pytest.raises(ConfigError, match="pool"):
        ensemble_vec_env(model, [member(model)], 2, pool="median", mask_mode="none", dropout=0.0)


def test_pipeline_config_checks_the_ensemble() -> None:
    from simlab.pipelines.dreamland import dreamland_config, member_name

    assert dreamland_config(["debug"], ["ensemble=3"]).ensemble == 3
    with pytest.raises(ConfigError, match="ensemble"):
        dreamland_config(["debug"], ["ensemble=0"])
    with pytest.raises(ConfigError, match="ensemble_pool"):
        dreamland_config(["debug"], ["ensemble_pool=min"])
    assert member_name("dreamland", 0) == "dreamland" and member_name("worldmodels", 2) == "worldmodels_m2"
