"""Bad input never gets a traceback, a silent acceptance or a half-written file (issue 9).

- structural: every CLI option is a checked kind (``--out`` paths, ranged ints, finite floats),
  so new commands inherit the checks;
- property-based (hypothesis): random bad values for every command's options exit 2 with one
  ``error:`` line before any work, and leave guarded files untouched; random override text for
  every config field is parsed against its declared type or refused with a ConfigError;
- corruption: flipping bytes anywhere in a dataset, a saved world model, a saved policy or a
  run directory is caught on read (or provably changes nothing that is read);
- interrupts: SIGINT inside a write lands after the atomic rename; Ctrl-C exits 130 with one
  line; ``--resume`` removes orphaned temporary files and finishes equal to an unbroken run;
- divergence: a NaN loss stops training with one line and keeps the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simlab.data as data_mod
from simlab.cli import app, main
from simlab.config import from_dict, parse_override, resolve, to_dict
from simlab.errors import CheckpointError, ConfigError, DatasetError, DivergedError, SimlabError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
SLOW = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


# ---- helpers -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _cwd(tmp_path_factory, monkeypatch) -> None:
    """Run in an empty directory: a path check that regressed must not write into the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def run_cli(args: list[str]) -> tuple[int, str, str, float]:
    """Run ``simlab ARGS`` in this process: (exit code, stdout, stderr, seconds)."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def error_lines(err: str) -> list[str]:
    """Lines of ``err`` from the first ``error:``/``interrupted`` line on (progress bars before it
    are normal stderr output of long commands)."""
    import re

    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "\n", err)  # tqdm's cursor moves end a bar line too
    lines = [ln.strip() for ln in plain.replace("\r", "\n").splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.startswith(("error: ", "interrupted"))), len(lines))
    return lines[first:]


def assert_one_line_error(rc: int, err: str) -> None:
    assert rc == 2, (rc, err)
    assert len(error_lines(err)) == 1, err
    assert "Traceback" not in err


def commands() -> list[tuple[list[str], Any]]:
    """Every leaf command of the CLI as (path, click command)."""
    out = []

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out.append((path, cmd))

    walk(typer.main.get_command(app), [])
    return out


def _base(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType) \
        and len(args) == 1 else tp


def _kind(param: Any) -> str | None:
    parser = getattr(param.type_descriptor.parameter_info, "parser", None)
    return getattr(parser, "simlab_kind", None)


OUT_NAMES = {"out", "video"}


# ---- structural: every option is a checked kind ------------------------------------------------
def test_every_cli_option_is_a_checked_kind() -> None:
    unchecked = []
    for path, cmd in commands():
        for p in cmd.params:
            tp = _base(p.type_descriptor.annotation)
            name = f"simlab {' '.join(path)} {p.opts[0]}"
            if p.name in OUT_NAMES and _kind(p) not in ("out_dir", "out_file"):
                unchecked.append(f"{name}: output path without out_dir/out_file")
            elif tp is int and p.min is None:
                unchecked.append(f"{name}: integer without a range")
            elif tp is float and _kind(p) != "finite":
                unchecked.append(f"{name}: float without the finite check")
    assert not unchecked, "\n".join(unchecked)


# ---- property: bad option values exit 2 with one line, before any work ---------------------------
@pytest.fixture(scope="module")
def guard(tmp_path_factory) -> dict[str, Any]:
    """A file and a directory the bad inputs point at; their bytes must never change."""
    root = tmp_path_factory.mktemp("guard")
    f = root / "precious.txt"
    f.write_text("do not touch\n")
    d = root / "existing_dir"
    d.mkdir()
    (d / "keep.bin").write_bytes(os.urandom(64))
    return {"root": root, "file": f, "dir": d}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _required_args(cmd: Any, skip: str, tmp: Path) -> list[str]:
    """Plausible values for the command's required options other than ``skip``."""
    args: list[str] = []
    for p in cmd.params:
        if not p.required or p.name == skip or not p.opts[0].startswith("--"):
            continue
        if p.name in OUT_NAMES:
            args += [p.opts[0], str(tmp / "new_out")]
        elif p.name == "env":
            args += [p.opts[0], "simlab/Maze-v0"]
        else:
            args += [p.opts[0], str(tmp / "does-not-exist")]
    return args


