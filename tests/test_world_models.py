"""Dropout world model: saving (diffusers layout), ConvVAE, MDN-RNN (masks, MDN loss, sampling), training, container."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simlab.world_models.base import WEIGHTS_NAME, seal_config

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from simlab.errors import ActionError, CheckpointError, ConfigError
from simlab.world_models.dropout import (
    MDNRNN,
    ConvVAE,
    ConvVAEConfig,
    DropoutWorldModel,
    Masks,
    MDNRNNConfig,
    RNNTrainConfig,
    VAETrainConfig,
    encode_frames,
    mdn_loss,
    sample_next_z,
    train_mdnrnn,
    train_vae,
)

torch.set_num_threads(1)

Z, H, A = 8, 32, 3


def tiny_rnn(seed: int = 0, **kw) -> MDNRNN:
    torch.manual_seed(seed)
    return MDNRNN(MDNRNNConfig(**{"z_dim": Z, "n_actions": A, "hidden": H, "mixtures": 3, **kw}))


def square_frames(n: int = 32, seed: int = 0) -> np.ndarray:
    """Simple frames: a coloured 16x16 square at a random place on a dark background."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, 64, 64, 3), np.uint8)
    frames[:] = (40, 40, 60)
    for i in range(n):
        x, y = rng.integers(0, 48, 2)
        frames[i, y:y + 16, x:x + 16] = rng.integers(100, 256, 3)
    return frames


# ---- configs --------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_outside_unit_interval_is_config_error(rate: float) -> None:
    with pytest.raises(ConfigError, match="dropout"):
        MDNRNNConfig(dropout=rate)
    with pytest.raises(ConfigError, match="dropout"):
        RNNTrainConfig(dropout=rate)
    with pytest.raises(ConfigError):
        tiny_rnn().sample_masks(4, rate)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="64x64"):
        ConvVAEConfig(image_size=32)
    with pytest.raises(ConfigError, match="not both"):
        ConvVAE(ConvVAEConfig(), z_dim=4)
    with pytest.raises(ConfigError):
        MDNRNN(hidden=0)
    with pytest.raises(ConfigError):
        MDNRNN(bogus=1)


# ---- ConvVAE --------------------------------------------------------------------------------

def test_vae_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    vae = ConvVAE(z_dim=Z).eval()
    frames = square_frames(3)
    with torch.no_grad():
        mu, logvar = vae.encode(frames)
    assert mu.shape == logvar.shape == (3, Z) and mu.dtype == torch.float32
    with torch.no_grad():
        x = vae.decode(mu)
    assert x.shape == (3, 64, 64, 3) and float(x.min()) >= 0 and float(x.max()) <= 1
    img = vae.decode_uint8(mu)
    assert img.dtype == np.uint8 and img.shape == (3, 64, 64, 3)
    with torch.no_grad():
        total, recon, kl = vae.loss(frames)
    assert math.isclose(float(total), float(recon + kl), rel_tol=1e-6)
    assert float(kl) >= vae.config.kl_tolerance * Z - 1e-5  # free-bits floor
    assert encode_frames(vae, frames, batch_size=2).shape == (3, Z)
    with pytest.raises(ConfigError, match="shape"):
        vae.encode(frames[0])
    with pytest.raises(ConfigError, match="shape"):
        vae.decode(torch.zeros(2, Z + 1))


@pytest.mark.parametrize("width", [8, 32])
def test_vae_decode_equals_its_transposed_conv_stack(width: int) -> None:
    """``decode`` computes the first transposed conv (on a 1x1 input) as one matmul: the frames and
    the gradients must be those of the module stack it stands for, so old checkpoints decode as before."""
    torch.manual_seed(1)
    vae = ConvVAE(z_dim=Z, width=width)
    z = torch.randn(4, Z)
    fast = vae.decode(z)
    ref = vae.decoder(vae.fc_dec(z).view(4, -1, 1, 1)).permute(0, 2, 3, 1)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    g_fast = torch.autograd.grad(fast.square().sum(), vae.decoder[0].weight)[0]
    g_ref = torch.autograd.grad(ref.square().sum(), vae.decoder[0].weight)[0]
    torch.testing.assert_close(g_fast, g_ref, atol=1e-5, rtol=1e-4)


