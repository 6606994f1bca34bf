"""One saved-model format (issue 11): diffusers' layout for ConvVAE, MDN-RNN and the CMA-ES controller;
format-version-1 directories (the layout before) load bit-exactly and convert atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gymnasium import spaces

from simlab.actions import action_space_to_json
from simlab.errors import CheckpointError
from simlab.policies.cmaes import LinearController
from simlab.world_models.base import V1_WEIGHTS_NAME, WEIGHTS_NAME, convert_v1_dir
from simlab.world_models.convert import convert, main
from simlab.world_models.dropout import MDNRNN, ConvVAE, DropoutWorldModel

torch.set_num_threads(1)
Z, H, A = 4, 8, 3
VERSION = "0.1.0"


# ---- a private writer of format version 1, as simlab wrote it before issue 11 --------------------
def _seal_v1(doc: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {**body, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _v1_weights(path: Path, tensors: dict[str, torch.Tensor], cls_name: str) -> str:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt", "class": cls_name})
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _v1_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(_seal_v1(doc), indent=2, sort_keys=True) + "\n")


def write_v1_module(path: Path, module: torch.nn.Module) -> Path:
    """ConvVAE / MDNRNN: config.json {class, simlab_version, format_version 1, config, weights_sha256}."""
    path.mkdir(parents=True)
    name = type(module).__name__
    digest = _v1_weights(path / V1_WEIGHTS_NAME, module.state_dict(), name)
    _v1_json(path / "config.json", {"class": name, "simlab_version": VERSION, "format_version": 1,
                                    "config": dataclasses.asdict(module.config), "weights_sha256": digest})
    return path


def write_v1_world_model(path: Path, wm: DropoutWorldModel) -> Path:
    """DropoutWorldModel: vae/, mdnrnn/, start_z.safetensors, world_model.json (format 1)."""
    path.mkdir(parents=True)
    write_v1_module(path / "vae", wm.vae)
    write_v1_module(path / "mdnrnn", wm.rnn)
    digest = _v1_weights(path / "start_z.safetensors", {"start_z": wm.start_z, "start_h": wm.start_h,
                                                         "start_c": wm.start_c}, "DropoutWorldModel")
    _v1_json(path / "world_model.json", {
        "class": "DropoutWorldModel", "simlab_version": VERSION, "format_version": 1, "n_actions": wm.n_actions,
        "action_space": action_space_to_json(wm.action_space), "env_id": wm.env_id, "z_dim": wm.z_dim,
        "hidden": wm.hidden, "num_start_z": int(wm.start_z.shape[0]), "start_z_sha256": digest})
    return path


def write_v1_controller(path: Path, c: LinearController, meta: dict[str, Any]) -> Path:
    """LinearController: config.json {format_version 1, class, network, spaces, meta, weights_sha256}."""
    path.mkdir(parents=True)
    if c.box is not None:
        network: dict[str, Any] = {"in_dim": c.in_dim, "action_space": action_space_to_json(c.box)}
        act = network["action_space"]
    else:
        network = {"in_dim": c.in_dim, "actions": list(c.actions)}
        act = {"type": "Discrete", "n": max(c.actions) + 1, "actions": list(c.actions)}
    digest = _v1_weights(path / V1_WEIGHTS_NAME, {"W": torch.from_numpy(c.W), "b": torch.from_numpy(c.b)},
                         "LinearController")
    _v1_json(path / "config.json", {"format_version": 1, "class": "LinearController", "simlab_version": VERSION,
                                    "observation_space": {"type": "Box", "shape": [c.in_dim], "dtype": "float32"},
                                    "action_space": act, "network": network, "weights_sha256": digest,
                                    "meta": meta})
    return path


# ---- fixtures --------------------------------------------------------------------------------------
def world_model() -> DropoutWorldModel:
    torch.manual_seed(0)
    vae = ConvVAE(z_dim=Z, width=4)
    rnn = MDNRNN(z_dim=Z, n_actions=A, hidden=H, mixtures=2, dropout=0.1)
    with torch.no_grad():  # non-trivial weights everywhere (biases start at zero in places)
        for p in [*vae.parameters(), *rnn.parameters()]:
            p.add_(torch.randn_like(p) * 0.01)
    return DropoutWorldModel(vae, rnn, torch.randn(3, Z), env_id="simlab/Dodge-v0",
                             start_state=(torch.randn(3, H), torch.randn(3, H)))


def controllers() -> tuple[LinearController, LinearController]:
    rng = np.random.default_rng(0)
    disc = LinearController(Z + H, [0, 2, 5], rng.normal(size=(Z + H + 1) * 3))
    box = spaces.Box(np.array([-1, 0], np.float32), np.array([1, 1], np.float32))
    return disc, LinearController(Z + H, box, rng.normal(size=(Z + H + 1) * 2))


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def dream_trajectory(wm: DropoutWorldModel) -> np.ndarray:
    env = wm.as_vec_env(3, mask_mode="per_episode", dropout=0.1, seed=7)
    obs, _ = env.reset()
    out = [obs]
    for t in range(5):
        out.append(env.step(np.array([t % A, 1, 2]))[0])
    return np.stack(out)


# ---- the new layout ----------------------------------------------------------------------------------
def test_layout_is_diffusers_and_diffusers_reads_it(tmp_path: Path) -> None:
    from diffusers.models.modeling_utils import ModelMixin

    wm = world_model()
    wm.save_pretrained(tmp_path / "wm")
    for sub, module in (("vae", wm.vae), ("mdnrnn", wm.rnn)):
        d = tmp_path / "wm" / sub
        assert sorted(p.name for p in d.iterdir()) == ["config.json", WEIGHTS_NAME]
        doc = json.loads((d / "config.json").read_text())
        assert doc["_class_name"] == type(module).__name__ and doc["_simlab_format_version"] == 2
        assert {k: v for k, v in doc.items() if not k.startswith("_")} == dataclasses.asdict(module.config)
        assert isinstance(module, ModelMixin) and dict(module._internal_dict) == dataclasses.asdict(module.config)
        # diffusers' own loader (local files only) rebuilds the same model from the same files
        back = ModelMixin.from_pretrained.__func__(type(module), d, local_files_only=True)
        assert back.config == module.config
        same_state(back, module)


def test_new_format_round_trip_is_bit_exact(tmp_path: Path) -> None:
    wm = world_model()
    back = DropoutWorldModel.from_pretrained(wm.save_pretrained(tmp_path / "wm"))
    same_state(back, wm)
    np.testing.assert_array_equal(dream_trajectory(back), dream_trajectory(wm))


# ---- format version 1 ------------------------------------------------------------------------------
def test_v1_world_model_loads_bit_exactly_and_converts(tmp_path: Path) -> None:
    wm = world_model()
    old = write_v1_world_model(tmp_path / "wm", wm)
    loaded = DropoutWorldModel.from_pretrained(old)
    same_state(loaded, wm)
    assert loaded.env_id == wm.env_id and loaded.rnn.config == wm.rnn.config and loaded.vae.config == wm.vae.config
    want = dream_trajectory(wm)
    np.testing.assert_array_equal(dream_trajectory(loaded), want)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        mu = wm.vae.encode(frames)[0]
        assert torch.equal(loaded.vae.encode(frames)[0], mu)

    assert convert(tmp_path) == [old]
    assert json.loads((old / "world_model.json").read_text())["format_version"] == 2
    for sub in ("vae", "mdnrnn"):
        assert sorted(p.name for p in (old / sub).iterdir()) == ["config.json", WEIGHTS_NAME]
    conv = DropoutWorldModel.from_pretrained(old)
    same_state(conv, wm)
    np.testing.assert_array_equal(dream_trajectory(conv), want)
    with torch.no_grad():
        assert torch.equal(conv.vae.encode(frames)[0], mu)
    assert convert(tmp_path) == []  # idempotent


@pytest.mark.parametrize("which", [0, 1], ids=["discrete", "box"])
def test_v1_controller_loads_bit_exactly_and_converts(tmp_path: Path, which: int) -> None:
    c = controllers()[which]
    old = write_v1_controller(tmp_path / "ctrl", c, {"trainer": "cmaes", "note": which})
    obs = np.random.default_rng(1).normal(size=(16, Z + H)).astype(np.float32)
    for _ in range(2):  # as written (format 1), then converted
        back = LinearController.load(old)
        np.testing.assert_array_equal(back.W, c.W)
        np.testing.assert_array_equal(back.b, c.b)
        np.testing.assert_array_equal(back.act(obs), c.act(obs))
        assert back.meta == {"trainer": "cmaes", "note": which} and back.continuous == c.continuous
        if c.box is not None:
            assert back.actions == c.box
        assert convert_v1_dir(old, ("LinearController",)) is (_ == 0)
    assert sorted(p.name for p in old.iterdir()) == ["config.json", WEIGHTS_NAME]
    # a converted controller and a freshly saved one have the same config
    c.save(tmp_path / "fresh", meta={"trainer": "cmaes", "note": which})
    strip = ("_simlab_sha256", "_weights_sha256")
    a, b = (json.loads((d / "config.json").read_text()) for d in (old, tmp_path / "fresh"))
    assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def test_v1_damage_is_one_line_checkpoint_error(tmp_path: Path) -> None:
    wm = world_model()
    d = write_v1_module(tmp_path / "rnn", wm.rnn)
    w = d / V1_WEIGHTS_NAME
    blob = w.read_bytes()
    w.write_bytes(blob[:-4])
    for fn in (lambda: MDNRNN.from_pretrained(d), lambda: convert(tmp_path)):
        with pytest.raises(CheckpointError, match=V1_WEIGHTS_NAME) as e:
            fn()
        assert "\n" not in str(e.value)
    assert (d / "config.json").exists() and not (d / WEIGHTS_NAME).exists()  # nothing half-converted
    w.write_bytes(blob)
    doc = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**doc, "config": {**doc["config"], "hidden": 9}}))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        MDNRNN.from_pretrained(d)
    with pytest.raises(CheckpointError, match="ConvVAE"):
        ConvVAE.from_pretrained(write_v1_module(tmp_path / "rnn2", wm.rnn))


def test_interrupted_conversion_still_loads(tmp_path: Path) -> None:
    """A crash after the new weights but before the new config.json leaves the old model readable."""
    wm = world_model()
    d = write_v1_module(tmp_path / "vae", wm.vae)
    from simlab.world_models.base import save_tensors

    save_tensors(d / WEIGHTS_NAME, wm.vae.state_dict())  # the first step of the conversion, then "crash"
    same_state(ConvVAE.from_pretrained(d), wm.vae)
    assert convert(tmp_path) == [d]
    same_state(ConvVAE.from_pretrained(d), wm.vae)


def test_convert_cli_and_untouched_dirs(tmp_path: Path) -> None:
    from simlab.policies.saved import ImpalaActor, SavedPolicy, save_policy

    save_policy(tmp_path / "run" / "policy", ImpalaActor(n_actions=3, image_size=16, depths=(2, 2, 2),
                                                          features_dim=8))
    write_v1_controller(tmp_path / "run" / "controller", controllers()[0], {})
    r = subprocess.run([sys.executable, "-m", "simlab.world_models.convert", str(tmp_path / "run")],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"converted {tmp_path / 'run' / 'controller'}"
    SavedPolicy.load(tmp_path / "run" / "policy")  # an image policy keeps its own format
    assert (tmp_path / "run" / "policy" / V1_WEIGHTS_NAME).exists()
    assert main([str(tmp_path / "nothing")]) == 2


def test_same_files_without_diffusers(tmp_path: Path) -> None:
    """The main job's quick start has no diffusers: the modules then save and load the same files."""
    code = ("import sys; sys.modules['diffusers'] = None\n"
            "import torch\n"
            "from simlab.world_models.modeling import HAS_DIFFUSERS\n"
            "from simlab.world_models.dropout import MDNRNN\n"
            "assert not HAS_DIFFUSERS\n"
            "torch.manual_seed(3)\n"
            f"MDNRNN(z_dim=4, n_actions=3, hidden=8).save_pretrained({str(tmp_path / 'plain')!r})\n"
            f"m = MDNRNN.from_pretrained({str(tmp_path / 'full')!r})\n"
            "assert m.config.hidden == 8 and m.config.mixtures == 2\n")
    torch.manual_seed(0)
    full = MDNRNN(z_dim=4, n_actions=3, hidden=8, mixtures=2)
    full.save_pretrained(tmp_path / "full")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    torch.manual_seed(3)
    ref = MDNRNN(z_dim=4, n_actions=3, hidden=8)  # same seed, same weights as without diffusers
    same_state(MDNRNN.from_pretrained(tmp_path / "plain"), ref)
    doc = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert "_diffusers_version" not in doc and doc["_class_name"] == "MDNRNN"