def _bad_values(param: Any, guard: dict[str, Any]) -> st.SearchStrategy[str]:
    tp = _base(param.type_descriptor.annotation)
    text = st.sampled_from(["", "abc", "1.5", "1e400", "nan", "--", "0x10", " ", "1,2"])
    if param.name in OUT_NAMES:
        suffix = ".mp4" if param.name == "video" else ""
        kind = _kind(param)
        cands = ["", " ", "/proc/simlab-out" + suffix, str(guard["file"]) + "/below" + suffix]
        if kind == "out_dir":
            cands.append(str(guard["file"]))
        else:
            cands += [str(guard["dir"]) + suffix if suffix else str(guard["dir"]), str(guard["file"])]
        return st.sampled_from(cands)
    if tp is int:
        lo, hi = param.min, param.max
        parts = [text.filter(lambda t: t not in ("0x10",))]
        if lo is not None:  # (an option without a range fails the structural test above)
            parts.append(st.integers(max_value=lo - 1, min_value=lo - 10**30).map(str))
        if hi is not None:
            parts.append(st.integers(min_value=hi + 1, max_value=hi + 10**30).map(str))
        return st.one_of(*parts)
    if tp is float:
        return st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "-1e-9", "abc", "", "1e999"]),
                         st.floats(max_value=-1e-12).map(repr))
    return st.nothing()


def _targets() -> list[tuple[list[str], Any, Any]]:
    out = []
    for path, cmd in commands():
        for p in cmd.params:
            tp = _base(p.type_descriptor.annotation)
            if p.name in OUT_NAMES or tp in (int, float):
                out.append((path, cmd, p))
    return out


TARGETS = _targets()


def _check_bad_option(data: Any, guard: dict[str, Any], tmp: Path) -> None:
    path, cmd, param = data.draw(st.sampled_from(TARGETS), label="option")
    value = data.draw(_bad_values(param, guard), label="value")
    before = _snapshot(guard["root"])
    args = [*path, *_required_args(cmd, param.name, tmp), param.opts[0], value]
    rc, _, err, secs = run_cli(args)
    assert_one_line_error(rc, err)
    assert secs < 20, f"{args} took {secs:.1f} s before failing (must fail before any work)"
    assert _snapshot(guard["root"]) == before
    assert not (tmp / "new_out").exists() or not any((tmp / "new_out").iterdir())


@FAST
@given(data=st.data())
def test_bad_option_values_exit_2_with_one_line(data: Any, guard: dict[str, Any], tmp_path: Path) -> None:
    _check_bad_option(data, guard, tmp_path)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_bad_option_values_exit_2_with_one_line_many(data: Any, guard: dict[str, Any], tmp_path: Path) -> None:
    _check_bad_option(data, guard, tmp_path)


@pytest.mark.parametrize("out", ["", "precious.txt", "precious.txt/below", "/proc/simlab-out"])
@pytest.mark.parametrize("cmd", [["collect", "collision2d"], ["collect", "procgen"], ["train", "dreamland"],
                                 ["train", "ppo"], ["train", "video-diffusion", "--data", "x"],
                                 ["train", "bc", "--data", "x", "--env", "simlab/Maze-v0"]])
def test_output_path_classes(cmd: list[str], out: str, guard: dict[str, Any]) -> None:
    target = out if out in ("", "/proc/simlab-out") else str(guard["root"] / out)
    before = _snapshot(guard["root"])
    rc, _, err, _ = run_cli([*cmd, "--out", target])
    assert_one_line_error(rc, err)
    assert _snapshot(guard["root"]) == before


# ---- overrides: parsed against the declared type ------------------------------------------------
def _config_classes() -> list[type]:
    from simlab.envs.collision2d.dataset import CollectConfig
    from simlab.pipelines.dreamland import DreamlandConfig
    from simlab.policies.bc import BCConfig
    from simlab.policies.cmaes import CMAESConfig
    from simlab.policies.ppo import PPOConfig
    from simlab.world_models.dropout.mdnrnn import RNNTrainConfig
    from simlab.world_models.dropout.vae import VAETrainConfig
    from simlab.world_models.video_diffusion.config import VideoDiffusionConfig

    return [BCConfig, PPOConfig, DreamlandConfig, CMAESConfig, RNNTrainConfig, VAETrainConfig,
            VideoDiffusionConfig, CollectConfig]


