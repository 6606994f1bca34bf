"""`simlab train dreamland` end to end on the debug preset: outputs, resume equality, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simlab.cli import main
from simlab.errors import ConfigError
from simlab.pipelines.dreamland import Dreamland, DreamlandConfig, dreamland_config, train_dreamland


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SWEEP = {"sweep": "[0.1]"}
"""The module's run: Dream Land (0.05), the baseline and one sweep variant (0.1)."""


def debug(**kw) -> DreamlandConfig:
    return dreamland_config(["debug"], [f"{k}={v}" for k, v in kw.items()])


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dl") / "run"
    torch.set_num_threads(1)
    train_dreamland(debug(**SWEEP), out, progress=False)
    return out


def report(run: Path) -> dict:
    """report.json without its wall time (the only figure allowed to differ between equal runs)."""
    r = json.loads((run / "report.json").read_text())
    r.pop("seconds")
    return r


def test_debug_run_writes_everything(unbroken: Path) -> None:
    from simlab.world_models.dropout.model import DropoutWorldModel

    for f in ("config.yaml", "metrics.jsonl", "report.md", "report.json", "plots/dream_vs_real.png",
              "plots/vae_reconstruction.png", "plots/dream_fidelity.png", "plots/multistep.png"):
        assert (unbroken / f).exists(), f
    rep = report(unbroken)
    assert rep["env"] == "simlab/Dodge-v1" and rep["preset"] == "debug"
    assert set(rep["variants"]) == {"dreamland", "worldmodels", "dreamland_p0.1"}
    assert set(rep["fixed_policies"]) == {"stand still", "uniform random", "random held 1-10", "sweep wall to wall"}
    for rows in (rep["variants"], rep["fixed_policies"], {"upper": rep["upper_bound"]}):
        for r in rows.values():
            assert set(r) == {"train", "heldout", "hard"}
            assert all(set(c) == {"mean", "std", "ci95", "n"} and c["n"] == 2 for c in r.values())
    d = rep["diagnostics"]
    assert 0.0 <= d["hazard_recall"] <= 1.0 and d["hazards"] > 0
    assert set(d["dream_fidelity"]) == set(rep["variants"])
    panel = d["fidelity_panel"]["dreamland"]
    assert len(panel["names"]) == len(panel["dream"]) == len(panel["real"]) >= 4 + 2 + 1
    assert panel["dream_episodes"] == 8  # the debug preset's fidelity_dream_episodes
    for key in ("spearman_trained", "spearman_untrained"):  # None (too few) or a correlation
        assert key in panel and (panel[key] is None or -1.0 <= panel[key] <= 1.0 or panel[key] != panel[key])
    assert set(d["multistep"]) == set(rep["variants"]) and d["multistep"]["dreamland"]["horizon"] == [1, 2, 4]
    assert set(d["counterfactual"]) == set(rep["variants"])
    cf = d["counterfactual"]["dreamland"]
    assert cf["horizon"] == 4 and cf["pairs"] > 0 and set(cf["death_rate"]) == {"1", "4", "7"}
    # Dodge is mirror-symmetric: every real episode is also trained on flipped, LEFT <-> RIGHT
    assert d["data"]["mirrored_episodes"] * 2 == d["data"]["episodes"]
    with np.load(unbroken / "data" / "latents.npz") as f:
        lens, acts = f["lengths"], f["actions"]
    half = int(lens[: len(lens) // 2].sum())
    perm = np.array([6, 7, 8, 3, 4, 5, 0, 1, 2, 9, 10, 11, 12, 13, 14])
    assert np.array_equal(acts[half:], perm[acts[:half]])
    text = (unbroken / "report.md").read_text()
    for row in ("| Dream Land |", "| World Models (baseline) |", "| upper bound: CMA-ES in the real game |",
                "| fixed: sweep wall to wall |", "hard (OOD dynamics)", "**Hazard recall**", "**Dream fidelity**",
                "**Counterfactual test**"):
        assert row in text, row
    m = DropoutWorldModel.from_pretrained(unbroken / "world_models" / "dreamland")
    assert m.rnn.config.dropout == 0.05 and m.vae.config.fg_weight == 30.0
    assert DropoutWorldModel.from_pretrained(unbroken / "world_models" / "worldmodels").rnn.config.dropout == 0.0
    assert DropoutWorldModel.from_pretrained(unbroken / "world_models" / "dreamland_p0.1").rnn.config.dropout == 0.1
    keys = {k for r in (json.loads(x) for x in (unbroken / "metrics.jsonl").read_text().splitlines()) for k in r}
    assert any(k.startswith("dream_dreamland_s0/") for k in keys) and any(k.startswith("vae/") for k in keys)
    assert any(k.startswith("upper_bound_s0/") for k in keys)


def test_same_seed_same_report(unbroken: Path, tmp_path: Path) -> None:
    """A CPU run is reproducible from its seed on one machine (fixed thread count): a second
    run of the debug preset writes the same report.json, every figure equal."""
    train_dreamland(debug(**SWEEP), tmp_path / "again", progress=False)
    assert report(tmp_path / "again") == report(unbroken)


def test_killed_run_resumes_to_the_same_result(unbroken: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    real_eval = Dreamland.evaluate

    def dying(self, variant, k):
        if variant == "worldmodels":
            raise KeyboardInterrupt  # killed after the Dream Land controller was evaluated
        return real_eval(self, variant, k)

    monkeypatch.setattr(Dreamland, "evaluate", dying)
    with pytest.raises(KeyboardInterrupt):
        train_dreamland(debug(**SWEEP), out, progress=False)
    monkeypatch.setattr(Dreamland, "evaluate", real_eval)
    assert not (out / "report.md").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train_dreamland(debug(**SWEEP), out, progress=False)
    train_dreamland(debug(**SWEEP), out, resume=True, progress=False)
    assert report(out) == report(unbroken)


@pytest.mark.parametrize("args, needle", [
    (["--env", "simlab/Nope-v0"], "unavailable env id 'simlab/Nope-v0'"),
    (["--env", "CartPole-v1"], "observations are not images"),
    (["--env", "CarRacing-v3", "--controller", "ppo"], "needs discrete actions"),
    (["--dropout", "1.0"], "in [0, 1)"),
    (["--dropout", "-0.1"], "in [0, 1)"),
    (["--mask", "sometimes"], "unknown mask mode"),
    (["--preset", "huge"], "unknown preset"),
    (["--controller", "dqn"], "unknown controller"),
    (["--sweep", "0.1,x"], "--sweep must be comma-separated numbers"),
    (["--sweep", "0.1,1.5"], "sweep rates must be in [0, 1)"),
])
def test_bad_input(args, needle, tmp_path: Path, capsys) -> None:
    rc = main(["train", "dreamland", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_corrupt_world_model_checkpoint_is_named(unbroken: Path, tmp_path: Path) -> None:
    import shutil

    from simlab.errors import CheckpointError
    from simlab.world_models.dropout.model import DropoutWorldModel

    wm = tmp_path / "wm"
    shutil.copytree(unbroken / "world_models" / "dreamland", wm)
    w = next(wm.rglob("diffusion_pytorch_model.safetensors"))
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        DropoutWorldModel.from_pretrained(wm)


def test_variants_cover_the_papers_sweep() -> None:
    specs = debug(sweep="[0.0, 0.05, 0.1, 0.2]").variant_specs()
    rates = {v: s["dropout"] for v, s in specs.items()}
    assert rates == {"dreamland": 0.05, "worldmodels": 0.0, "dreamland_p0.1": 0.1, "dreamland_p0.2": 0.2}
    assert specs["worldmodels"]["mask"] == "none" and specs["dreamland_p0.2"]["mask"] == "per_episode"
    assert set(debug(baseline="false").variant_specs()) == {"dreamland"}


def test_car_racing_end_to_end(tmp_path: Path) -> None:
    """CarRacing-v3 (Box actions, 96x96 frames) through every stage on the debug preset."""
    from simlab.policies.cmaes import LinearController
    from simlab.world_models.dropout.model import DropoutWorldModel

    out = tmp_path / "car"
    cfg = debug(env="CarRacing-v3", transitions=256, eval_max_steps=40, eval_episodes=1, train_levels="0:20")
    rep = train_dreamland(cfg, out, progress=False)
    assert set(rep["variants"]) == {"dreamland", "worldmodels"}
    assert set(rep["variants"]["dreamland"]) == {"train", "heldout"}
    assert set(rep["fixed_policies"]) == {"uniform random"} and rep["upper_bound"] is None
    m = DropoutWorldModel.from_pretrained(out / "world_models" / "dreamland")
    assert m.continuous and m.action_space.shape == (3,)
    ctrl = LinearController.load(out / "controllers" / "dreamland" / "seed0" / "controller")
    act = ctrl.act(np.zeros((4, m.obs_dim), np.float32))
    assert act.shape == (4, 3) and (act >= m.action_space.low).all() and (act <= m.action_space.high).all()


@pytest.mark.parametrize("env", ["simlab/Maze-v0", "simlab/BigFish-v0"])
def test_other_procgen_games_run(env: str, tmp_path: Path) -> None:
    """The pipeline is not Dodge-specific: each game's own controller actions, both splits."""
    cfg = debug(env=env, baseline="false", transitions=512, eval_max_steps=30)
    rep = train_dreamland(cfg, tmp_path / "r", progress=False)
    assert set(rep["variants"]) == {"dreamland"} and set(rep["variants"]["dreamland"]) == {"train", "heldout", "hard"}
    # No sprite boxes recorded in these games: the diagnostic says so in one line instead of failing.
    assert rep["diagnostics"]["hazard_recall"] is None
    assert "unavailable" in rep["diagnostics"]["hazard_recall_note"]
    assert "Hazard recall: unavailable" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("pool", [False, True])
def test_selected_controller_is_the_best_on_training_levels(tmp_path: Path, pool: bool) -> None:
    """``select``: the seed with the best real training-level mean, on its own evaluation episodes
    (``select_pool``: on every seed's, its own reused), reported as its own row beside the
    protocol rows."""
    out = tmp_path / "sel"
    train_dreamland(debug(seeds=2, baseline=False, diagnostics=False, upper_bound=False, select_pool=pool),
                    out, progress=False)
    rec = json.loads((out / "stages" / "select_dreamland.json").read_text())
    evals = [json.loads((out / "stages" / f"eval_dreamland_s{k}.json").read_text()) for k in range(2)]
    means = [float(np.mean(e["train"]["returns"])) for e in evals]
    assert rec["train_means"] == pytest.approx(means) and rec["selected_seed"] == int(np.argmax(means))
    k = rec["selected_seed"]
    n = len(evals[0]["heldout"]["returns"])
    for split in ("train", "heldout", "hard"):
        own = rec[split]["returns"][k * n:(k + 1) * n] if pool else rec[split]["returns"]
        assert len(rec[split]["returns"]) == (2 * n if pool else n)
        assert own == evals[k][split]["returns"]  # its own episodes, reused
    rep = report(out)
    sel = rep["selected"]["dreamland"]
    assert sel["seed"] == k and sel["pooled"] is pool and sel["heldout"]["n"] == (2 * n if pool else n)
    assert "selected_heldout_ratio" in rep["verdict"]
    md = (out / "report.md").read_text()
    assert f"| Dream Land, selected: seed {k} (best on training levels) |" in md
    assert ("evaluated on every seed's episodes" if pool else "evaluated on its own seed's episodes") in md


def test_verdict_of_selected_rows() -> None:
    from simlab.pipelines.dreamland_report import stats, verdict

    fixed = {"a": {"heldout": stats([100.0, 100.0]), "train": stats([90.0, 90.0])},
             "b": {"heldout": stats([50.0, 60.0]), "train": stats([95.0, 95.0])}}
    var = {"dreamland": {"heldout": stats([120.0, 130.0]), "train": stats([99.0, 99.0])}}
    sel = {"dreamland": {"seed": 1, "heldout": stats([200.0, 200.0])}}
    v = verdict({"variants": var, "fixed_policies": fixed, "selected": sel})
    assert v["best_fixed"] == "a" and v["heldout_ratio"] == pytest.approx(1.25)
    assert v["selected_best_variant"] == "dreamland" and v["selected_heldout_ratio"] == pytest.approx(2.0)
    assert v["selected_heldout_cis_disjoint"]
    assert "selected_heldout_ratio" not in verdict({"variants": var, "fixed_policies": fixed, "selected": {}})


def test_start_focus_draws_dreams_from_the_informative_starts(tmp_path: Path) -> None:
    """``start_focus``: stage ``starts_<variant>`` keeps the rows whose held-action returns spread
    most, and the controllers' dreams (common starts, common noise) draw only from them."""
    from simlab.pipelines.dreamland import Dreamland
    from simlab.policies.panel import common_start_rows

    out = tmp_path / "focus"
    cfg = debug(seeds=1, baseline=False, diagnostics=False, upper_bound=False, fixed_policies=False,
                start_focus=0.25, common_noise="true")
    train_dreamland(cfg, out, progress=False)
    rec = json.loads((out / "stages" / "starts_dreamland.json").read_text())
    pool = np.load(out / "controllers" / "dreamland" / "start_pool.npz")
    spread = pool["held"].max(1) - pool["held"].min(1)
    assert rec["rows"] == len(pool["rows"]) == round(0.25 * rec["of"])
    assert spread[pool["rows"]].min() >= np.delete(spread, pool["rows"]).max()
    run = Dreamland(cfg, out, resume=True, progress=False)
    env = run._dream_env("dreamland", 5)(4, 0)
    drawn = common_start_rows(env, np.random.default_rng(0), 500)
    assert set(drawn) <= set(pool["rows"].tolist())
    assert run._dream_env("dreamland", 5, focused=False)(4, 0).start_pool is None


@pytest.mark.parametrize("kw, needle", [({"start_focus": 0}, "start_focus must be a fraction"),
                                        ({"start_focus": 1.5}, "start_focus must be a fraction"),
                                        ({"start_focus": 0.5, "controller": "ppo"}, "needs controller=cmaes"),
                                        ({"start_focus": 0.5, "common_starts": "false"}, "needs controller=cmaes")])
def test_bad_start_focus(kw, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        debug(**kw)


@pytest.mark.parametrize("value, needle", [("-0.5", "vae_fg_density must be a finite number >= 0"),
                                           ("inf", "'vae_fg_density': inf is not a finite number"),
                                           ("x", "'vae_fg_density': expected a number")])
def test_bad_vae_fg_density(value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        debug(vae_fg_density=value)


def test_vae_fg_density_reaches_the_saved_vae(tmp_path: Path) -> None:
    """The config key trains the VAE with the density weight and is recorded in its checkpoint."""
    from simlab.world_models.dropout.vae import ConvVAE

    run = Dreamland(debug(vae_fg_density=0.5, transitions=512), tmp_path / "d", progress=False)
    run._stage("collect", run.collect)
    run._stage("vae", run.train_vae)
    assert ConvVAE.from_pretrained(tmp_path / "d" / "checkpoints" / "vae").config.fg_density_power == 0.5