def test_train_vae_reduces_reconstruction_loss() -> None:
    frames = square_frames(32)
    logs: list[tuple[int, dict]] = []
    vae = train_vae(frames, VAETrainConfig(z_dim=Z, epochs=8, batch_size=8, lr=1e-3), seed=0,
                    log=lambda step, m: logs.append((step, m)))
    assert [s for s, _ in logs] == [4 * (i + 1) for i in range(8)]  # once per epoch, at the step count
    assert set(logs[0][1]) >= {"vae/loss", "vae/recon", "vae/kl"}
    first, last = logs[0][1], logs[-1][1]
    assert all(math.isfinite(v) for _, m in logs for v in m.values())
    assert last["vae/recon"] < 0.5 * first["vae/recon"], (first, last)
    assert not vae.training


def test_train_vae_is_deterministic_given_seed() -> None:
    frames = square_frames(8)
    cfg = VAETrainConfig(z_dim=Z, epochs=1, batch_size=4, lr=1e-3, max_steps=2)
    a, b = train_vae(frames, cfg, seed=3, progress=True), train_vae(frames, cfg, seed=3)
    c = train_vae(frames, cfg, seed=4)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    with pytest.raises(ConfigError, match="uint8"):
        train_vae(frames.astype(np.float32), cfg)


# ---- save / load ----------------------------------------------------------------------------

def test_pretrained_round_trip_gives_identical_outputs(tmp_path) -> None:
    import simlab

    torch.manual_seed(0)
    vae = ConvVAE(z_dim=Z).eval()
    rnn = tiny_rnn(dropout=0.1).eval()
    vae.save_pretrained(tmp_path / "vae")
    rnn.save_pretrained(tmp_path / "rnn")
    doc = json.loads((tmp_path / "rnn" / "config.json").read_text())
    assert doc["_class_name"] == "MDNRNN" and doc["_simlab_version"] == simlab.__version__
    assert doc["_simlab_format_version"] == 2 and doc["dropout"] == 0.1 and doc["hidden"] == H
    assert sorted(p.name for p in (tmp_path / "rnn").iterdir()) == ["config.json", WEIGHTS_NAME]
    vae2 = ConvVAE.from_pretrained(tmp_path / "vae")
    rnn2 = MDNRNN.from_pretrained(tmp_path / "rnn")
    assert rnn2.config == rnn.config and vae2.config == vae.config
    frames = square_frames(2)
    with torch.no_grad():
        for x, y in zip(vae.encode(frames), vae2.encode(frames)):
            assert torch.equal(x, y)
        z = torch.randn(2, Z)
        assert torch.equal(vae.decode(z), vae2.decode(z))
        a = torch.tensor([0, 2])
        o1, o2 = rnn.step(z, a), rnn2.step(z, a)
        for x, y in zip(o1[:5], o2[:5]):
            assert torch.equal(x, y)


@pytest.fixture
def saved_rnn(tmp_path):
    path = tmp_path / "rnn"
    tiny_rnn().save_pretrained(path)
    return path


def _one_line_naming(err: pytest.ExceptionInfo, name: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


def _rewrite_config(path, **changes) -> None:
    """Edit a saved config.json and seal it again (a hand edit simlab's seal would otherwise catch)."""
    doc = json.loads((path / "config.json").read_text())
    doc.update(changes)
    (path / "config.json").write_text(json.dumps(seal_config({k: v for k, v in doc.items() if v is not ...})))


def test_truncated_safetensors_is_checkpoint_error(saved_rnn) -> None:
    w = saved_rnn / WEIGHTS_NAME
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError) as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, WEIGHTS_NAME)
    # without the checksum in config.json the file is refused as unchecked
    _rewrite_config(saved_rnn, _weights_sha256=...)
    with pytest.raises(CheckpointError, match="_weights_sha256") as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, "config.json")


def test_corrupt_safetensors_is_checkpoint_error(saved_rnn) -> None:
    w = saved_rnn / WEIGHTS_NAME
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit in the tensor data: only the checksum can tell
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum") as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, WEIGHTS_NAME)
    w.write_bytes(b"\x00" * 64)  # garbage header, with a checksum that matches it
    _rewrite_config(saved_rnn, _weights_sha256=__import__("hashlib").sha256(b"\x00" * 64).hexdigest())
    with pytest.raises(CheckpointError, match="safetensors") as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, WEIGHTS_NAME)