def test_override_values_are_parsed_by_declared_type() -> None:
    from simlab.pipelines.dreamland import DreamlandConfig
    from simlab.policies.bc import BCConfig

    assert resolve(BCConfig, "bc", [], ["lr=3e-4"]).lr == pytest.approx(3e-4)  # the --help example
    assert resolve(BCConfig, "bc", [], ["epochs=1e3"]).epochs == 1000
    assert resolve(BCConfig, "bc", [], ["depths=8,16"]).depths == (8, 16)
    assert resolve(BCConfig, "bc", [], ["depths=[8, 16]"]).depths == (8, 16)
    assert resolve(BCConfig, "bc", [], ["preload=no"]).preload is False
    assert resolve(DreamlandConfig, "dreamland", [], ["train_levels=10:50"]).train_levels == "10:50"  # not 650
    for bad in ("lr=.inf", "lr=inf", "lr=nan", "lr=-inf", "epochs=1.5", "epochs=10:50", "preload=maybe",
                "lr=", "epochs=", "depths=a,b"):
        with pytest.raises(ConfigError):
            resolve(BCConfig, "bc", [], [bad])


def _fields() -> list[tuple[type, str, Any]]:
    out = []
    for cls in _config_classes():
        hints = typing.get_type_hints(cls)
        out += [(cls, f.name, hints[f.name]) for f in dataclasses.fields(cls)]
    return out


FIELDS = _fields()


def _check_override_text(cls: type, name: str, tp: Any, text: str) -> None:
    try:
        cfg = resolve(cls, "none", [], [f"{name}={text}"])
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    # accepted: the value has the declared type, is finite, and the config round-trips
    v = getattr(cfg, name)
    base = _base(tp)
    if base is float:
        assert isinstance(v, float) and np.isfinite(v)
    if base is int:
        assert isinstance(v, int) and not isinstance(v, bool)
    assert from_dict(cls, to_dict(cfg)) == cfg


@FAST
@given(data=st.data())
def test_any_override_text_is_parsed_or_refused(data: Any) -> None:
    cls, name, tp = data.draw(st.sampled_from(FIELDS), label="field")
    text = data.draw(st.one_of(
        st.sampled_from(["nan", "inf", "-1", "0", "1e400", "10:50", "yes", "[]", "[1,", "none", "", "1_000",
                         "3e-4", "-0", "0x1f", "1,2,3", "'quoted'", "{a: 1}", "\x00"]),
        st.text(max_size=12),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-10**20, max_value=10**20).map(str)), label="text")
    _check_override_text(cls, name, tp, text)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_any_override_text_is_parsed_or_refused_many(data: Any) -> None:
    cls, name, tp = data.draw(st.sampled_from(FIELDS), label="field")
    _check_override_text(cls, name, tp, data.draw(st.text(max_size=24), label="text"))


def test_override_syntax_errors() -> None:
    for bad in ("noequals", "=1", " =1"):
        with pytest.raises(ConfigError):
            parse_override(bad)


# ---- corruption: every flipped byte is caught on read -------------------------------------------
def _flip(path: Path, offset: int, mask: int) -> bytes:
    blob = path.read_bytes()
    b = bytearray(blob)
    b[offset] ^= mask
    path.write_bytes(bytes(b))
    return blob


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if hasattr(a, "shape"):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b


def _corruption_check(root: Path, read: Any, flips_per_file: int, seed: int) -> dict[str, int]:
    """Flip bytes in every file under ``root``; each read must fail with a SimlabError or return
    exactly what it returned before the flip. Returns counts (caught, harmless)."""
    rng = np.random.default_rng(seed)
    ref = read()
    counts = {"caught": 0, "harmless": 0}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert files
    for f in files:
        size = f.stat().st_size
        for _ in range(flips_per_file):
            off, mask = int(rng.integers(size)), int(rng.integers(1, 256))
            blob = _flip(f, off, mask)
            data_mod._VERIFIED.clear()
            try:
                got = read()
            except SimlabError as e:
                assert "\n" not in str(e)
                counts["caught"] += 1
            else:
                assert _equal(ref, got), f"flip at {f.relative_to(root)}:{off} ^ {mask:#x} changed what is read"
                counts["harmless"] += 1
            finally:
                f.write_bytes(blob)
    return counts


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    from simlab.envs.collision2d.dataset import CollectConfig, collect

    out = tmp_path_factory.mktemp("corrupt") / "c2d"
    collect(CollectConfig(size=6, resolution=16, videos_per_shard=3), out, progress=False)
    return out


