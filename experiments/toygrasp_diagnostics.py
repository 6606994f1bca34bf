"""Stage-by-stage diagnostics of a grasp BC policy that does not localise (docs/toygrasp.md, stop 19).

    python experiments/toygrasp_diagnostics.py RUN [--data DIR] [--refit]

1. mask: least squares from the target mask's centroid in each demo's first frame to the
   expert's summed first-8-step move (dx, dy), fit on half the demos, r on the other half;
2. encoder: the same from the run's pooled features (and to the centroid itself);
3. policy: r between the policy's first chunk (summed first 5 moves) and the expert's;
4. magnitude: the policy's mean |dy| over the first 5 steps against the expert's;
5. --refit: the head alone retrained on the frozen features with L1 + tanh, MSE + tanh and
   L1 without tanh (3,000 steps each, a few CPU-minutes), same report on held-out demos.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from simlab.policies.grasp_bc import load_grasp_data, load_grasp_network


def corr(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Pearson r per column of two ``(N, k)`` arrays."""
    return [round(float(np.corrcoef(a[:, k], b[:, k])[0, 1]), 3) for k in range(a.shape[1])]


def fit_predict(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Least squares with a bias on the ``train`` rows, predictions for all rows."""
    xb = np.c_[x, np.ones(len(x))]
    w, *_ = np.linalg.lstsq(xb[train], y[train], rcond=None)
    return xb @ w


def head_output(net, feats: torch.Tensor, proprio: torch.Tensor, squash: bool = True) -> torch.Tensor:
    z = net.head(torch.cat([feats, (proprio - net.proprio_mean) / net.proprio_std], -1).flatten(1))
    z = z.view(len(z), net.chunk, 5)
    return torch.tanh(z) if squash else z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data", default="data/toygrasp_pb_250x2500")
    ap.add_argument("--max-demos", type=int, default=600)
    ap.add_argument("--refit", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_grasp_network(f"{args.run}/policy").eval()
    data = load_grasp_data(args.data, max_demos=args.max_demos)
    starts = np.unique(data.start)
    held = np.arange(len(starts)) % 2 == 1
    with torch.no_grad():
        feats = torch.cat([net.encode(torch.from_numpy(data.rgb[i:i + 512]), torch.from_numpy(data.mask[i:i + 512]))
                           for i in range(0, len(data), 512)])
    cent = np.array([np.nonzero(data.mask[s])[::-1] for s in starts], dtype=object)
    cent = np.array([[c[0].mean(), c[1].mean()] for c in cent])
    move8 = np.stack([data.actions[data.chunk_index(np.array([s]), 8)[0], :2].sum(0) for s in starts])
    print("1. mask centroid -> expert move r(dx, dy):", corr(fit_predict(cent, move8, ~held)[held], move8[held]))
    f0 = feats[starts].numpy()
    print("2. pooled feature -> centroid r:", corr(fit_predict(f0, cent, ~held)[held], cent[held]),
          " -> expert move r:", corr(fit_predict(f0, move8, ~held)[held], move8[held]))
    ci = data.context_index(np.arange(len(data)), net.context)
    ki = data.chunk_index(np.arange(len(data)), net.chunk)
    xf, pr, ya = feats[ci], torch.from_numpy(data.proprio[ci]), torch.from_numpy(data.actions[ki])

    def report(name: str, model) -> None:
        with torch.no_grad():
            out = head_output(model, xf[starts[held]], pr[starts[held]], getattr(model, "_squash", True))
        p5, e5 = out[:, :5, :2].sum(1).numpy(), ya[starts[held]][:, :5, :2].sum(1).numpy()
        print(f"{name}: first-chunk move r(dx, dy) {corr(p5, e5)}, mean |dy| {np.abs(p5[:, 1]).mean():.2f} "
              f"(expert {np.abs(e5[:, 1]).mean():.2f})")

    report("3-4. the policy", net)
    if not args.refit:
        return
    demo_of = np.searchsorted(starts, data.start)
    train_rows = torch.from_numpy(np.nonzero(~held[demo_of])[0])
    for loss, squash in (("l1", True), ("mse", True), ("l1", False)):
        torch.manual_seed(0)
        m = copy.deepcopy(net)
        for layer in m.head:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        m._squash = squash
        opt = torch.optim.AdamW(m.head.parameters(), lr=1e-3, weight_decay=1e-4)
        g = torch.Generator().manual_seed(0)
        for _ in range(3000):
            b = train_rows[torch.randint(len(train_rows), (64,), generator=g)]
            err = head_output(m, xf[b], pr[b], squash) - ya[b]
            loss_v = err.abs().mean() if loss == "l1" else (err ** 2).mean()
            opt.zero_grad()
            loss_v.backward()
            opt.step()
        report(f"5. head refit, {loss}{' + tanh' if squash else ', linear'}", m)


if __name__ == "__main__":
    main()
