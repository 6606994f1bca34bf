"""Run directories: one per ``simlab train ...`` invocation.

Layout (ARCHITECTURE.md)::

    RUN/config.yaml      fully resolved config
    RUN/metrics.jsonl    one JSON object per line: {"step": ..., "time": ..., "<ns>/<key>": value}
    RUN/tb/              TensorBoard events (when tensorboard/torch is installed)
    RUN/checkpoints/     atomic checkpoints
    RUN/stages/<name>.json   completion records of pipeline stages (for --resume)
    RUN/videos/ RUN/plots/ RUN/report.md

``RunDir.create`` refuses to reuse a non-empty directory unless resuming, and
a resumed run must have the same resolved config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TypeVar

from simlab.config import load_yaml, save_yaml, to_dict
from simlab.data import atomic_path, clean_orphans
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import read_sealed_json, write_sealed_json
from simlab.paths import check_output_dir

T = TypeVar("T")


class RunDir:
    """A run directory with config, metrics, checkpoints and stage markers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ---- creation ---------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: Any, resume: bool = False) -> RunDir:
        """Create (or, with ``resume``, reopen) a run directory for ``config``."""
        run = cls(path)
        cfg_path = run.path / "config.yaml"
        if run.path.exists() and any(run.path.iterdir()):
            if not resume:
                raise ConfigError(f"{run.path} is not empty; pass --resume to continue that run or choose another --out")
            if not cfg_path.exists():
                raise ConfigError(f"{run.path}: no config.yaml, so it is not a simlab run to resume")
            old = load_yaml(type(config), cfg_path, sealed=True)
            if to_dict(old) != to_dict(config):
                a, b = to_dict(old), to_dict(config)
                diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                raise ConfigError(f"{run.path}: resumed with a different config ({', '.join(diff)} differ)")
            clean_orphans(run.path)
        else:
            check_output_dir(run.path)
        for sub in ("checkpoints", "stages", "videos", "plots"):
            (run.path / sub).mkdir(parents=True, exist_ok=True)
        if not cfg_path.exists():
            save_yaml(config, cfg_path)
        return run

    def config(self, cls: type[T]) -> T:
        """Load this run's config as ``cls``."""
        return load_yaml(cls, self.path / "config.yaml", sealed=True)

    # ---- metrics ------------------------------------------------------------------
    def log(self, step: int, metrics: dict[str, float], namespace: str | None = None) -> None:
        """Append one metrics record (keys namespaced ``train/``, ``eval/``... as in SB3)."""
        rec: dict[str, Any] = {"step": int(step), "time": time.time()}
        for k, v in metrics.items():
            rec[f"{namespace}/{k}" if namespace and "/" not in k else k] = float(v) if isinstance(v, (int, float)) else v
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """All metric records (a torn last line from a killed run is ignored)."""
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_metrics(self, step: int) -> None:
        """Drop records past ``step``: what a killed run logged after the checkpoint it resumes from."""
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return
        keep = [r for r in self.metrics() if int(r.get("step", 0)) <= step]
        with atomic_path(p) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))

    # ---- stages -----------------------------------------------------------------
    def stage_done(self, name: str) -> dict[str, Any] | None:
        """The record of a finished stage, or None; CheckpointError when the record is corrupt.

        Records are sealed (:mod:`simlab.integrity`): results a report shows are
        never read from a damaged file.
        """
        p = self.path / "stages" / f"{name}.json"
        if not p.exists():
            return None
        return read_sealed_json(p, CheckpointError, f"stage record (delete it to redo stage {name!r})")

    def mark_stage(self, name: str, info: dict[str, Any] | None = None) -> None:
        """Record that a stage finished (atomic, sealed)."""
        write_sealed_json(self.path / "stages" / f"{name}.json", {"stage": name, "time": time.time(), **(info or {})})

    def checkpoint(self, name: str) -> Path:
        """Path of a checkpoint (file or directory) under ``checkpoints/``."""
        return self.path / "checkpoints" / name
