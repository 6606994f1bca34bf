"""Smoke test of benchmarks/procgen_speed.py: it runs and reports sane JSON.

Speed is not tested here (timings depend on the machine and its load), and
``--no-peer`` keeps procgen out of it: no venv, no network, no subprocess
other than the script itself. Only simlab's side runs, with tiny sizes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "procgen_speed.py"


def test_procgen_benchmark_json_without_peer() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-peer", "--steps", "20", "--games", "maze", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["num_envs"] == 64 and out["iterations"] == 20
    assert out["env_steps_per_side"] == 64 * 20
    assert list(out["games"]) == ["maze"]
    row = out["games"]["maze"]
    assert "skipped" not in row, row.get("skipped")
    sim = row["simlab"]
    assert sim["env_steps"] == 64 * 20
    assert sim["steps_per_s"] > 0 and sim["steps_per_cpu_s"] > 0
    # The peer was skipped: no figures, no ratio, and it says so.
    assert out["peer"]["available"] is False
    assert row["peer"] is None and row["ratio"] is None and row["pass"] is None
    assert row["peer_game"] == "maze"
    assert out["target_ratio"] == 1.0 and out["aim_ratio"] == 3.0
    m = out["machine"]
    assert m["cpu_model"] and m["python"] and m["numpy"] and m["logical_cpus"] >= 1