@pytest.fixture(scope="module")
def small_transitions(tmp_path_factory) -> Path:
    from simlab.envs.procgen.dataset import ProcgenCollectConfig, collect_procgen

    out = tmp_path_factory.mktemp("corrupt") / "pg"
    collect_procgen(ProcgenCollectConfig(game="maze", levels="0:5", transitions=24, num_envs=2,
                                         transitions_per_shard=12), out, progress=False)
    return out


def test_every_flip_in_a_collision_dataset_is_caught(small_dataset: Path) -> None:
    from simlab.envs.collision2d.dataset import VideoDataset

    def read() -> dict[str, Any]:
        ds = VideoDataset(small_dataset)
        return {"config": dataclasses.asdict(ds.config), **ds.load(0, len(ds))}

    counts = _corruption_check(small_dataset, read, flips_per_file=6, seed=0)
    assert counts["caught"] > 0


def test_every_flip_in_a_transition_dataset_is_caught(small_transitions: Path) -> None:
    from simlab.envs.procgen.dataset import TransitionDataset

    def read() -> dict[str, Any]:
        ds = TransitionDataset(small_transitions)
        return {"config": dataclasses.asdict(ds.config), **ds.load()}

    counts = _corruption_check(small_transitions, read, flips_per_file=6, seed=1)
    assert counts["caught"] > 0


