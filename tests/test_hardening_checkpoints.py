"""Issue 9, the last two gaps: checkpoints other libraries unpickle are checked first, and the
procgen / toy-grasp collectors refuse requests this machine cannot hold before any work.

- SB3 PPO (``checkpoints/latest/sb3_model.zip``) and accelerate ``save_state`` directories
  (video diffusion ``checkpoints/latest``) carry a sealed ``files.sha256.json`` written after
  them; a flipped byte, a truncated file, a missing or an extra file, or a missing record is a
  one-line CheckpointError (CLI: exit 2, one ``error:`` line) before SB3/accelerate read anything.
- ``simlab collect procgen|toygrasp`` with impossible sizes: one line naming the figure, exit 2,
  in well under a second, with the output directory not created.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import time
from pathlib import Path

import pytest

from simlab.cli import main
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import (
    DIGEST_RECORD,
    verify_dir_digests,
    verify_file_digests,
    write_dir_digests,
    write_file_digests,
)


def run_cli(args: list[str]) -> tuple[int, str, str, float]:
    """Run ``simlab ARGS`` in this process: (exit code, stdout, stderr, seconds)."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def one_line_error(rc: int, err: str, *needles: str) -> str:
    """The single ``error:`` line of ``err`` (after any progress-bar output); checks exit 2."""
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "\n", err).replace("\r", "\n")
    lines = [ln.strip() for ln in plain.splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    assert rc == 2 and first is not None and len(lines) - first == 1, (rc, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[first], (needle, lines[first])
    return lines[first]


def damage(path: Path, how: str) -> None:
    """Flip one byte in the middle of ``path``, truncate it to half, or delete it."""
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.unlink()


# ---- the digest record itself ------------------------------------------------------------------
def test_digest_record_round_trip_and_every_failure(tmp_path: Path) -> None:
    d = tmp_path / "ck"
    (d / "sub").mkdir(parents=True)
    (d / "a.bin").write_bytes(b"\x00" * 1000)
    (d / "sub" / "b.pkl").write_bytes(b"pickle bytes")
    rec = write_dir_digests(d)
    assert rec == d / DIGEST_RECORD
    assert set(json.loads(rec.read_text())["files"]) == {"a.bin", "sub/b.pkl"}
    verify_dir_digests(d, CheckpointError)
    cases = {
        "flip": ("a.bin", "checksum differs"),
        "truncate": ("a.bin", "truncated"),
        "delete": ("sub/b.pkl", "missing"),
    }
    for how, (name, what) in cases.items():
        c = tmp_path / how
        shutil.copytree(d, c)
        damage(c / name, how)
        with pytest.raises(CheckpointError, match=what) as e:
            verify_dir_digests(c, CheckpointError)
        assert "\n" not in str(e.value) and str(c / name) in str(e.value)
    c = tmp_path / "extra"
    shutil.copytree(d, c)
    (c / "custom_checkpoint_1.pkl").write_bytes(b"not listed")
    with pytest.raises(CheckpointError, match="not listed"):
        verify_dir_digests(c, CheckpointError)
    c = tmp_path / "norecord"
    shutil.copytree(d, c)
    (c / DIGEST_RECORD).unlink()
    with pytest.raises(CheckpointError, match="no integrity record"):
        verify_dir_digests(c, CheckpointError)
    c = tmp_path / "editedrecord"
    shutil.copytree(d, c)
    doc = json.loads((c / DIGEST_RECORD).read_text())
    doc["files"]["a.bin"]["bytes"] = 500  # seal no longer matches
    (c / DIGEST_RECORD).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        verify_dir_digests(c, CheckpointError)
    # a record of chosen files (a sidecar): only those are checked
    side = write_file_digests(tmp_path / "one.sha256.json", [d / "a.bin"])
    assert verify_file_digests(side, CheckpointError) == [d / "a.bin"]


# ---- SB3 PPO -----------------------------------------------------------------------------------
PPO_ARGS = ["train", "ppo", "--preset", "debug", "--total-timesteps", "512", "checkpoint_every=512",
            "eval_every=0"]


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 512-step debug PPO run (one rollout of 8 envs x 64 steps), made through the CLI."""
    pytest.importorskip("stable_baselines3")
    out = tmp_path_factory.mktemp("ppo") / "run"
    rc, _, err, _ = run_cli([*PPO_ARGS, "--out", str(out)])
    assert rc == 0, err
    return out


def test_ppo_checkpoint_round_trip(ppo_run: Path, tmp_path: Path) -> None:
    from simlab.policies.ppo import SB3_ZIP, load_checkpoint, make_train_env, ppo_config

    latest = ppo_run / "checkpoints" / "latest"
    files = set(json.loads((latest / DIGEST_RECORD).read_text())["files"])
    assert {SB3_ZIP, "state.json", "policy/config.json", "policy/model.safetensors"} == files
    cfg = ppo_config(["debug"], ["total_timesteps=512", "checkpoint_every=512", "eval_every=0"])
    venv = make_train_env(cfg)
    try:
        model = load_checkpoint(latest, cfg, venv, "cpu")
    finally:
        venv.close()
    assert int(model.num_timesteps) == 512
    # --resume of a finished run loads the checkpoint, checks it, and rewrites it with its record
    out = tmp_path / "run"
    shutil.copytree(ppo_run, out)
    rc, _, err, _ = run_cli([*PPO_ARGS, "--out", str(out), "--resume"])
    assert rc == 0, err
    verify_dir_digests(out / "checkpoints" / "latest", CheckpointError)


@pytest.mark.parametrize("how,target,needle", [
    ("flip", "sb3_model.zip", "checksum differs"),
    ("truncate", "sb3_model.zip", "truncated"),
    ("delete", DIGEST_RECORD, "no integrity record"),
    ("flip", "policy/model.safetensors", "checksum differs"),
])
def test_ppo_resume_from_damaged_checkpoint_is_one_line(ppo_run: Path, tmp_path: Path, how: str, target: str,
                                                        needle: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(ppo_run, out)
    latest = out / "checkpoints" / "latest"
    damage(latest / target, how)
    before = (latest / "state.json").read_bytes() if (latest / "state.json").exists() else None
    rc, _, err, _ = run_cli([*PPO_ARGS, "--out", str(out), "--resume"])
    line = one_line_error(rc, err, "cannot resume from this checkpoint", needle)
    assert str(latest) in line
    if before is not None:
        assert (latest / "state.json").read_bytes() == before  # nothing rewritten


def test_ppo_damaged_checkpoint_api_raises_before_sb3_reads(ppo_run: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from stable_baselines3 import PPO

    from simlab.policies.ppo import SB3_ZIP, load_checkpoint, ppo_config

    ck = tmp_path / "latest"
    shutil.copytree(ppo_run / "checkpoints" / "latest", ck)
    damage(ck / SB3_ZIP, "flip")

    def never(*a: object, **k: object) -> None:
        raise AssertionError("SB3 must not read an unchecked zip")

    monkeypatch.setattr(PPO, "load", never)
    with pytest.raises(CheckpointError, match="sb3_model.zip: checksum differs"):
        load_checkpoint(ck, ppo_config(["debug"]), None, "cpu")


# ---- video diffusion (accelerate state) ------------------------------------------------------------
VD_STOP = 2  # the debug preset checkpoints every 2 steps of 4


@pytest.fixture(scope="module")
def vd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A debug video-diffusion run killed after its step-2 checkpoint, and its 16 px data."""
    pytest.importorskip("diffusers")
    pytest.importorskip("accelerate")
    from simlab.world_models.video_diffusion.config import video_diffusion_config
    from simlab.world_models.video_diffusion.train import train_video_diffusion

    root = tmp_path_factory.mktemp("vdck")
    data = root / "data"
    rc, _, err, _ = run_cli(["collect", "collision2d", "--scenario", "uniform", "--split", "train", "--size", "16",
                             "--resolution", "16", "--no-store-frames", "--out", str(data), "--json"])
    assert rc == 0, err
    info = train_video_diffusion(video_diffusion_config(["debug"]), data, root / "run", stop_at=VD_STOP,
                                 progress=False)
    assert info["stopped_early"] and info["steps"] == VD_STOP
    return {"data": data, "run": root / "run"}


def vd_args(vd: dict[str, Path], out: Path) -> list[str]:
    return ["train", "video-diffusion", "--data", str(vd["data"]), "--preset", "debug", "--out", str(out),
            "--resume"]


def test_video_diffusion_checkpoint_round_trip(vd: dict[str, Path], tmp_path: Path) -> None:
    latest = vd["run"] / "checkpoints" / "latest"
    files = set(json.loads((latest / DIGEST_RECORD).read_text())["files"])
    assert {"model.safetensors", "trainer_state.json"} <= files and any(f.endswith(".pkl") for f in files)
    verify_dir_digests(vd["run"] / "model", CheckpointError)  # the exported model has its record too
    out = tmp_path / "run"
    shutil.copytree(vd["run"], out)
    # a swap killed between its renames leaves only latest.old: resume puts it back and continues
    (out / "checkpoints" / "latest").rename(out / "checkpoints" / "latest.old")
    rc, _, err, _ = run_cli(vd_args(vd, out))
    assert rc == 0, err
    assert json.loads((out / "checkpoints" / "latest" / "trainer_state.json").read_text())["step"] == 4
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "train/loss" in r] == [1, 2, 3, 4]  # resumed at 2, not restarted
    verify_dir_digests(out / "checkpoints" / "latest", CheckpointError)


def _state_file(latest: Path, kind: str) -> str:
    if kind == "weights":
        return "model.safetensors"
    return next(p.name for p in sorted(latest.glob("*")) if p.name.endswith((".pkl", ".bin")))


@pytest.mark.parametrize("how,kind,needle", [
    ("flip", "weights", "checksum differs"),
    ("flip", "pickle", "checksum differs"),
    ("truncate", "pickle", "truncated"),
    ("delete", "record", "no integrity record"),
])
def test_video_diffusion_resume_from_damaged_state_is_one_line(vd: dict[str, Path], tmp_path: Path, how: str,
                                                               kind: str, needle: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(vd["run"], out)
    latest = out / "checkpoints" / "latest"
    name = DIGEST_RECORD if kind == "record" else _state_file(latest, kind)
    damage(latest / name, how)
    rc, _, err, _ = run_cli(vd_args(vd, out))
    line = one_line_error(rc, err, "cannot resume from this checkpoint", needle)
    assert str(latest) in line
    assert json.loads((latest / "trainer_state.json").read_text())["step"] == VD_STOP  # untouched


# ---- resources: procgen and toy-grasp collectors ---------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["collect", "procgen", "--transitions", str(10**15)], "of disk"),
    (["collect", "procgen", "--transitions", str(10**15), "--num-envs", "16384", "--game", "dodge"], "of disk"),
    (["collect", "toygrasp", "--demos", str(10**15)], "of disk"),
    (["collect", "toygrasp", "--demos", str(10**12), "--demos-per-shard", str(10**12), "--resolution", "512"],
     "of memory"),
])
def test_impossible_collections_are_refused_at_once(args: list[str], needle: str, tmp_path: Path) -> None:
    out = tmp_path / "d"
    rc, _, err, secs = run_cli([*args, "--out", str(out)])
    line = one_line_error(rc, err, "needs", needle)
    assert re.search(r"\d+(\.\d)? [KMGTP]i?B", line), line  # names the figure
    assert secs < 1.0, f"{args} took {secs:.2f} s before refusing"
    assert not out.exists() or not any(out.iterdir())


