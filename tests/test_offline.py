"""Offline RL (policies/offline.py): TorchRL's losses wired to simlab data, resume, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchrl")

import torch

from simlab.cli import main
from simlab.envs.procgen.dataset import ProcgenCollectConfig, collect_procgen
from simlab.errors import ConfigError
from simlab.policies.offline import Learner, OfflineData, offline_config, train_offline
from simlab.policies.saved import SavedPolicy


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 uniform-random CoinRun transitions from 10 levels (short episodes end inside the data)."""
    out = tmp_path_factory.mktemp("offline") / "coinrun"
    collect_procgen(ProcgenCollectConfig(game="coinrun", levels="0:10", transitions=600, num_envs=8,
                                         transitions_per_shard=300), out, progress=False)
    return out


def test_data_next_observations(data: Path) -> None:
    d = OfflineData(str(data))
    assert len(d) == 600 and d.frames.shape[1:] == (64, 64, 3) and d.frames.dtype == np.uint8
    assert (d.nxt == d.cur + 1).all(), "the next observation follows in the same segment's frames"
    assert len(d.frames) == 600 + len(np.unique(d.cur - np.arange(600)))  # one final frame per segment
    td = d.batch(np.array([0, 5, 599]))
    assert td["observation"].shape == (3, 64, 64, 3) and td["next", "reward"].shape == (3, 1)
    assert td["next", "terminated"].dtype == torch.bool


def test_cql_loss_is_td_plus_conservative_term(data: Path) -> None:
    """TorchRL's discrete CQL on our batch = 0.5 mean (Q(s,a) - (r + gamma (1 - term) max Q_target(s')))^2
    (the CQL authors' 0.5 factor) and mean logsumexp Q(s, .) - Q(s, a): checks the data layout (actions, next obs, done flags)."""
    torch.set_num_threads(1)
    cfg = offline_config(["debug"], [f"data={data}", "algo=cql", "gamma=0.9"])
    d = OfflineData(str(data))
    learner = Learner(cfg, d.n_actions, d.obs_shape)
    idx = np.flatnonzero(d.terminated)[:4].tolist() + [1, 2, 3, 4]  # some terminal transitions
    d.rewards[idx[:2]] = 10.0  # random play rarely scores: give two terminal steps a reward
    td = d.batch(np.array(idx))
    terms = learner.terms(td)
    with torch.no_grad():
        q = learner.policy(td["observation"])
        q_a = q.gather(1, td["action"][:, None]).squeeze(1)
        q_next = learner.policy(td["next", "observation"]).max(1).values  # target == online at init
        target = td["next", "reward"][:, 0] + 0.9 * (~td["next", "terminated"][:, 0]).float() * q_next
        want_td = 0.5 * ((q_a - target) ** 2).mean()
        want_cql = (torch.logsumexp(q, 1) - q_a).mean()
    torch.testing.assert_close(terms["loss_cql"].detach(), want_cql, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["loss_qvalue"].detach(), want_td, rtol=1e-4, atol=1e-6)


def test_cql_bootstraps_from_the_target_network(data: Path) -> None:
    """After the online Q-network moves, the TD target still comes from the delayed copy (TorchRL
    0.14's DiscreteCQLLoss bootstrapped from the online network, which let Q diverge), and the
    soft update moves the target by tau."""
    import copy

    torch.set_num_threads(1)
    cfg = offline_config(["debug"], [f"data={data}", "algo=cql", "gamma=0.9", "tau=0.5"])
    d = OfflineData(str(data))
    learner = Learner(cfg, d.n_actions, d.obs_shape)
    frozen = copy.deepcopy(learner.policy)
    with torch.no_grad():
        for p in learner.policy.parameters():
            p.mul_(3.0)
    td = d.batch(np.arange(1, 9))

    def want(net: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            q_a = learner.policy(td["observation"]).gather(1, td["action"][:, None]).squeeze(1)
            q_next = net(td["next", "observation"]).max(1).values
            target = td["next", "reward"][:, 0] + 0.9 * (~td["next", "terminated"][:, 0]).float() * q_next
            return 0.5 * ((q_a - target) ** 2).mean()

    torch.testing.assert_close(learner.terms(td)["loss_qvalue"].detach(), want(frozen), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(want(frozen), want(learner.policy))  # the check can tell them apart
    learner.updater.step()  # target <- target + 0.5 (online - target)
    mid = copy.deepcopy(frozen)
    with torch.no_grad():
        for p_mid, p_on in zip(mid.parameters(), learner.policy.parameters()):
            p_mid.lerp_(p_on, 0.5)
    torch.testing.assert_close(learner.terms(td)["loss_qvalue"].detach(), want(mid), rtol=1e-4, atol=1e-6)


def test_bc_loss_is_cross_entropy(data: Path) -> None:
    cfg = offline_config(["debug"], [f"data={data}", "algo=bc"])
    d = OfflineData(str(data))
    learner = Learner(cfg, d.n_actions, d.obs_shape)
    td = d.batch(np.arange(16))
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(learner.policy(td["observation"]), td["action"])
    torch.testing.assert_close(learner.terms(td)["loss_bc"].detach(), want)


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_resumed_run_equals_unbroken(algo: str, data: Path, tmp_path: Path, monkeypatch) -> None:
    torch.set_num_threads(1)
    cfg = offline_config(["debug"], [f"data={data}", f"algo={algo}", "steps=12", "checkpoint_every=5",
                                     "eval_episodes=0"])
    whole = train_offline(cfg, tmp_path / "whole", progress=False)
    calls = {"n": 0}
    step = Learner.step

    def dying(self, td):  # killed during step 8 (after the checkpoint at step 5)
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return step(self, td)

    monkeypatch.setattr(Learner, "step", dying)
    with pytest.raises(KeyboardInterrupt):
        train_offline(cfg, tmp_path / "killed", progress=False)
    monkeypatch.setattr(Learner, "step", step)
    with pytest.raises(ConfigError, match="not empty"):
        train_offline(cfg, tmp_path / "killed", progress=False)
    resumed = train_offline(cfg, tmp_path / "killed", resume=True, progress=False)
    a = SavedPolicy.load(whole.path / "policy").network.state_dict()
    b = SavedPolicy.load(resumed.path / "policy").network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in resumed.metrics()]
    assert steps == sorted(steps) and steps[-1] == 12
    meta = json.loads((resumed.path / "policy" / "config.json").read_text())["meta"]
    assert meta["trainer"] == f"offline-{algo}" and meta["env_id"] == "simlab/CoinRun-v0"


def test_cli_trains_and_evaluates(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "offline", "--algo", "cql", "--data", str(data), "--out", str(out),
                 "--preset", "debug", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["algo"] == "cql" and "eval/test/mean_return" in info
    assert (out / "eval_info.json").exists() and (out / "policy" / "model.safetensors").exists()


@pytest.mark.parametrize("args,needle", [
    (["--algo", "sac"], "unknown offline algorithm"),
    (["--env", "simlab/Maze-v0"], "collected on simlab/CoinRun-v0"),
    (["--env", "simlab/Collision2D-v0"], "not a procgen-like game"),
    (["bogus=1"], "unknown config key"),
])
def test_bad_input_one_line_exit_2(args: list[str], needle: str, data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "offline", "--data", str(data), "--out", str(out), "--preset", "debug", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
    assert not out.exists(), "nothing written"