def test_missing_and_mismatched_files_are_checkpoint_errors(tmp_path, saved_rnn) -> None:
    with pytest.raises(CheckpointError, match="no such"):
        MDNRNN.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError) as e:  # a VAE directory is not an MDNRNN
        MDNRNN.from_pretrained(ConvVAE(z_dim=Z).save_pretrained(tmp_path / "vae"))
    _one_line_naming(e, "config.json")

    cfg_path = saved_rnn / "config.json"
    good = cfg_path.read_text()
    doc = json.loads(good)
    for bad, needle in [
        ({**doc, "hidden": 64}, WEIGHTS_NAME),               # resealed: the weights do not fit
        ({**doc, "_simlab_format_version": 99}, "newer"),
        ({**doc, "bogus": 1}, "bogus"),
        ({**doc, "dropout": 2.0}, "dropout"),
    ]:
        cfg_path.write_text(json.dumps(seal_config(bad)))
        with pytest.raises(CheckpointError, match=needle) as e:
            MDNRNN.from_pretrained(saved_rnn)
        _one_line_naming(e, needle if needle == WEIGHTS_NAME else "config.json")
    cfg_path.write_text(json.dumps({**doc, "hidden": 64}))  # an edit without a new seal
    with pytest.raises(CheckpointError, match="checksum mismatch") as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, "config.json")
    cfg_path.write_text("{not json")
    with pytest.raises(CheckpointError) as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, "config.json")
    cfg_path.write_text(good)
    (saved_rnn / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError) as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, WEIGHTS_NAME)
    cfg_path.unlink()
    with pytest.raises(CheckpointError) as e:
        MDNRNN.from_pretrained(saved_rnn)
    _one_line_naming(e, "config.json")


def test_world_model_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = DropoutWorldModel(ConvVAE(z_dim=Z), tiny_rnn(), torch.randn(5, Z), n_actions=A,
                              env_id="simlab/Dodge-v0")
    path = model.save_pretrained(tmp_path / "wm")
    for name in ("vae/config.json", f"vae/{WEIGHTS_NAME}", "mdnrnn/config.json",
                 f"mdnrnn/{WEIGHTS_NAME}", "start_z.safetensors", "world_model.json"):
        assert (path / name).exists(), name
    assert json.loads((path / "world_model.json").read_text())["format_version"] == 2
    loaded = DropoutWorldModel.from_pretrained(path)
    assert loaded.env_id == "simlab/Dodge-v0" and loaded.n_actions == A
    assert torch.equal(loaded.start_z, model.start_z)
    runs = []
    for m in (model, loaded):
        env = m.as_vec_env(3, mask_mode="per_episode", dropout=0.2, seed=5)
        obs, _ = env.reset()
        traj = [obs]
        for t in range(6):
            traj.append(env.step(np.array([t % A, 1, 2]))[0])
        runs.append(np.stack(traj))
    np.testing.assert_array_equal(runs[0], runs[1])

    sz = path / "start_z.safetensors"
    sz.write_bytes(sz.read_bytes()[:-8])
    with pytest.raises(CheckpointError) as e:
        DropoutWorldModel.from_pretrained(path)
    _one_line_naming(e, "start_z.safetensors")
    (path / "world_model.json").unlink()
    with pytest.raises(CheckpointError) as e:
        DropoutWorldModel.from_pretrained(path)
    _one_line_naming(e, "world_model.json")


def test_world_model_consistency_checks() -> None:
    with pytest.raises(ConfigError, match="z_dim"):
        DropoutWorldModel(ConvVAE(z_dim=Z + 1), tiny_rnn(), torch.zeros(2, Z))
    with pytest.raises(ConfigError, match="start_z"):
        DropoutWorldModel(ConvVAE(z_dim=Z), tiny_rnn(), torch.zeros(2, Z + 1))
    with pytest.raises(ConfigError, match="n_actions"):
        DropoutWorldModel(ConvVAE(z_dim=Z), tiny_rnn(), torch.zeros(2, Z), n_actions=A + 1)


# ---- MDN-RNN: masks -------------------------------------------------------------------------