def test_procgen_shard_memory_is_checked(tmp_path: Path) -> None:
    from simlab.envs.procgen.dataset import ProcgenCollectConfig, check_resources, collect_procgen

    huge = ProcgenCollectConfig(transitions=10**12, transitions_per_shard=10**12)
    with pytest.raises(ConfigError, match="a shard of 1000000000000 transitions.*of memory"):
        collect_procgen(huge, tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()
    check_resources(ProcgenCollectConfig(), tmp_path / "d")  # the defaults (100k transitions) pass


def test_normal_sizes_pass_the_checks(tmp_path: Path) -> None:
    from simlab.envs.toygrasp.dataset import GraspCollectConfig
    from simlab.envs.toygrasp.dataset import check_resources as grasp_check

    grasp_check(GraspCollectConfig(), tmp_path / "g")  # defaults: 2500 demos at 96 px
    grasp_check(GraspCollectConfig(demos=4, demos_per_shard=2, resolution=16), tmp_path / "g")
    out = tmp_path / "pg"
    rc, _, err, _ = run_cli(["collect", "procgen", "--game", "maze", "--levels", "0:5", "--transitions", "24",
                             "--num-envs", "2", "--out", str(out), "--json"])
    assert rc == 0, err
    assert json.loads((out / "manifest.json").read_text())["count"] == 24
    # resuming a finished collection passes too (what is on disk is not counted twice)
    rc, _, err, _ = run_cli(["collect", "procgen", "--game", "maze", "--levels", "0:5", "--transitions", "24",
                             "--num-envs", "2", "--out", str(out), "--resume", "--json"])
    assert rc == 0, err


# ---- found by an adversarial battery (2026-11-30) ----------------------------------------------------
def test_eval_physics_refuses_a_flipped_model(vd: dict[str, Path], tmp_path: Path) -> None:
    """The exported model has a digest record: a flipped weight byte (which safetensors still loads) is
    refused before evaluation."""
    model = tmp_path / "model"
    shutil.copytree(vd["run"] / "model", model)
    w = next(p for p in model.iterdir() if p.suffix == ".safetensors")
    damage(w, "flip")
    rc, _, err, _ = run_cli(["eval", "physics", "--data", str(vd["data"]), "--model", str(model), "--steps", "1",
                             "--limit", "1"])
    one_line_error(rc, err, "checksum differs")


def test_collision2d_resume_rewrites_a_truncated_shard(tmp_path: Path) -> None:
    """A shard damaged after it was written is not believed on --resume: it is written again, byte for
    byte what it was (a shard is a pure function of the config and its index)."""
    from simlab.data import shard_name

    out = tmp_path / "ds"
    args = ["collect", "collision2d", "--scenario", "uniform", "--split", "train", "--size", "16", "--resolution",
            "16", "--no-store-frames", "--out", str(out)]
    rc, _, err, _ = run_cli(args)
    assert rc == 0, err
    shard = out / shard_name(0)
    good = shard.read_bytes()
    shard.write_bytes(good[: len(good) // 2])
    rc, _, err, _ = run_cli([*args, "--resume"])
    assert rc == 0, err
    assert shard.read_bytes() == good


@pytest.mark.parametrize("args,needle", [
    (["eval", "transfer", "--policy", "nowhere", "--env", "simlab/Maze-v0", "--splits", "train,,test"], "empty item"),
    (["render-toys", "--out", "t.png", "--seeds", "0:" + "9" * 31], "--seeds"),
    (["render-toys", "--out", "t.png", "--seeds", "3,,7"], "empty item"),
    (["train", "dreamland", "--preset", "debug", "--sweep", ""], "--sweep"),
    (["collect", "procgen", "--transitions", "64", "--minari", "bad id with spaces"], "not a Minari dataset id"),
    (["collect", "procgen", "--transitions", "64", "--minari", "../../x"], "not a Minari dataset id"),
])
def test_battery_inputs_are_one_line_errors(args: list[str], needle: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err, _ = run_cli([*args, *(["--out", str(tmp_path / "o")] if "--out" not in args else [])])
    one_line_error(rc, err, needle)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # refused before any work


@pytest.mark.parametrize("args,needle", [
    (["train", "bc", "--data", "nowhere", "data=elsewhere"], "set with --data"),
    (["train", "ppo", "--env", "simlab/Maze-v0", "env_id=bogus"], "set with --env"),
    (["train", "ppo", "--env", "simlab/Maze-v0", "--total-timesteps", str(10**30)], "total-timesteps"),
    (["collect", "collision2d", "--shard", "0/" + "1" * 31], "--shard"),
])
def test_overrides_and_absurd_sizes_are_refused(args: list[str], needle: str, tmp_path: Path) -> None:
    rc, _, err, _ = run_cli([*args, "--out", str(tmp_path / "o")])
    one_line_error(rc, err, needle)
