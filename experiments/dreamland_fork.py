"""Fork a finished Dream Land run: same data, VAE, world models and upper bound; new controller settings.

    python experiments/dreamland_fork.py runs/SRC runs/DST key=value ...
    simlab train dreamland --out runs/DST --resume key=value ...   # the same overrides

Copies ``SRC`` without its dream controllers, their evaluations, diagnostics and report, writes the
config with the overrides (sealed, as simlab writes it), so ``--resume`` retrains only the controllers
(and the diagnostics) and every other figure stays the source run's. When an override changes where
dreams start (``dream_start``, ``start_every``, ``danger_starts``), the saved world models get the new
start states from their trained MDN-RNNs (nothing is retrained). Used to compare controller
settings on one world model (docs/results.md, "Why the dream could not rank controllers").
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from simlab.config import from_dict, load_yaml, save_yaml, to_dict
from simlab.pipelines.dreamland import UPPER, Dreamland, DreamlandConfig

START_KEYS = ("dream_start", "start_every", "danger_starts")
"""Config keys baked into a saved world model (its dream start states)."""
KEEP_STAGES = ("collect", "collect_heldout", "vae", "encode", "diag_vae", "fixed", "rnn_", f"controller_{UPPER}",
               f"eval_{UPPER}")


def overridden(src: Path, overrides: list[str]) -> dict:
    """The sealed config of run ``src`` as a dict, with ``key=value`` overrides (YAML values)
    applied; an unknown key exits with a one-line error."""
    cfg = to_dict(load_yaml(DreamlandConfig, src / "config.yaml", sealed=True))
    for kv in overrides:
        key, _, value = kv.partition("=")
        if key not in cfg:
            sys.exit(f"error: unknown config key {key!r}")
        cfg[key] = yaml.safe_load(value)
    return cfg


def main(src: Path, dst: Path, overrides: list[str]) -> None:
    if dst.exists():
        sys.exit(f"error: {dst} exists")
    cfg = overridden(src, [])
    before = {k: cfg[k] for k in START_KEYS}
    cfg = overridden(src, overrides)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("controllers", "eval", "report.*", "plots", "videos"))
    for sub in ("controllers", "eval"):
        if (src / sub / UPPER).exists():
            shutil.copytree(src / sub / UPPER, dst / sub / UPPER)
    for p in (dst / "stages").glob("*.json"):
        if not p.name.startswith(KEEP_STAGES):
            p.unlink()
    new_cfg = from_dict(DreamlandConfig, cfg)
    save_yaml(new_cfg, dst / "config.yaml")
    if any(cfg[k] != before[k] for k in START_KEYS):
        run = Dreamland(new_cfg, dst, resume=True, progress=False)
        for variant in new_cfg.variants():
            if (dst / "world_models" / variant).exists():
                n = run.save_world_model(variant, run.world_model(variant).rnn)
                print(f"{variant}: {n} dream start states")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
