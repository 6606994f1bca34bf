"""Compare finished Dream Land runs side by side, and pool them (e.g. one lever over pipeline seeds).

    python experiments/dreamland_compare.py LABEL=runs/A,runs/B,... LABEL2=runs/C,runs/D,... [--split heldout]

For every label (a setting), every run's variants: the mean real return on the split with its
95% CI and the per-controller-seed means, the dream fidelity (Spearman over the panel) and the
best fixed policy; then each variant pooled over the label's runs (all their episodes; the CI
ignores that episodes cluster by run). Reads each run's ``report.json`` and ``stages/eval_*``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from simlab.pipelines.dreamland_report import stats


def returns(run: Path, variant: str, split: str) -> list[list[float]]:
    """Real returns of each controller seed of ``variant`` on ``split`` (per seed, a list)."""
    out = []
    for p in sorted(run.glob(f"stages/eval_{variant}_s*.json")):
        out.append(json.loads(p.read_text())[split]["returns"])
    return out


def main(groups: dict[str, list[Path]], split: str) -> None:
    pooled: dict[tuple[str, str], list[float]] = {}
    for label, runs in groups.items():
        for run in runs:
            rep = json.loads((run / "report.json").read_text())
            best = max(rep["fixed_policies"].items(), key=lambda kv: kv[1][split]["mean"])
            fid = rep["diagnostics"].get("dream_fidelity", {})
            print(f"{label} {run}: best fixed {best[0]} {best[1][split]['mean']:.1f}")
            for v in rep["variants"]:
                per = returns(run, v, split)
                s = stats([x for r in per for x in r])
                seeds = " ".join(f"{np.mean(r):.0f}" for r in per)
                f = fid.get(v)
                print(f"  {v:12s} {s['mean']:6.1f} +- {s['ci95']:5.1f} [{seeds}]  "
                      f"{s['mean'] / best[1][split]['mean']:.2f}x  fidelity "
                      f"{'n/a' if f is None else f'{f:.2f}'}")
                pooled.setdefault((label, v), []).extend(x for r in per for x in r)
    print(f"pooled ({split}):")
    for (label, v), x in pooled.items():
        s = stats(x)
        print(f"  {label:10s} {v:12s} {s['mean']:6.1f} +- {s['ci95']:5.1f} (n = {s['n']})")


if __name__ == "__main__":
    args = sys.argv[1:]
    split = "heldout"
    if "--split" in args:
        i = args.index("--split")
        split = args[i + 1]
        del args[i:i + 2]
    if not args or any("=" not in a for a in args):
        sys.exit(__doc__)
    main({a.split("=", 1)[0]: [Path(p) for p in a.split("=", 1)[1].split(",")] for a in args}, split)