def test_every_flip_in_a_saved_world_model_and_policy_is_caught(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from simlab.policies.saved import ImpalaActor, SavedPolicy, save_policy
    from simlab.world_models.dropout.vae import ConvVAE

    torch.manual_seed(0)
    ConvVAE(z_dim=4).save_pretrained(tmp_path / "vae")

    def read_vae() -> dict[str, Any]:
        m = ConvVAE.from_pretrained(tmp_path / "vae")
        return {"config": dataclasses.asdict(m.config), **{k: v.numpy() for k, v in m.state_dict().items()}}

    assert _corruption_check(tmp_path / "vae", read_vae, flips_per_file=8, seed=2)["caught"] > 0
    save_policy(tmp_path / "pol", ImpalaActor(n_actions=3, image_size=16, depths=(2, 2, 2), features_dim=8))

    def read_policy() -> dict[str, Any]:
        p = SavedPolicy.load(tmp_path / "pol")
        return {"config": p.config, "meta": p.meta, **{k: v.numpy() for k, v in p.network.state_dict().items()}}

    assert _corruption_check(tmp_path / "pol", read_policy, flips_per_file=8, seed=3)["caught"] > 0


def test_every_flip_in_a_run_directory_record_is_caught(tmp_path: Path) -> None:
    from simlab.policies.bc import BCConfig
    from simlab.runs import RunDir

    cfg = BCConfig(data="somewhere", lr=1e-3)
    run = RunDir.create(tmp_path / "run", cfg)
    run.mark_stage("train", {"loss": 0.25, "steps": 10})
    run.mark_stage("eval", {"eval/test/mean": 3.5})
    def read() -> dict[str, Any]:
        r = RunDir(tmp_path / "run")
        return {"config": to_dict(r.config(BCConfig)), "train": r.stage_done("train"), "eval": r.stage_done("eval")}

    counts = _corruption_check(tmp_path / "run", read, flips_per_file=16, seed=4)  # config.yaml, stages/*.json
    assert counts["caught"] > 0


# ---- interrupts -----------------------------------------------------------------------------
def test_sigint_inside_a_shard_write_lands_after_the_rename(tmp_path: Path, monkeypatch) -> None:
    import h5py

    real = h5py.Group.create_dataset
    calls = []

    def create(self: Any, *a: Any, **k: Any) -> Any:
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the HDF5 write
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", create)
    # Ctrl-C must mean KeyboardInterrupt here even when the suite was started in the background
    # (``cmd &`` from a script starts it with SIGINT ignored, and Python then keeps it ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    path = tmp_path / "shards" / "shard-00000.h5"
    arrays = {"a": np.arange(12).reshape(3, 4), "b": np.ones(3)}
    try:
        with pytest.raises(KeyboardInterrupt):
            data_mod.write_h5_shard(path, arrays, {"kind": "x"})
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(calls) == 2  # the write went on to the end...
    with data_mod.open_h5(path) as f:  # ...and the file is complete
        np.testing.assert_array_equal(f["a"][()], arrays["a"])
        np.testing.assert_array_equal(f["b"][()], arrays["b"])
    assert not list(path.parent.glob(".*tmp*"))


def test_ctrl_c_exits_130_with_one_line_and_resume_finishes_equal(tmp_path: Path) -> None:
    from simlab.envs.collision2d.dataset import CollectConfig, collect

    ref = tmp_path / "ref"
    collect(CollectConfig(size=60, resolution=32, videos_per_shard=4), ref, progress=False)
    out = tmp_path / "cut"
    args = [sys.executable, "-m", "simlab.cli", "collect", "collision2d", "--out", str(out), "--size", "60",
            "--resolution", "32", "--videos-per-shard", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The child gets SIGINT's default disposition, so Python turns Ctrl-C into KeyboardInterrupt even
    # when the suite itself runs in the background with SIGINT ignored (which children inherit).
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "shards").glob("shard-*.h5"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the collection finished before Ctrl-C arrived (machine too fast)")
    assert proc.returncode == 130, err
    assert error_lines(err) == ["interrupted; rerun with --resume to continue"], err
    assert "Traceback" not in err
    # a killed writer's leftover (dead pid) is removed by --resume
    orphan = out / "shards" / ".shard-00009.h5.tmp-999999999"
    orphan.write_bytes(b"half a shard")
    rc = subprocess.run([*args, "--resume"], check=False, capture_output=True, text=True, env=env).returncode
    assert rc == 0
    assert not orphan.exists()
    a = {p.name: p.read_bytes() for p in (ref / "shards").glob("shard-*.h5")}
    b = {p.name: p.read_bytes() for p in (out / "shards").glob("shard-*.h5")}
    assert a == b
    assert (ref / "manifest.json").read_text() == (out / "manifest.json").read_text()


def test_resume_of_a_run_removes_orphans_but_not_live_writers(tmp_path: Path) -> None:
    from simlab.policies.bc import BCConfig
    from simlab.runs import RunDir

    cfg = BCConfig(data="x")
    RunDir.create(tmp_path / "r", cfg)
    dead = tmp_path / "r" / "checkpoints" / ".model.safetensors.tmp-999999999"
    live = tmp_path / "r" / "checkpoints" / f".other.json.tmp-{os.getppid()}"
    dead.write_bytes(b"x")
    live.write_bytes(b"y")
    RunDir.create(tmp_path / "r", cfg, resume=True)
    assert not dead.exists() and live.exists()


# ---- divergence -----------------------------------------------------------------------------
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    import simlab.policies.bc as bcmod
    from simlab.envs.procgen.dataset import ProcgenCollectConfig, collect_procgen

    ds = tmp_path / "ds"
    collect_procgen(ProcgenCollectConfig(game="maze", levels="0:4", transitions=32, num_envs=4,
                                         transitions_per_shard=32), ds, progress=False)
    real_ce, calls = F.cross_entropy, []

    def nan_after_4(*a: Any, **k: Any) -> Any:
        calls.append(1)
        loss = real_ce(*a, **k)
        return loss * float("nan") if len(calls) > 4 else loss

    monkeypatch.setattr(F, "cross_entropy", nan_after_4)
    out = tmp_path / "run"
    args = ["train", "bc", "--data", str(ds), "--env", "simlab/Maze-v0", "--out", str(out),
            "epochs=4", "batch_size=16", "depths=[2,2,2]", "features_dim=8", "device=cpu"]
    rc, _, err, _ = run_cli(args)
    assert_one_line_error(rc, err)
    assert "loss is nan" in err
    from simlab.integrity import read_sealed_json
    from simlab.policies.saved import SavedPolicy

    ckpt = out / "checkpoints" / "latest"
    assert read_sealed_json(ckpt / "trainer.json", CheckpointError, "state")["step"] == 4  # the last good one
    w = SavedPolicy.load(ckpt / "policy").network.state_dict()
    assert all(bool(torch.isfinite(v).all()) for v in w.values())
    assert not (out / "policy").exists()  # no final policy from diverged weights
    # resuming with a sane loss goes on from that checkpoint and finishes
    monkeypatch.setattr(F, "cross_entropy", real_ce)
    rc, _, err, _ = run_cli([*args, "--resume"])
    assert rc == 0, err
    assert bcmod.load_checkpoint  # the module under test


def test_diverged_error_is_a_simlab_error() -> None:
    from simlab.training import check_loss

    assert check_loss(1.5, 0, "x") == 1.5
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(DivergedError, match="step 7"):
            check_loss(bad, 7, "x")


# ---- resources ----------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["collect", "collision2d", "--size", "99999999999999999999999"],
    ["collect", "collision2d", "--size", "3000000000", "--videos-per-shard", "3000000000", "--resolution", "1024"],
])
def test_impossible_sizes_are_refused_before_allocating(args: list[str], tmp_path: Path) -> None:
    rc, _, err, secs = run_cli([*args, "--out", str(tmp_path / "d")])
    assert_one_line_error(rc, err)
    assert "needs" in err and secs < 10
    assert not (tmp_path / "d").exists()


