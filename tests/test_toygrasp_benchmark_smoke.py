"""Smoke test of benchmarks/toygrasp_speed.py (tiny sizes; speed itself is not asserted) and the slow
expert success-rate check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pybullet")
pytest.importorskip("mujoco")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "toygrasp_speed.py"


def test_toygrasp_benchmark_json() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "12", "--rounds", "1", "--resolution", "32",
                           "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert set(out["engines"]) == {"pybullet", "mujoco"} and out["steps_per_engine"] == 12
    for r in out["engines"].values():
        assert r["steps_per_s"] > 0 and r["steps_per_cpu_s"] > 0 and r["physics_ms"] > 0 and r["render_ms"] > 0
    ratio = out["engines"]["mujoco"]["steps_per_s"] / out["engines"]["pybullet"]["steps_per_s"]
    assert out["ratio_mujoco_over_pybullet"] == pytest.approx(ratio, abs=0.01)
    assert out["machine"]["pinned_cpu"] is not None and out["machine"]["mujoco_gl"] == "egl"


def test_wilson_interval() -> None:
    from simlab.stats import wilson

    lo, hi = wilson(95, 100)
    assert lo == pytest.approx(0.888, abs=1e-3) and hi == pytest.approx(0.978, abs=1e-3)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)


def test_ceiling_runs_the_expert() -> None:
    from simlab.envs.toygrasp.ceiling import expert_success

    res = expert_success("pybullet", "toys-train", episodes=2, resolution=32)
    assert res["episodes"] == 2 and [e["seed"] for e in res["per_episode"]] == [0, 1]
    assert res["successes"] == sum(e["success"] for e in res["per_episode"])
    assert res["ci95"][0] <= res["success_rate"] <= res["ci95"][1]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "split", "floor"), [
    ("pybullet", "toys-train", 0.9), ("mujoco", "toys-train", 0.75), ("pybullet", "toys-test", 0.85),
    ("mujoco", "toys-test", 0.7),
])
def test_expert_success_rate(backend: str, split: str, floor: float) -> None:
    from simlab.envs.toygrasp.ceiling import expert_success

    assert expert_success(backend, split, episodes=40, resolution=32)["success_rate"] >= floor
