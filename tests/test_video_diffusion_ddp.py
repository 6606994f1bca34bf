"""Two CPU processes (torchrun, gloo): `simlab train video-diffusion` shards the batches and keeps ranks in sync."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from simlab.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]


def test_two_cpu_processes_stay_in_sync(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert main(["collect", "collision2d", "--scenario", "uniform", "--split", "train", "--size", "32",
                 "--resolution", "16", "--no-store-frames", "--out", str(data), "--json"]) == 0
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [*_torchrun(), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "simlab.cli", "train", "video-diffusion", "--data", str(data), "--preset", "debug",
           "--out", str(out), "--json", "max_steps=4", "checkpoint_every=2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    dist = [r for r in recs if "dist/world_size" in r]
    assert [r["step"] for r in dist] == [2, 4]  # only the main process logs
    assert all(r["dist/world_size"] == 2 and r["dist/param_spread"] == 0.0 for r in dist)
    train = [r for r in recs if "train/loss" in r]
    assert train[-1]["train/samples"] == 4 * 2 * 2  # steps x batch x ranks: each rank its own batch
    state = json.loads((out / "checkpoints" / "latest" / "trainer_state.json").read_text())
    assert state == {"step": 4, "processes": 2}
    assert {p.name for p in (out / "checkpoints" / "latest").iterdir()} >= {"random_states_0.pkl",
                                                                            "random_states_1.pkl"}
    assert (out / "model" / "diffusion_pytorch_model.safetensors").exists()