def test_one_error_path_maps_oserror_and_internal_errors(monkeypatch, tmp_path: Path) -> None:
    from simlab import cli

    def boom(*a: Any, **k: Any) -> None:
        raise PermissionError(13, "Permission denied", "/some/file")

    monkeypatch.setattr(cli, "make_env", boom)
    rc, _, err, _ = run_cli(["render", "--env", "simlab/Maze-v0", "--out", str(tmp_path / "a.mp4")])
    assert_one_line_error(rc, err)
    assert "/some/file" in err

    def bug(*a: Any, **k: Any) -> None:
        raise TypeError("a\nmulti-line\nbug")

    monkeypatch.setattr(cli, "make_env", bug)
    monkeypatch.delenv("SIMLAB_DEBUG", raising=False)
    rc, _, err, _ = run_cli(["render", "--env", "simlab/Maze-v0", "--out", str(tmp_path / "a.mp4")])
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "internal error" in err
    assert isinstance(CheckpointError("x"), SimlabError) and isinstance(DatasetError("x"), SimlabError)


# ---- prediction files of `simlab eval physics --pred` ------------------------------------------
@pytest.mark.parametrize("kind", ["empty", "text", "no_frames", "group", "dtype", "zero", "index_float",
                                  "index_2d", "index_range", "index_len"])
def test_malformed_prediction_files_are_one_line_errors(kind: str, small_dataset: Path, tmp_path: Path) -> None:
    import h5py

    p = tmp_path / "pred.h5"
    good = np.zeros((2, 32, 16, 16, 3), np.uint8)
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("frames = 1\n")
    else:
        with h5py.File(p, "w") as f:
            if kind == "group":
                f.create_group("frames")
            elif kind != "no_frames":
                f["frames"] = {"dtype": good.astype(np.float32), "zero": good[:0]}.get(kind, good)
            if kind.startswith("index"):
                f["index"] = {"index_float": np.array([0.0, 1.0]), "index_2d": np.zeros((2, 1), np.int64),
                              "index_range": np.array([0, 99]), "index_len": np.array([0])}[kind]
    rc, _, err, _ = run_cli(["eval", "physics", "--data", str(small_dataset), "--pred", str(p)])
    assert_one_line_error(rc, err)


def test_resume_recomputes_a_zeroed_sidecar_checksum(tmp_path: Path) -> None:
    import json

    from simlab.envs.collision2d.dataset import CollectConfig, VideoDataset, collect

    cfg = CollectConfig(size=4, resolution=16, videos_per_shard=2)
    out = tmp_path / "d"
    assert not collect(cfg, out, shard=(0, 2), progress=False).complete
    side = out / "shards" / "shard-00000.json"
    info = json.loads(side.read_text())
    side.write_text(json.dumps({**info, "sha256": "0" * 64}))
    assert collect(cfg, out, shard=(1, 2), progress=False).complete
    man = json.loads((out / "manifest.json").read_text())
    assert man["shards"][0]["sha256"] == data_mod.sha256_file(out / "shards" / "shard-00000.h5")
    VideoDataset(out, verify=True).load(0, 4)