def test_sample_masks_values_and_rate() -> None:
    rnn = tiny_rnn()
    ones = rnn.sample_masks(4, 0.0)
    assert torch.equal(ones.z, torch.ones(4, Z)) and torch.equal(ones.h, torch.ones(4, H))
    g = torch.Generator().manual_seed(0)
    m = rnn.sample_masks(2000, 0.25, generator=g)
    assert m.z.shape == (2000, Z) and m.h.shape == (2000, H)
    vals = torch.unique(torch.cat([m.z.flatten(), m.h.flatten()]))
    assert torch.allclose(vals, torch.tensor([0.0, 1 / 0.75]))
    assert abs(float((m.h == 0).float().mean()) - 0.25) < 0.01
    m2 = rnn.sample_masks(2000, 0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m.z, m2.z)


def test_dropout_never_touches_the_action_inputs() -> None:
    rnn = tiny_rnn()
    z = torch.randn(64, Z)
    a = torch.arange(64) % A
    masks = rnn.sample_masks(64, 0.5, generator=torch.Generator().manual_seed(1))
    x = rnn.masked_input(z, a, masks)
    assert x.shape == (64, Z + A)
    onehot = torch.nn.functional.one_hot(a, A).float()
    assert torch.equal(x[:, Z:], onehot)               # the action one-hot path is unmasked
    assert torch.equal(x[:, :Z], z * masks.z)          # the z part is masked
    assert bool((x[:, :Z] == 0).any())                 # ... and some of it was dropped
    # everything masked: z and h dropped entirely, the action still drives the LSTM
    zero = Masks(torch.zeros(64, Z), torch.zeros(64, H))
    out = rnn.step(z, a, (torch.randn(64, H), torch.zeros(64, H)), masks=zero)
    h = out.state[0]
    for k in range(A):
        assert torch.allclose(h[a == k], h[a == k][:1].expand_as(h[a == k]), atol=1e-6)
    assert not torch.allclose(h[a == 0][0], h[a == 1][0])


def test_rate_zero_masks_change_nothing() -> None:
    rnn = tiny_rnn()
    z, a = torch.randn(5, Z), torch.tensor([0, 1, 2, 0, 1])
    state = (torch.randn(5, H), torch.randn(5, H))
    plain = rnn.step(z, a, state)
    masked = rnn.step(z, a, state, masks=rnn.sample_masks(5, 0.0))
    for x, y in zip(plain[:5], masked[:5]):
        assert torch.equal(x, y)


def test_masks_act_on_z_input_and_recurrent_state() -> None:
    rnn = tiny_rnn()
    z, a = torch.randn(5, Z), torch.tensor([0, 1, 2, 0, 1])
    h, c = torch.randn(5, H), torch.randn(5, H)
    ones_z, ones_h = torch.ones(5, Z), torch.ones(5, H)
    # a zero h-mask equals a zero recurrent input (c is not masked)
    a1 = rnn.step(z, a, (h, c), masks=Masks(ones_z, torch.zeros(5, H)))
    b1 = rnn.step(z, a, (torch.zeros(5, H), c))
    assert torch.allclose(a1.mu, b1.mu) and torch.allclose(a1.state[1], b1.state[1])
    # a zero z-mask equals a zero z
    a2 = rnn.step(z, a, (h, c), masks=Masks(torch.zeros(5, Z), ones_h))
    b2 = rnn.step(torch.zeros(5, Z), a, (h, c))
    assert torch.allclose(a2.mu, b2.mu)
    # masks are inverted-dropout scaled: a mask of 2s on h equals doubling h
    a3 = rnn.step(z, a, (h, c), masks=Masks(ones_z, 2 * ones_h))
    b3 = rnn.step(z, a, (2 * h, c))
    assert torch.allclose(a3.reward, b3.reward)


def test_forward_equals_a_loop_of_steps_with_the_same_masks() -> None:
    rnn = tiny_rnn()
    zs, acts = torch.randn(3, 6, Z), torch.randint(0, A, (3, 6))
    masks = rnn.sample_masks(3, 0.3, generator=torch.Generator().manual_seed(2))
    seq = rnn(zs, acts, masks=masks)
    assert seq.logpi.shape == seq.mu.shape == seq.logsigma.shape == (3, 6, 3, Z)
    assert seq.reward.shape == seq.done_logit.shape == (3, 6)
    state = rnn.initial_state(3)
    for t in range(6):
        out = rnn.step(zs[:, t], acts[:, t], state, masks)
        state = out.state
        assert torch.allclose(out.mu, seq.mu[:, t], atol=1e-6)
        assert torch.allclose(out.done_logit, seq.done_logit[:, t], atol=1e-6)
    assert torch.allclose(state[0], seq.state[0], atol=1e-6)
    assert torch.allclose(torch.logsumexp(seq.logpi, dim=-2), torch.zeros(3, 6, Z), atol=1e-5)


