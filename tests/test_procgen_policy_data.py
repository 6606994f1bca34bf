"""Behaviour datasets from saved policies: ``--policy RUN[@checkpoint]`` and mixed datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from simlab.cli import main
from simlab.data import sha256_file
from simlab.envs.procgen.dataset import (
    ProcgenCollectConfig,
    TransitionDataset,
    _policy_dir,
    collect_procgen,
)
from simlab.errors import ConfigError
from simlab.policies.saved import ImpalaActor, save_policy


def _actor(seed: int, favourite: int) -> ImpalaActor:
    """A tiny actor that almost always picks ``favourite`` (a large bias on that logit)."""
    torch.manual_seed(seed)
    net = ImpalaActor(15, 3, 64, (0, 4), 8)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(-20.0)
        net.head.bias[favourite] = 20.0
    return net


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory laid out as PPO writes it: final policy, latest, and a kept early checkpoint."""
    r = tmp_path_factory.mktemp("ppo") / "run"
    (r / "checkpoints").mkdir(parents=True)
    (r / "config.yaml").write_text("env_id: simlab/CoinRun-v0\n")
    save_policy(r / "policy", _actor(0, 7))                                  # final: RIGHT
    save_policy(r / "checkpoints" / "latest" / "policy", _actor(0, 7))
    save_policy(r / "checkpoints" / "step_512" / "policy", _actor(1, 1))     # early: LEFT
    return r


def test_checkpoint_references_resolve(run: Path) -> None:
    assert _policy_dir(f"{run}@512") == run / "checkpoints" / "step_512" / "policy"
    assert _policy_dir(f"{run}@step_512") == run / "checkpoints" / "step_512" / "policy"
    assert _policy_dir(f"{run}@final") == run / "policy" == _policy_dir(run)
    assert _policy_dir(f"{run}@latest") == run / "checkpoints" / "latest" / "policy"
    with pytest.raises(ConfigError, match=r"no checkpoint 'step_999'.*step_512"):
        _policy_dir(f"{run}@999")


@pytest.mark.parametrize("ref,action", [("@512", 1), ("@final", 7), ("", 7)])
def test_collect_uses_the_named_checkpoint(run: Path, ref: str, action: int, tmp_path: Path) -> None:
    cfg = ProcgenCollectConfig(game="coinrun", levels="0:5", transitions=64, num_envs=4, policy=f"{run}{ref}")
    collect_procgen(cfg, tmp_path / "d", progress=False)
    ds = TransitionDataset(tmp_path / "d")
    assert np.mean(ds.load(keys=("actions",))["actions"] == action) > 0.95
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    want = run / ("checkpoints/step_512/policy" if ref == "@512" else "policy") / "model.safetensors"
    assert man["policy_sha256"] == sha256_file(want)


def test_mixed_dataset_splits_slots_between_policies(run: Path, tmp_path: Path) -> None:
    cfg = ProcgenCollectConfig(game="coinrun", levels="0:5", transitions=80, num_envs=4,
                               policy=f"{run}@final,{run}@512")
    collect_procgen(cfg, tmp_path / "d", progress=False)
    a = TransitionDataset(tmp_path / "d").load(keys=("actions",))["actions"].reshape(4, 20)  # slot-major
    assert (a[0::2] == 7).mean() > 0.95 and (a[1::2] == 1).mean() > 0.95
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["policy_sha256"].count(",") == 1


def test_missing_checkpoint_is_one_line_exit_2(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    assert main(["collect", "procgen", "--game", "coinrun", "--policy", f"{run}@777", "--transitions", "64",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "step_777" in err and "\n" not in err
    assert not out.exists(), "nothing written"
