"""Smoke test of benchmarks/collision2d_generation.py: it runs and reports sane JSON.

Speed is not tested here (timings depend on the machine and its load); only
that the benchmark runs end to end with tiny sizes and reports its figures.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("Box2D")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "collision2d_generation.py"


def _run(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--videos", "64", "--ref-videos", "4", "--json", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_collision_benchmark_json() -> None:
    out = _run()
    assert out["scenario"] == "collision"
    assert out["resolution"] == 64
    for side in ("simlab", "reference"):
        assert out[side]["videos_per_s"] > 0
        assert out[side]["videos_per_cpu_s"] > 0
    assert out["simlab"]["videos"] == 64
    assert out["reference"]["videos"] == 4
    assert math.isfinite(out["ratio"]) and out["ratio"] > 0
    assert out["target_ratio"] == 10.0
    assert isinstance(out["pass"], bool)
    phys = out["physics"]
    assert phys["videos"] == 4
    assert 0 <= phys["mean_abs_pos_error"] <= phys["max_abs_pos_error"]
    # Closed form conserves energy; stock Box2D makes a slow head-on collision inelastic.
    assert abs(phys["slow_head_on"]["simlab_rel_energy_change"]) < 1e-9
    assert phys["slow_head_on"]["box2d_rel_energy_change"] < -0.5
    m = out["machine"]
    assert m["cpu_model"] and m["numpy"] and m["python"]


def test_parabola_benchmark_json() -> None:
    out = _run("--scenario", "parabola", "--resolution", "32", "--batch", "16")
    assert out["scenario"] == "parabola" and out["resolution"] == 32
    assert out["simlab"]["videos_per_s"] > 0 and out["reference"]["videos_per_s"] > 0
    assert out["ratio"] > 0
    assert "collision_videos" not in out["physics"]