def test_rnn_validates_actions() -> None:
    rnn = tiny_rnn()
    with pytest.raises(ActionError, match="outside"):
        rnn.step(torch.zeros(2, Z), torch.tensor([0, A]))
    with pytest.raises(ActionError, match="outside"):
        rnn.step(torch.zeros(2, Z), torch.tensor([-1, 0]))
    with pytest.raises(ActionError, match="shape"):
        rnn.step(torch.zeros(2, Z), torch.tensor([0, 1, 2]))
    with pytest.raises(ActionError, match="integers"):
        rnn.step(torch.zeros(2, Z), torch.tensor([0.0, 1.0]))
    with pytest.raises(ActionError):
        rnn(torch.zeros(2, 4, Z), torch.full((2, 4), A))


def test_no_heads_mean_zero_reward_and_never_done() -> None:
    rnn = tiny_rnn(reward_head=False, done_head=False)
    out = rnn.step(torch.randn(2, Z), torch.tensor([0, 1]))
    assert torch.equal(out.reward, torch.zeros(2))
    assert torch.equal(torch.sigmoid(out.done_logit), torch.zeros(2))


# ---- MDN loss and sampling --------------------------------------------------------------------

def test_mdn_loss_equals_brute_force_mixture_density() -> None:
    g = torch.Generator().manual_seed(0)
    b, k, d = 4, 3, 2
    logits = torch.randn(b, k, d, generator=g, dtype=torch.float64)
    mu = torch.randn(b, k, d, generator=g, dtype=torch.float64)
    logsigma = 0.5 * torch.randn(b, k, d, generator=g, dtype=torch.float64)
    z = torch.randn(b, d, generator=g, dtype=torch.float64)
    # brute force: density = sum_k pi_k N(z; mu_k, sigma_k), per dimension, in plain numpy
    lg, m, s, x = (t.numpy() for t in (logits, mu, logsigma.exp(), z))
    pi = np.exp(lg) / np.exp(lg).sum(axis=1, keepdims=True)
    dens = (pi * np.exp(-0.5 * ((x[:, None, :] - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))).sum(axis=1)
    expected = -np.log(dens).mean()
    assert math.isclose(float(mdn_loss(logits, mu, logsigma, z)), expected, rel_tol=1e-10)
    # normalised log-weights give the same value (log-softmax inside is a no-op for them)
    logpi = torch.log_softmax(logits, dim=1)
    assert math.isclose(float(mdn_loss(logpi, mu, logsigma, z)), expected, rel_tol=1e-10)
    # a single component is the Gaussian NLL
    one = mdn_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.ones(1, 1))
    assert math.isclose(float(one), 0.5 + 0.5 * math.log(2 * math.pi), rel_tol=1e-6)


def test_mdn_loss_mask_ignores_padding() -> None:
    g = torch.Generator().manual_seed(1)
    logpi, mu, ls = (torch.randn(2, 5, 3, Z, generator=g) for _ in range(3))
    z = torch.randn(2, 5, Z, generator=g)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, :3] = True
    mask[1, :1] = True
    full = mdn_loss(logpi, mu, ls, z, mask=mask)
    z_pad = z.clone()
    z_pad[~mask] = 1e9  # garbage in padded steps changes nothing
    assert torch.allclose(mdn_loss(logpi, mu, ls, z_pad, mask=mask), full)
    manual = torch.stack([mdn_loss(logpi[0, :3], mu[0, :3], ls[0, :3], z[0, :3]) * 3,
                          mdn_loss(logpi[1, :1], mu[1, :1], ls[1, :1], z[1, :1])]).sum() / 4
    assert torch.allclose(full, manual, atol=1e-6)


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e6, 1e15])
def test_mdn_loss_is_finite_on_extreme_inputs(scale: float) -> None:
    g = torch.Generator().manual_seed(0)
    logpi = (torch.randn(4, 5, Z, generator=g) * scale).requires_grad_()
    mu = (torch.randn(4, 5, Z, generator=g) * scale).requires_grad_()
    logsigma = (torch.randn(4, 5, Z, generator=g) * scale).requires_grad_()
    z = torch.randn(4, Z, generator=g) * scale
    loss = mdn_loss(logpi, mu, logsigma, z)
    assert torch.isfinite(loss), loss
    loss.backward()
    for t in (logpi, mu, logsigma):
        assert torch.isfinite(t.grad).all()
    # a collapsed sigma right on the target: very negative, still finite
    sharp = mdn_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.full((1, 1, 1), -1e4), torch.zeros(1, 1))
    assert torch.isfinite(sharp) and float(sharp) < 0


