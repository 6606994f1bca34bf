"""Rewrite saved models of simlab's format version 1 in the current layout (format version 2).

Usage::

    python -m simlab.world_models.convert DIR [DIR ...]

``DIR`` may be a saved model directory (ConvVAE, MDNRNN, a CMA-ES ``LinearController`` or a
dream-PPO ``MlpActor``), a saved :class:`~simlab.world_models.dropout.DropoutWorldModel`
(``world_model.json`` + ``vae/`` + ``mdnrnn/``), or any directory above them, such as a run
directory: every format-1 directory of those kinds below it is converted, each atomically and
bit-exactly (:func:`simlab.world_models.base.convert_v1_dir`); everything else is left alone
(image policies of :mod:`simlab.policies.saved` keep their own format). Converting is
optional: the current code reads format 1 directly.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from simlab.errors import CheckpointError, SimlabError
from simlab.world_models.base import (
    CONFIG_NAME,
    FORMAT_VERSION,
    convert_v1_dir,
    is_v1_dir,
    read_json_doc,
    rewrite_sealed_json,
)

CONVERTIBLE = ("ConvVAE", "MDNRNN", "LinearController", "MlpActor")
"""Classes whose format-1 ``config.json`` + ``model.safetensors`` directories are converted."""
MODEL_JSON = "world_model.json"
MODULES = (("vae", "ConvVAE"), ("mdnrnn", "MDNRNN"))
"""Sub-directories of a DropoutWorldModel and their classes."""


def convert_world_model(path: str | Path) -> bool:
    """Convert a DropoutWorldModel directory: its modules, then (last) ``world_model.json``; False if current."""
    path = Path(path)
    jpath = path / MODEL_JSON
    doc = read_json_doc(jpath, "DropoutWorldModel", "dropout world model")
    changed = False
    for sub, cls in MODULES:
        changed |= convert_v1_dir(path / sub, (cls,), "world-model module")
    if doc["format_version"] < FORMAT_VERSION:
        rewrite_sealed_json(jpath, {"format_version": FORMAT_VERSION})
        changed = True
    return changed


def _v1_class(path: Path) -> str | None:
    import json

    try:
        doc = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    return doc.get("class") if isinstance(doc, dict) and doc.get("format_version") == 1 else None


def convert(path: str | Path) -> list[Path]:
    """Convert every format-1 model directory at or below ``path``; returns the directories rewritten.

    Raises:
        CheckpointError: ``path`` is not a directory, or a format-1 directory is damaged (one
            line naming the file; directories converted before it stay converted).
    """
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such directory")
    done: list[Path] = []
    wms = sorted(p.parent for p in root.rglob(MODEL_JSON) if not _hidden(p, root))
    for wm in wms:
        stale = is_v1_dir(wm) or any(is_v1_dir(wm / sub) for sub, _ in MODULES)
        if stale and convert_world_model(wm):
            done.append(wm)
    inside = {wm / sub for wm in wms for sub, _ in MODULES}
    for cfg in sorted(root.rglob(CONFIG_NAME)):
        d = cfg.parent
        if d in inside or _hidden(cfg, root):
            continue
        cls = _v1_class(d)
        if cls in CONVERTIBLE and convert_v1_dir(d, (cls,)):
            done.append(d)
    return done


def _hidden(p: Path, root: Path) -> bool:
    """Temporary and backup directories (``.name.tmp``, ``.name.old``) are not converted."""
    return any(part.startswith(".") for part in p.relative_to(root).parts)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: convert each directory given; one line per converted directory; exit 2 on error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip().splitlines()[0])
        print("usage: python -m simlab.world_models.convert DIR [DIR ...]")
        return 0 if args else 2
    try:
        for a in args:
            done = convert(a)
            for d in done:
                print(f"converted {d}")
            if not done:
                print(f"{a}: nothing to convert (no format-1 model directories)")
    except SimlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