def test_sample_next_z_temperature() -> None:
    # shapes (1, K=3, z=2): dim 0 favours component 1, dim 1 favours component 0
    logpi = torch.log_softmax(torch.tensor([[[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]]), dim=1)
    mu = torch.tensor([[[1.0, -1.0], [5.0, 3.0], [9.0, 7.0]]])
    logsigma = torch.zeros(1, 3, 2)
    mode = torch.tensor([[5.0, -1.0]])
    assert torch.equal(sample_next_z(logpi, mu, logsigma, tau=0.0), mode)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert torch.allclose(sample_next_z(logpi, mu, logsigma, tau=1e-6, generator=g), mode, atol=0.01)
    with pytest.raises(ConfigError):
        sample_next_z(logpi, mu, logsigma, tau=-1.0)
    # tau = 1: draws follow the mixture (weights and stds)
    big = 20000
    lp = torch.log(torch.tensor([0.25, 0.75])).view(1, 2, 1).expand(big, 2, 1)
    m = torch.tensor([-4.0, 4.0]).view(1, 2, 1).expand(big, 2, 1)
    ls = torch.log(torch.tensor([0.5, 0.5])).view(1, 2, 1).expand(big, 2, 1)
    x = sample_next_z(lp, m, ls, tau=1.0, generator=torch.Generator().manual_seed(1)).squeeze(1)
    assert abs(float((x > 0).float().mean()) - 0.75) < 0.02
    assert abs(float(x[x > 0].std()) - 0.5) < 0.03
    # tau scales the std by sqrt(tau)
    x2 = sample_next_z(lp, m, ls, tau=0.25, generator=torch.Generator().manual_seed(1)).squeeze(1)
    assert abs(float(x2[x2 > 0].std()) - 0.25) < 0.02
    assert float((x2 > 0).float().mean()) > 0.95  # logits / tau sharpen the weights


# ---- training -------------------------------------------------------------------------------

def rule_data(n_ep: int = 64, t: int = 32, seed: int = 0):
    """z_{t+1} = 0.5 z_t + C[a_t]; reward 1 for action 0; never done."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (A, Z)).astype(np.float32)
    z = np.zeros((n_ep, t + 1, Z), np.float32)
    a = rng.integers(0, A, (n_ep, t))
    z[:, 0] = rng.normal(0, 0.5, (n_ep, Z))
    for i in range(t):
        z[:, i + 1] = 0.5 * z[:, i] + c[a[:, i]]
    return c, z, a, (a == 0).astype(np.float32), np.zeros((n_ep, t), bool)


def test_train_mdnrnn_learns_a_rule_and_the_dream_follows_it() -> None:
    c, z, a, r, d = rule_data()
    logs: list[tuple[int, dict]] = []
    cfg = RNNTrainConfig(n_actions=A, hidden=H, mixtures=3, epochs=40, batch_size=16, seq_len=16, lr=1e-2)
    rnn = train_mdnrnn(z, a, r, d, cfg, seed=0, log=lambda s, m: logs.append((s, m)))
    assert len(logs) == 40 and set(logs[0][1]) >= {"rnn/loss", "rnn/mdn", "rnn/reward", "rnn/done"}
    first, last = logs[0][1], logs[-1][1]
    assert all(math.isfinite(v) for _, m in logs for v in m.values())
    assert last["rnn/loss"] < first["rnn/loss"] - 2.0, (first, last)
    assert last["rnn/mdn"] < first["rnn/mdn"] - 2.0 and last["rnn/reward"] < 0.2 * first["rnn/reward"]
    assert rnn.config.dropout == cfg.dropout and not rnn.training

    model = DropoutWorldModel(ConvVAE(z_dim=Z), rnn, z[:, 0], n_actions=A)
    env = model.as_vec_env(16, mask_mode="none", temperature=1e-4, max_episode_steps=100, seed=0,
                           done_mode="threshold")
    obs, _ = env.reset()
    rng = np.random.default_rng(1)
    errs, wrong, rew_err = [], [], []
    for _ in range(30):
        act = rng.integers(0, A, 16)
        nxt, rew, term, trunc, _ = env.step(act)
        assert not term.any() and not trunc.any()
        rule = 0.5 * obs[:, :Z] + c[act]
        errs.append(np.abs(nxt[:, :Z] - rule).mean())
        wrong.append(np.abs(nxt[:, :Z] - (0.5 * obs[:, :Z] + c[(act + 1) % A])).mean())
        rew_err.append(np.abs(rew - (act == 0)).mean())
        obs = nxt
    assert np.mean(errs) < 0.1 and np.mean(errs) < 0.2 * np.mean(wrong), (np.mean(errs), np.mean(wrong))
    assert np.mean(rew_err) < 0.15


def test_train_mdnrnn_episode_lists_and_determinism() -> None:
    _, z, a, r, d = rule_data(6, 10)
    # variable-length episodes, with (T+1) and without (T) the final observation, full-episode mode
    zs = [z[0], z[1, :7], z[2, :5]]
    acts, rews, dns = [a[0], a[1, :7], a[2, :4]], [r[0], r[1, :7], r[2, :4]], [d[0], d[1, :7], d[2, :4]]
    dns[0] = dns[0].copy()
    dns[0][-1] = True
    cfg = RNNTrainConfig(n_actions=A, hidden=H, mixtures=2, epochs=2, batch_size=2, seq_len=None)
    rnn = train_mdnrnn(zs, acts, rews, dns, cfg, seed=0)
    assert rnn.z_dim == Z
    cfg = RNNTrainConfig(n_actions=A, hidden=H, mixtures=2, epochs=3, batch_size=4, seq_len=4, max_steps=3,
                         log_every=1)
    logs: list[int] = []
    one = train_mdnrnn(z, a, r, d, cfg, seed=7, progress=True, log=lambda s, m: logs.append(s))
    assert logs == [1, 2, 3]
    two = train_mdnrnn(z, a, r, d, cfg, seed=7)
    for k, v in one.state_dict().items():
        assert torch.equal(v, two.state_dict()[k]), k
    with pytest.raises(ActionError):
        train_mdnrnn(z, np.full_like(a, A), r, d, cfg)
    with pytest.raises(ConfigError, match="steps"):
        train_mdnrnn(z[:, :5], a, r, d, cfg)
    with pytest.raises(ConfigError, match="reward"):
        train_mdnrnn(z, a, None, d, cfg)


@pytest.mark.parametrize("rate", [0.0, 0.1])
def test_done_head_starts_at_the_data_termination_rate(rate: float) -> None:
    """With no terminations in the data the dream must not invent a hazard (CarRacing's random
    data): the done head starts at the smoothed data rate, and the reward head at the mean reward."""
    rng = np.random.default_rng(0)
    n_ep, t = 20, 50
    z = rng.standard_normal((n_ep, t + 1, Z)).astype(np.float32)
    a = rng.integers(0, A, (n_ep, t))
    r = rng.normal(2.0, 0.1, (n_ep, t)).astype(np.float32)
    d = rng.random((n_ep, t)) < rate
    cfg = RNNTrainConfig(n_actions=A, hidden=H, mixtures=2, epochs=1, batch_size=4, seq_len=10, max_steps=1)
    rnn = train_mdnrnn(z, a, r, d, cfg, seed=0)
    with torch.no_grad():
        out = rnn(torch.as_tensor(z[:, :-1]), torch.as_tensor(a))
    p = torch.sigmoid(out.done_logit).mean().item()
    want = (d.sum() + 1) / (d.size + 2)
    assert abs(p - want) < 0.5 * want + 1e-3
    assert abs(out.reward.mean().item() - 2.0) < 0.5
